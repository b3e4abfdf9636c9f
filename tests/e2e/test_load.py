"""Locust runs against the local stack deployed for real (through the apply harness): the scale cycle makes the
rules fire with zero failed requests and yields the scaling timeline; then the failure drills.

Each drill prints its figures; BENCHMARKS.md and docs/testing.md (reliability drills) record them.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from harness import dev_stack
from harness.program import ROOT, stack_config
from loadtests.report import make_report
from testbed.stack import with_served_by_header
from testbed.waiting import wait_for

PREFIX = "hostscale"
MIN_REPLICAS = 2


@dataclass
class Run:
    exit_code: int
    requests: int
    failures: int
    errors: list[dict[str, str]]
    directory: Path
    max_ms: dict[str, float]

    def served_by(self) -> dict[str, int]:
        served: dict[str, int] = json.loads((self.directory / "served_by.json").read_text())
        return served

    def acknowledged(self) -> dict[str, Any]:
        acked: dict[str, Any] = json.loads((self.directory / "acknowledged.json").read_text())
        return acked


def run_locust(locustfile: str, directory: Path, *extra: str, timeout_s: float = 400) -> Run:
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        # Locust reads the defaults (host, full CSV history, SLOs) from pyproject.toml's [tool.locust] in cwd.
        sys.executable, "-m", "locust", "-f", f"loadtests/{locustfile}",
        "--headless", "--only-summary", "--csv", str(directory / "run"),
        "--record-dir", str(directory), *extra,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    (directory / "locust.log").write_text(result.stdout + result.stderr)
    with (directory / "run_stats.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    total = next(row for row in rows if row["Name"] == "Aggregated")
    with (directory / "run_failures.csv").open(newline="") as handle:
        errors = list(csv.DictReader(handle))
    max_ms = {row["Name"]: float(row["Max Response Time"]) for row in rows if row["Name"] != "Aggregated"}
    return Run(
        result.returncode, int(total["Request Count"]), int(total["Failure Count"]), errors, directory, max_ms
    )


def status() -> dict[str, Any]:
    try:
        body: dict[str, Any] = httpx.get("http://127.0.0.1:9100/status", timeout=2).json()
    except httpx.HTTPError:
        return {}
    return body


def events(since: int = 0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(
        "http://127.0.0.1:9100/events", params={"since": since}, timeout=5
    ).json()["events"]
    return found


def replicas(client: docker.DockerClient) -> int:
    spec = client.services.get(f"{PREFIX}-app").attrs["Spec"]
    return int(spec["Mode"]["Replicated"]["Replicas"])


def app_503s(client: docker.DockerClient, since: int) -> list[str]:
    """The app's own log lines for the 503s it answered since `since` (unix time), each with its reason."""
    logs = client.services.get(f"{PREFIX}-app").logs(stdout=True, stderr=True, since=since, timestamps=True)
    lines = b"".join(logs).decode(errors="replace").splitlines()
    return [line[-300:] for line in lines if "503 for" in line][:20]


def running_app_tasks(client: docker.DockerClient) -> list[dict[str, Any]]:
    tasks = client.services.get(f"{PREFIX}-app").tasks(filters={"desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def settled(client: docker.DockerClient) -> bool:
    current = status()
    return current.get("ready") == MIN_REPLICAS and replicas(client) == MIN_REPLICAS


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[docker.DockerClient]:
    was_swarm = docker_client.info()["Swarm"]["LocalNodeState"] == "active"
    dev_stack.up("local", with_served_by_header(stack_config("local")))  # served_by.json names replicas
    try:
        wait_for("the tier at its minimum, every replica UP", lambda: settled(docker_client), 180)
        yield docker_client
    finally:
        dev_stack.down("local", delete_data=True)
        if not was_swarm:
            docker_client.swarm.leave(force=True)


def drill(stack: docker.DockerClient, directory: Path, action: Any, at_s: float, run_s: int) -> Run:
    """Steady load from a settled tier, `action` done `at_s` seconds in; failures do not fail the run's exit
    code here (each drill asserts on them itself)."""
    wait_for("a settled tier", lambda: settled(stack), 120)
    timer = threading.Timer(at_s, action)
    timer.start()
    run = run_locust("steady.py", directory, "--run-time", f"{run_s}s", "--slo-max-failure-ratio", "1")
    timer.join()
    return run


def test_scale_cycle_scales_out_and_back_with_zero_failures(
    stack: docker.DockerClient, tmp_path: Path
) -> None:
    first_seq = events()[-1]["seq"]
    started = int(time.time())
    run = run_locust("scale_cycle.py", tmp_path / "scale-cycle")
    during = events(first_seq)
    peak = max(e["desired"] for e in during)
    print(
        f"scale cycle: {run.requests} requests, {run.failures} failed, peak {peak} replicas, served by {run.served_by()}"
    )

    assert run.failures == 0, f"{run.errors}\nthe replicas' 503s: {app_503s(stack, started)}"
    assert run.exit_code == 0, (run.directory / "locust.log").read_text()[-2000:]
    assert peak >= MIN_REPLICAS + 2, (
        f"the rules should have scaled out to at least {MIN_REPLICAS + 2}: {peak}"
    )
    assert len(run.served_by()) >= 3, f"at least three replicas should have served: {run.served_by()}"
    wait_for("the scale-in back to the minimum", lambda: settled(stack), 120)

    timeline = make_report(tmp_path / "scale-cycle" / "run", events(first_seq), tmp_path / "report")
    ups = [d for d in timeline.decisions if d["direction"] == "up"]
    assert ups, "the timeline must mark the scale-out"
    assert "rule 'sessions'" in ups[0]["reason"]
    assert max(timeline.replicas["desired"]) == peak
    assert (tmp_path / "report" / "timeline.png").stat().st_size > 20_000
    assert "Scaling decisions" in (tmp_path / "report" / "timeline.html").read_text()
    reports = ROOT / "reports" / "last-scale-cycle"
    reports.mkdir(parents=True, exist_ok=True)
    for name in ("timeline.png", "timeline.html", "timeline.json"):
        (reports / name).write_bytes((tmp_path / "report" / name).read_bytes())


def test_replica_killed_under_load_is_routed_around_and_replaced(
    stack: docker.DockerClient, tmp_path: Path
) -> None:
    killed: dict[str, float] = {}

    def kill_one_then_time_the_recovery() -> None:
        size = len(running_app_tasks(stack))
        task = running_app_tasks(stack)[0]
        stack.containers.get(task["Status"]["ContainerStatus"]["ContainerID"]).kill()
        killed["at"] = time.monotonic()

        def back_to_size() -> bool:
            # As many running tasks as before, the killed one not among them, all of them UP in HAProxy.
            running = running_app_tasks(stack)
            replaced = task["ID"] not in {t["ID"] for t in running}
            return len(running) >= size and replaced and status().get("ready", 0) >= size

        wait_for("the tier back to its size", back_to_size, 60, every_s=0.25)
        killed["recovered_s"] = time.monotonic() - killed["at"]

    run = drill(stack, tmp_path / "kill", kill_one_then_time_the_recovery, at_s=15, run_s=50)
    recovered = killed["recovered_s"]
    print(
        f"replica killed: {run.failures} of {run.requests} requests failed; back to size {recovered:.1f} s after the kill"
    )
    assert run.requests > 500
    assert run.failures <= run.requests * 0.005, run.errors


def test_postgres_restarted_under_load_gives_fast_503s_and_loses_no_acknowledged_write(
    stack: docker.DockerClient, tmp_path: Path
) -> None:

    def restart_postgres() -> None:
        # The orchestrated restart (`docker service update --force`): Swarm stops the task, then starts a new
        # one on the same volume. (A `docker restart` of the task container is not one: Swarm replaces the
        # stopped container while Docker restarts it, and two Postgres end up on one data directory.)
        stack.services.get(f"{PREFIX}-postgres").force_update()

    run = drill(stack, tmp_path / "postgres", restart_postgres, at_s=15, run_s=60)
    kinds = {error["Error"] for error in run.errors}
    print(
        f"postgres restarted: {run.failures} of {run.requests} requests failed ({kinds}); slowest: {run.max_ms}"
    )
    assert all("status 503" in kind for kind in kinds), f"only 503s may fail during the outage: {kinds}"
    assert max(run.max_ms.values()) < 5000, f"a request hung during the outage: {run.max_ms}"

    history = list(csv.DictReader((tmp_path / "postgres" / "run_stats_history.csv").open(newline="")))
    last = [row for row in history if row["Name"] == "Aggregated"][-10:]
    assert all(float(row["Failures/s"]) == 0 for row in last[-3:]), "the tier should have recovered by itself"

    acked = run.acknowledged()
    assert len(acked) > 20
    with httpx.Client(base_url="http://127.0.0.1:8080", timeout=10) as client:
        for item_id, body in acked.items():
            stored = client.get(f"/api/items/{item_id}").json()
            assert (stored["name"], stored["payload"]) == (body["name"], body["payload"]), item_id
    print(f"postgres restarted: all {len(acked)} acknowledged writes read back")


def test_autoscaler_restarted_under_load_resumes_from_swarm_without_a_jump(
    stack: docker.DockerClient, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def restart_autoscaler() -> None:
        seen["before"] = replicas(stack)
        stack.containers.get(f"{PREFIX}-autoscaler").restart(timeout=5)
        seen["at"] = time.monotonic()

    run = drill(stack, tmp_path / "autoscaler", restart_autoscaler, at_s=20, run_s=45)
    wait_for("the restarted autoscaler's API", lambda: bool(status()), 30)
    fresh = events(0)
    assert fresh[0]["seq"] == 1, "the autoscaler should have restarted with an empty event log"
    first = fresh[0]
    print(
        f"autoscaler restarted: first tick saw {first['current']} replicas (before restart {seen['before']}), asked {first['desired']}; {run.failures} of {run.requests} failed"
    )
    assert first["current"] == seen["before"] or abs(first["current"] - seen["before"]) <= 2
    assert abs(first["desired"] - first["current"]) <= 2, "no jump: at most one max step from Swarm's count"
    assert run.failures == 0, run.errors
