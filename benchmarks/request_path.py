"""What HAProxy adds to the request path of one app replica: the same requests directly and through HAProxy,
interleaved and repeated, with exact latencies and each component's CPU time per request.

    uv run python -m benchmarks.request_path                # 5 rounds of 10 s rows, 16 users
    uv run python -m benchmarks.request_path --rounds 7 --seconds 20 --users 16

The stack is the one the Pulumi program deploys (a test stack of the local stack's config, testbed/stack.py)
with one replica, which its autoscaler never changes. The replica lives on the overlay network, which the host
does not route, so Locust (loadtests/benchmark.py, FastHttpUser) runs inside HAProxy's container's network
namespace (nsenter): both rows take the same path from there, to HAProxy's frontend on its loopback and to the
replica's overlay address, with no docker-proxy on either.

Fair by construction:
- Locust runs on its own core (`taskset`, the last CPU) and HAProxy, the replica and Postgres on the others
  (`docker update --cpuset-cpus`), so the load generator does not take the CPU the rows are compared on.
- Each round runs every endpoint's two rows back to back, alternating which goes first (ABBA), so a drift
  over time (Postgres' table growing, a neighbour's load) falls on both rows alike.
- Latencies are exact (the benchmark users record every response time in microseconds, not Locust's
  whole-millisecond buckets), and the difference is taken per round between the two rows of that round.
- Each component's CPU time is its container's cgroup time over the row (Locust's from its own rusage),
  divided by the requests served: HAProxy's share is its CPU per request against the replica's.

Prints the per-row figures and a summary table (min / median / max over the rounds) in Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.models.containers import Container

from components.load_balancer import FRONTEND_PORT
from harness.program import ROOT, stack_config
from testbed.containers import wait_ready
from testbed.stack import TestStack, stand_up

# Locust user class (loadtests/benchmark.py) -> the request it measures, as its latency file names it.
ENDPOINTS = {
    "HealthzUser": "GET /healthz",
    "ReadItemUser": "GET /api/items/{id}",
    "CreateItemUser": "POST /api/items",
}
PATHS = ("direct", "haproxy")
COMPONENTS = ("haproxy", "app", "postgres", "locust")
APP_PORT = 8000  # the local stack's hostscale:app.port (the default)
ONE_REPLICA = {"initial_replicas": 1}
# The local stack's policy, pinned at one replica: the autoscaler runs as deployed but never scales.
PINNED = {"replicas": {"min": 1, "max": 1}}


def pinned_policy() -> dict[str, object]:
    local = {k: v for k, v in stack_config("local")["hostscale:autoscaler"].items() if k != "listen"}
    return {**local, **PINNED}


@dataclass(frozen=True)
class Row:
    """One Locust run of one endpoint over one path."""

    round: int
    endpoint: str
    path: str
    requests: int
    failures: int
    seconds: float
    p50_ms: float
    p95_ms: float
    cpu_s: dict[str, float]  # component -> CPU seconds over the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cpu_us_per_request(self, component: str) -> float:
        return self.cpu_s[component] / max(self.requests, 1) * 1e6


def row_order(round_index: int) -> tuple[str, ...]:
    """ABBA: even rounds run direct first, odd rounds HAProxy first."""
    return PATHS if round_index % 2 == 0 else tuple(reversed(PATHS))


def container_cpu_s(container: Container) -> float:
    """The container's cgroup CPU time so far (user + system), from the engine's one-shot stats."""
    stats = container.stats(stream=False, one_shot=True)
    return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def task_container(client: docker.DockerClient, service: str) -> Container:
    (container,) = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    return container


def locust_in(
    pid: int, host: str, user: str, users: int, seconds: int, out: Path, cpu: int
) -> tuple[dict[str, dict[str, float]], float]:
    """One headless Locust run of `user` against `host`, in the network namespace of process `pid`, on CPU
    `cpu`. Returns the exact latency summary per request name and Locust's CPU seconds."""
    latencies = out.with_suffix(".latencies.json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with out.with_suffix(".log").open("w") as log:
        subprocess.run(
            [
                *("taskset", "-c", str(cpu)),
                *("nsenter", "-t", str(pid), "-n", "--"),
                *("uv", "run", "--frozen", "locust", "-f", "loadtests/benchmark.py", "--headless"),
                *("--only-summary", "-u", str(users), "-r", str(users), "-t", f"{seconds}s"),
                *("-H", host, "--csv", str(out), user),
            ],
            cwd=ROOT,
            env={**os.environ, "BENCH_LATENCIES": str(latencies)},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,  # Locust exits non-zero when any request failed: the failures column says so
            timeout=seconds + 120,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not latencies.exists():
        log_text = out.with_suffix(".log").read_text()[-2000:]
        raise RuntimeError(f"Locust wrote no latencies for {user} at {host}:\n{log_text}")
    summary: dict[str, dict[str, float]] = json.loads(latencies.read_text())
    return summary, locust_cpu


class Bench:
    def __init__(self, stack: TestStack, users: int, seconds: int, scratch: Path) -> None:
        self.stack = stack
        self.users = users
        self.seconds = seconds
        self.scratch = scratch
        client = stack.client
        self.haproxy = stack.haproxy()
        self.components = {
            "haproxy": self.haproxy,
            "app": task_container(client, stack.app_service),
            "postgres": task_container(client, f"{stack.prefix}-postgres"),
        }
        self.locust_cpu = (os.cpu_count() or 1) - 1
        (task,) = stack.running_tasks()
        self.hosts = {
            "direct": f"http://{stack.task_address(task)}:{APP_PORT}",
            "haproxy": f"http://127.0.0.1:{FRONTEND_PORT}",
        }

    def pin(self) -> str:
        """Locust on the last CPU, the measured components on the others (on one CPU all share it)."""
        if self.locust_cpu == 0:
            return "one CPU: Locust and the components share it"
        others = f"0-{self.locust_cpu - 1}" if self.locust_cpu > 1 else "0"
        for container in self.components.values():
            container.update(cpuset_cpus=others)
        return f"Locust on CPU {self.locust_cpu}; HAProxy, the replica and Postgres on CPU {others}"

    def run_row(self, round_index: int, user: str, path: str) -> Row:
        before = {name: container_cpu_s(c) for name, c in self.components.items()}
        out = self.scratch / f"r{round_index}-{path}-{user}"
        summary, locust_cpu = locust_in(
            int(self.haproxy.attrs["State"]["Pid"]),
            self.hosts[path],
            user,
            self.users,
            self.seconds,
            out,
            self.locust_cpu,
        )
        cpu = {name: container_cpu_s(c) - before[name] for name, c in self.components.items()}
        cpu["locust"] = locust_cpu
        measured = summary[ENDPOINTS[user]]
        return Row(
            round=round_index,
            endpoint=ENDPOINTS[user],
            path=path,
            requests=int(measured["requests"]),
            failures=int(measured["failures"]),
            seconds=measured["seconds"],
            p50_ms=measured["p50_ms"],
            p95_ms=measured["p95_ms"],
            cpu_s=cpu,
        )

    def rounds(self, count: int) -> Iterator[Row]:
        wait_ready(self.stack.url, 60)  # the replica UP in HAProxy, not only running in Swarm
        for round_index in range(count):
            for user in ENDPOINTS:
                for path in row_order(round_index):
                    yield self.run_row(round_index, user, path)


def spread(values: list[float], digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def summary_lines(rows: list[Row]) -> list[str]:
    lines = [
        "| endpoint | path | req/s | p50 ms | p95 ms | CPU µs/request: HAProxy | app | Postgres | Locust "
        "| failures |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for endpoint in ENDPOINTS.values():
        for path in PATHS:
            mine = [r for r in rows if r.endpoint == endpoint and r.path == path]
            cpu = [spread([r.cpu_us_per_request(c) for r in mine], 1) for c in COMPONENTS]
            failures = f"{sum(r.failures for r in mine)}/{sum(r.requests for r in mine)}"
            lines.append(
                f"| {endpoint} | {path} | {spread([r.rate for r in mine], 0)} "
                f"| {spread([r.p50_ms for r in mine])} | {spread([r.p95_ms for r in mine])} "
                f"| {' | '.join(cpu)} | {failures} |"
            )
    lines += [
        "",
        "| endpoint | p50 added by HAProxy, ms (per round) | req/s through HAProxy / direct "
        "| HAProxy's CPU per request / the app's |",
        "| --- | --- | --- | --- |",
    ]
    for endpoint in ENDPOINTS.values():
        pairs = [
            (d, h)
            for d in rows
            for h in rows
            if d.endpoint == h.endpoint == endpoint and d.round == h.round and (d.path, h.path) == PATHS
        ]
        added = [h.p50_ms - d.p50_ms for d, h in pairs]
        ratio = [h.rate / d.rate for d, h in pairs]
        share = [h.cpu_s["haproxy"] / max(h.cpu_s["app"], 1e-9) for _, h in pairs]
        lines.append(f"| {endpoint} | {spread(added)} | {spread(ratio)} | {spread(share)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10, help="length of each row")
    parser.add_argument("--users", type=int, default=16)
    args = parser.parse_args()
    rows: list[Row] = []
    with (
        stand_up(docker.from_env(), autoscaler=pinned_policy(), app=ONE_REPLICA) as stack,
        tempfile.TemporaryDirectory() as scratch,
    ):
        bench = Bench(stack, args.users, args.seconds, Path(scratch))
        print(bench.pin(), flush=True)
        for row in bench.rounds(args.rounds):
            rows.append(row)
            print(
                f"round {row.round} {row.endpoint} {row.path}: {row.rate:.0f} req/s, p50 {row.p50_ms:.3f} ms, "
                f"p95 {row.p95_ms:.3f} ms, {row.failures}/{row.requests} failed, CPU s "
                + ", ".join(f"{c} {row.cpu_s[c]:.2f}" for c in COMPONENTS),
                flush=True,
            )
    print(f"\n{args.rounds} rounds of {args.seconds} s rows, {args.users} users, min / median / max:\n")
    print("\n".join(summary_lines(rows)))


if __name__ == "__main__":
    main()
