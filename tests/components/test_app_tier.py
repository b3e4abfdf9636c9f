"""The app tier on the real engine: the liveness check (a replica that stops answering for a while, the worst a
busy replica does, is not declared unhealthy, so Swarm never kills it for being busy), and the replica count
the program declares for a service that already runs (the live one, which the autoscaler set)."""

from __future__ import annotations

import os
import secrets
import signal
import time
from typing import Any

import docker
import pytest
from docker.types import ServiceMode

from components.app_tier import drain_env, live_replica_count, liveness_check
from components.haproxy_cfg import drain_detection_s
from harness.engine_apply import _duration_ns
from harness.program import stack_config
from harness.recording import record_program
from testbed.containers import TestBed, health, published_url, wait_healthy, wait_ready
from testbed.stack import config_for

STALL_S = 40  # the old check (5 s timeout, 5 misses) declared a replica unhealthy after ~30 s without answers


def test_a_replica_that_does_not_answer_for_40_s_stays_healthy(testbed: TestBed) -> None:
    check = liveness_check(8000)
    testbed.postgres()
    replica = testbed.app(
        "app-0",
        healthcheck={
            "test": check.tests,
            "interval": _duration_ns(str(check.interval)),
            "timeout": _duration_ns(str(check.timeout)),
            "retries": check.retries,
            "start_period": _duration_ns(str(check.start_period)),
        },
    )
    wait_ready(published_url(replica))
    wait_healthy(replica, 30)
    # Stop the server process itself (not the container: the engine does not run probes in a paused one), so
    # every probe connects and waits for an answer that does not come, as with a replica behind on its work.
    server = int(replica.attrs["State"]["Pid"])
    os.kill(server, signal.SIGSTOP)
    try:
        seen = set()
        deadline = time.monotonic() + STALL_S
        while time.monotonic() < deadline:
            seen.add(health(replica))
            time.sleep(1)
    finally:
        os.kill(server, signal.SIGCONT)
    assert seen == {"healthy"}, f"health while stalled: {seen}"
    failing = replica.attrs["State"]["Health"]["FailingStreak"]
    assert failing >= 2, f"the probes should have been failing while it was stalled (streak {failing})"
    wait_healthy(replica, 30)


def test_the_program_declares_the_live_replica_count_of_a_running_app_service(
    swarm: docker.DockerClient, images: dict[str, str]
) -> None:
    """As after the autoscaler scaled the service to 5: the next `up` must declare 5, not the initial 2."""
    prefix = f"hs-{secrets.token_hex(4)}"
    # Pending forever (no node has the label): the spec holds the count and no task costs anything.
    service = swarm.services.create(
        images["app"],
        name=f"{prefix}-app",
        mode=ServiceMode("replicated", replicas=5),
        constraints=["node.labels.hostscale-never==true"],
    )
    try:
        assert live_replica_count(f"{prefix}-app") == 5
        run = record_program(config_for(prefix), f"test-{prefix}", live_replica_count=live_replica_count)
        app = run.resources["app-service"]
        assert (app.inputs["mode"]["replicated"]["replicas"], app.ignore_changes) == (5, [])
        assert run.namespace["app"].replicas == 5
    finally:
        service.remove()


def test_no_app_service_means_the_initial_count(swarm: docker.DockerClient) -> None:
    prefix = f"hs-{secrets.token_hex(4)}"
    assert live_replica_count(f"{prefix}-app") is None
    run = record_program(config_for(prefix), f"test-{prefix}", live_replica_count=live_replica_count)
    assert run.resources["app-service"].inputs["mode"]["replicated"]["replicas"] == 2


@pytest.mark.parametrize(
    ("stop_grace_s", "grace", "timeout"),
    [
        pytest.param(
            15, "5", "9", id="the default stop grace drains past HAProxy's check then finishes work"
        ),
        pytest.param(8, "5", "2", id="a shorter stop grace keeps the drain and shortens the finish"),
        pytest.param(3, "1", "1", id="a stop grace too short to drain fully drains what it can"),
        pytest.param(600, "5", "300", id="a long stop grace gives in-flight work at most the app's bound"),
    ],
)
def test_drain_env_keeps_a_stopping_replica_serving_until_haproxy_has_taken_it_out(
    stop_grace_s: int, grace: str, timeout: str
) -> None:
    assert drain_env(stop_grace_s) == {"SHUTDOWN_GRACE_SECONDS": grace, "SHUTDOWN_TIMEOUT_SECONDS": timeout}


def test_the_local_stacks_replicas_drain_longer_than_haproxys_check_takes() -> None:
    env = (
        record_program(stack_config("local"), "local")
        .resources["app-service"]
        .inputs["taskSpec"]["containerSpec"]["env"]
    )
    assert float(env["SHUTDOWN_GRACE_SECONDS"]) > drain_detection_s(), env
    stop_grace = int(str(stack_config("local")["hostscale:app"].get("stop_grace_seconds", 15)))
    assert float(env["SHUTDOWN_GRACE_SECONDS"]) + float(env["SHUTDOWN_TIMEOUT_SECONDS"]) < stop_grace, (
        "Swarm would kill the replica before its in-flight requests finish"
    )


def test_an_own_image_is_probed_by_its_healthcheck_unless_the_config_says_bash() -> None:
    def tests_of(app: dict[str, Any]) -> list[str]:
        config = stack_config("local")
        config["hostscale:app"] = {**config["hostscale:app"], **app}
        spec = record_program(config, "local").resources["app-service"].inputs["taskSpec"]["containerSpec"]
        return list(spec["healthcheck"].get("tests") or [])

    assert tests_of({"image": "example.org/shop:1"}) == []  # Docker: the image's own HEALTHCHECK command
    assert tests_of({"image": "example.org/shop:1", "liveness_probe": "bash"})[:3] == ["CMD", "bash", "-c"]
    assert tests_of({})[:3] == ["CMD", "bash", "-c"]
