"""The autoscaler image against real HAProxy and a real Swarm service: load makes it scale out, the new
replicas take traffic, load stops and it scales back to min; HAProxy restarted mid-run makes it hold, then
resume."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from autoscaler.swarm import SwarmService
from testbed.load import Load
from testbed.ports import free_loopback_port
from testbed.waiting import wait_for
from tests.support.swarm import SwarmPath, ensure_swarm

POLICY = {
    "replicas": {"min": 2, "max": 5},
    "interval_seconds": 1,
    "metrics_max_age_seconds": 5,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
    "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 2, "max_step": 2},
    "scale_down": {"stabilization_seconds": 8, "cooldown_seconds": 2, "max_step": 1},
}


@pytest.fixture(scope="module")
def swarm_path(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[SwarmPath]:
    created = ensure_swarm(docker_client)
    path = SwarmPath(docker_client, images)
    try:
        path.wait_running(2)
        yield path
    finally:
        path.teardown()
        if created:
            docker_client.swarm.leave(force=True)


@pytest.fixture(scope="module")
def autoscaler(swarm_path: SwarmPath, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    policy = tmp_path_factory.mktemp("policy") / "policy.json"
    policy.write_text(json.dumps(POLICY))
    policy.chmod(0o444)
    port = free_loopback_port()
    container = swarm_path.autoscaler(str(policy), port)
    url = f"http://127.0.0.1:{port}"
    wait_for("the autoscaler's status API", lambda: _status(url) is not None, 30)
    yield url
    print(container.logs().decode()[-3000:])


def test_swarm_actuator_changes_the_count_without_replacing_running_tasks(swarm_path: SwarmPath) -> None:
    actuator = SwarmService(swarm_path.client, swarm_path.app_service_name)
    before = {task["ID"] for task in swarm_path.running_tasks()}
    assert actuator.get() == 2
    actuator.set(3)
    swarm_path.wait_running(3)
    assert before <= {task["ID"] for task in swarm_path.running_tasks()}, (
        "scaling out must not roll the service"
    )
    actuator.set(2)
    swarm_path.wait_running(2)
    assert actuator.get() == 2


def _status(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{url}/status", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _events(url: str, since: int = 0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = httpx.get(f"{url}/events", params={"since": since}, timeout=5).json()[
        "events"
    ]
    return events


def test_load_scales_out_new_replicas_serve_then_it_scales_back_to_min(
    swarm_path: SwarmPath, autoscaler: str
) -> None:
    wait_for("both replicas UP in HAProxy", lambda: (_status(autoscaler) or {}).get("ready") == 2, 60)
    with Load(swarm_path.url, workers=12, max_seconds=120) as load:
        wait_for("a scale-out", lambda: swarm_path.replicas() > 2, 60)
        wait_for("a third replica to serve through HAProxy", lambda: len(load.served) >= 3, 60)
        peak = swarm_path.replicas()
    assert load.failures == [], f"requests failed during scale-out: {load.failures[:5]}"
    assert len(load.served) >= 3, load.served

    wait_for("the scale-in back to min", lambda: swarm_path.replicas() == 2, 120)
    swarm_path.wait_running(2)
    changes = [e for e in _events(autoscaler) if e["acted"]]
    ups = [e for e in changes if e["direction"] == "up"]
    downs = [e for e in changes if e["direction"] == "down"]
    assert ups, "no scale-up was recorded"
    assert downs, "no scale-down was recorded"
    assert any("rule 'sessions'" in reason and "asks for" in reason for reason in ups[0]["reasons"]), ups[0]
    assert peak <= POLICY["replicas"]["max"]  # type: ignore[index]
    print(f"scaled 2 -> {peak} -> 2; served by {len(load.served)} replicas: {dict(load.served)}")


def test_haproxy_restart_makes_it_hold_then_resume(swarm_path: SwarmPath, autoscaler: str) -> None:
    wait_for("a steady state", lambda: (_status(autoscaler) or {}).get("ready") == swarm_path.replicas(), 60)
    before = _events(autoscaler)[-1]["seq"]
    replicas = swarm_path.replicas()
    swarm_path.haproxy.stop(timeout=1)
    time.sleep(POLICY["metrics_max_age_seconds"] + 2)  # type: ignore[operator]  # past the metrics' max age
    swarm_path.haproxy.start()
    wait_for("metrics again", lambda: not _events(autoscaler, before)[-1]["error"], 60)

    during = _events(autoscaler, before)
    errors = [e for e in during if e["error"]]
    assert errors, "the autoscaler should have seen HAProxy go away"
    assert any(r.startswith("held: metrics stale for") for e in errors for r in e["reasons"]), errors[-1]
    assert all(e["desired"] == replicas for e in during), "it must hold while HAProxy is away"
    assert swarm_path.replicas() == replicas
    # Resumed: fresh readings of ready replicas after the restart.
    wait_for("replicas UP again", lambda: (_status(autoscaler) or {}).get("ready") == replicas, 60)
