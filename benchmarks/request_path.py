"""Throughput and latency of one app replica, directly and through HAProxy, measured with Locust
(loadtests/benchmark.py, FastHttpUser, headless), on the request path the Pulumi program deploys: a test stack
of the local stack's config (testbed/stack.py) with one replica, which its autoscaler never changes.

    uv run python -m benchmarks.request_path
    BENCH_USERS (16), BENCH_SECONDS (20): concurrency and length of each run.

Prints a Markdown table. The replica lives on the overlay network, which the host does not route, so Locust
runs inside HAProxy's container's network namespace (nsenter): from there both rows take the same path, to
HAProxy's frontend on its loopback and to the replica's overlay address, with no docker-proxy on either.
"""

from __future__ import annotations

import csv
import os
import subprocess
import tempfile
from pathlib import Path

import docker

from components.load_balancer import FRONTEND_PORT
from harness.program import ROOT, stack_config
from testbed.containers import wait_ready
from testbed.stack import TestStack, stand_up

USERS = ("HealthzUser", "ReadItemUser", "CreateItemUser")  # classes of loadtests/benchmark.py
APP_PORT = 8000  # the local stack's hostscale:app.port (the default)
ONE_REPLICA = {"initial_replicas": 1}
# The local stack's policy, pinned at one replica: the autoscaler runs as deployed but never scales.
PINNED = {"replicas": {"min": 1, "max": 1}}


def pinned_policy() -> dict[str, object]:
    local = {k: v for k, v in stack_config("local")["hostscale:autoscaler"].items() if k != "listen"}
    return {**local, **PINNED}


def table_rows(stats_csv: Path, via: str, users: int) -> list[str]:
    """Locust's per-request rows as table rows; ReadItemUser's one set-up POST per user is not what it
    measures, so a POST /api/items next to other rows is left out."""
    with stats_csv.open() as file:
        rows = [r for r in csv.DictReader(file) if r["Name"] != "Aggregated" and r["Type"] in ("GET", "POST")]
    lines = []
    for r in rows:
        if r["Name"] == "/api/items" and r["Type"] == "POST" and len(rows) > 1:
            continue
        failures = f"{r['Failure Count']}/{r['Request Count']}"
        lines.append(
            f"| {r['Type']} {r['Name']} | {via} | {users} | {float(r['Requests/s']):.0f} | {r['50%']} "
            f"| {r['95%']} | {failures} |"
        )
    return lines


def locust_in(pid: int, host: str, user: str, users: int, seconds: int, csv_prefix: Path) -> Path:
    """One headless Locust run of `user` against `host`, in the network namespace of process `pid`."""
    log = csv_prefix.with_suffix(".log")
    with log.open("w") as out:
        subprocess.run(
            [
                *("nsenter", "-t", str(pid), "-n", "--"),
                *("uv", "run", "--frozen", "locust", "-f", "loadtests/benchmark.py", "--headless"),
                *("--only-summary", "-u", str(users), "-r", str(users), "-t", f"{seconds}s"),
                *("-H", host, "--csv", str(csv_prefix), user),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,  # Locust exits non-zero when any request failed: the table's failures column says so
            timeout=seconds + 120,
        )
    stats = Path(f"{csv_prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"Locust wrote no statistics for {user} at {host}:\n{log.read_text()[-2000:]}")
    return stats


def measure(stack: TestStack, users: int, seconds: int, scratch: Path) -> list[str]:
    wait_ready(stack.url, 60)  # the replica UP in HAProxy, not only running in Swarm
    haproxy = stack.haproxy()
    haproxy.reload()
    pid = int(haproxy.attrs["State"]["Pid"])
    (task,) = stack.running_tasks()
    targets = {
        "direct": f"http://{stack.task_address(task)}:{APP_PORT}",
        "haproxy": f"http://127.0.0.1:{FRONTEND_PORT}",
    }
    lines = []
    for via, host in targets.items():
        for user in USERS:
            stats = locust_in(pid, host, user, users, seconds, scratch / f"{via}-{user}")
            lines += table_rows(stats, via, users)
    return lines


def main() -> None:
    users = int(os.environ.get("BENCH_USERS", "16"))
    seconds = int(os.environ.get("BENCH_SECONDS", "20"))
    with (
        stand_up(docker.from_env(), autoscaler=pinned_policy(), app=ONE_REPLICA) as stack,
        tempfile.TemporaryDirectory() as scratch,
    ):
        lines = measure(stack, users, seconds, Path(scratch))
    print("| endpoint | path | users | req/s | p50 ms | p95 ms | failures |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
