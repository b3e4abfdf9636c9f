"""The autoscaler image against real HAProxy and a real Swarm service, as the Pulumi program deploys them (a
test stack, testbed/stack.py, with POLICY as its autoscaler's policy): load makes it scale out, the new
replicas take traffic, load stops and it scales back to min; HAProxy restarted mid-run makes it hold, then
resume; the live status page, served by the image, shows what /status says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from playwright.sync_api import Browser, expect

from autoscaler.status_page import CONTENT_SECURITY_POLICY
from autoscaler.swarm import SwarmService
from testbed.load import Load
from testbed.stack import TestStack, stand_up
from testbed.waiting import wait_for

POLICY = {
    "replicas": {"min": 2, "max": 5},
    "interval_seconds": 1,
    "metrics_max_age_seconds": 5,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
    "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 2, "max_step": 2},
    "scale_down": {"stabilization_seconds": 8, "cooldown_seconds": 2, "max_step": 1},
}


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[TestStack]:
    """The program's own request path (the local stack's config) with POLICY as its autoscaler's policy."""
    with stand_up(docker_client, autoscaler=POLICY, served_by_header=True) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def autoscaler(stack: TestStack) -> Iterator[str]:
    url = stack.autoscaler_url
    wait_for("the autoscaler's status API", lambda: _status(url) is not None, 30)
    yield url
    print(stack.autoscaler().logs().decode()[-3000:])


def test_swarm_actuator_changes_the_count_without_replacing_running_tasks(stack: TestStack) -> None:
    actuator = SwarmService(stack.client, stack.app_service)
    with stack.autoscaler_stopped():  # the stack's own autoscaler would take the count back to min
        before = {task["ID"] for task in stack.running_tasks()}
        assert actuator.get() == 2
        actuator.set(3)
        stack.wait_running(3)
        assert before <= {task["ID"] for task in stack.running_tasks()}, (
            "scaling out must not roll the service"
        )
        actuator.set(2)
        stack.wait_running(2)
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
    stack: TestStack, autoscaler: str
) -> None:
    wait_for("both replicas UP in HAProxy", lambda: (_status(autoscaler) or {}).get("ready") == 2, 60)
    with Load(stack.url, workers=12, max_seconds=120) as load:
        wait_for("a scale-out", lambda: stack.replicas() > 2, 60)
        wait_for("a third replica to serve through HAProxy", lambda: len(load.served) >= 3, 60)
        peak = stack.replicas()
    assert load.failures == [], f"requests failed during scale-out: {load.failures[:5]}"
    assert len(load.served) >= 3, load.served

    wait_for("the scale-in back to min", lambda: stack.replicas() == 2, 120)
    stack.wait_running(2)
    changes = [e for e in _events(autoscaler) if e["acted"]]
    ups = [e for e in changes if e["direction"] == "up"]
    downs = [e for e in changes if e["direction"] == "down"]
    assert ups, "no scale-up was recorded"
    assert downs, "no scale-down was recorded"
    assert any("rule 'sessions'" in reason and "asks for" in reason for reason in ups[0]["reasons"]), ups[0]
    assert peak <= POLICY["replicas"]["max"]  # type: ignore[index]
    print(f"scaled 2 -> {peak} -> 2; served by {len(load.served)} replicas: {dict(load.served)}")
    # Those scales went through the gate: the autoscaler holds no socket, and the gate logged each write.
    container = stack.autoscaler()
    assert not [m for m in container.attrs["Mounts"] if m["Type"] == "bind" and m["Source"].endswith("sock")]
    assert "DOCKER_HOST=unix:///run/hostscale/gate/docker.sock" in container.attrs["Config"]["Env"]
    gate_log = stack.client.containers.get(f"{stack.prefix}-autoscaler-gate").logs().decode()
    let_through = [line for line in gate_log.splitlines() if "/update let through: 200" in line]
    assert len(let_through) >= len(ups) + len(downs), gate_log[-2000:]


def test_haproxy_restart_makes_it_hold_then_resume(stack: TestStack, autoscaler: str) -> None:
    wait_for("a steady state", lambda: (_status(autoscaler) or {}).get("ready") == stack.replicas(), 60)
    before = _events(autoscaler)[-1]["seq"]
    replicas = stack.replicas()
    stack.haproxy().stop(timeout=1)
    time.sleep(POLICY["metrics_max_age_seconds"] + 2)  # type: ignore[operator]  # past the metrics' max age
    stack.haproxy().start()
    wait_for("metrics again", lambda: not _events(autoscaler, before)[-1]["error"], 60)

    during = _events(autoscaler, before)
    errors = [e for e in during if e["error"]]
    assert errors, "the autoscaler should have seen HAProxy go away"
    assert any(r.startswith("held: metrics stale for") for e in errors for r in e["reasons"]), errors[-1]
    assert all(e["desired"] == replicas for e in during), "it must hold while HAProxy is away"
    assert stack.replicas() == replicas
    # Resumed: fresh readings of ready replicas after the restart.
    wait_for("replicas UP again", lambda: (_status(autoscaler) or {}).get("ready") == replicas, 60)


def test_the_status_page_shows_what_the_autoscaler_sees(
    stack: TestStack, autoscaler: str, browser: Browser
) -> None:
    """The page as the image ships it (its files copied next to the code), on the autoscaler's own listener."""
    wait_for("a steady state", lambda: (_status(autoscaler) or {}).get("ready") == stack.replicas(), 60)
    status = _status(autoscaler)
    assert status is not None
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(f"{autoscaler}/")
        assert response is not None
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        for count in ("current", "desired", "ready"):
            expect(page.locator(f"#{count}")).to_have_text(str(status[count]), timeout=15_000)
        expect(page.locator("#targets tbody td").first).to_have_text("sessions")
        servers = page.eval_on_selector_all(
            "#servers tbody tr", "rows => rows.map(row => row.cells[0].textContent)"
        )
        assert sorted(servers) == sorted(status["servers"]), (servers, status["servers"])
        evaluations = page.get_attribute('#replicas-chart polyline[data-series="ready"]', "data-samples")
        assert int(evaluations or 0) > 1, "a fresh page draws the evaluations the autoscaler kept"
    finally:
        context.close()
