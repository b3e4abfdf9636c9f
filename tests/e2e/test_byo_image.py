"""The bring-your-own-image contract (docs/byo-image.md), held by a second, non-Python image: the Go sample in
images/sample-go, built FROM scratch, so it has no shell and no bash. A local stack runs it in place of the
sample app: its replicas pass Swarm's liveness check with the image's own probe on the spec's timing, serve
through HAProxy with the password read from the secret file, scale out and in, and stop cleanly on SIGTERM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from docker.models.containers import Container

from components.app_tier import liveness_check
from harness.engine_apply import _duration_ns
from testbed.containers import wait_healthy
from testbed.stack import TestStack, stand_up
from testbed.waiting import wait_for

IMAGE = "sample-go"
STOP_GRACE_S = 15  # hostscale:app.stop_grace_seconds' default, which this stack keeps


@pytest.fixture(scope="module")
def byo_stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[TestStack]:
    with stand_up(docker_client, app={"image": images[IMAGE], "initial_replicas": 2}) as stack:
        yield stack


def _containers(stack: TestStack) -> list[Container]:
    return [
        stack.client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        for task in stack.running_tasks()
    ]


def _runs(container: Container, command: list[str]) -> bool:
    try:
        return int(container.exec_run(command).exit_code) == 0
    except docker.errors.APIError:  # engines differ: some refuse a missing executable at exec start
        return False


def _served_by(stack: TestStack, requests: int = 40) -> set[str]:
    """Which replicas answered `/` (the page that queries Postgres) through HAProxy, in a bounded loop; a
    failed answer raises with the replicas' logs, which say why (a database error, a missing password file)."""
    seen: set[str] = set()
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        for _ in range(requests):
            response = client.get("/")
            if response.status_code != 200 or response.json().get("db") != "ok":
                logs = "\n".join(c.logs(tail=5).decode(errors="replace") for c in _containers(stack))
                raise AssertionError(f"GET / answered {response.status_code} {response.text}\n{logs}")
            seen.add(response.json()["served_by"])
    return seen


def _database_answers(stack: TestStack) -> bool:
    # Postgres may still be starting when the replicas are: the page that needs it answers 503 until then.
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        return client.get("/").status_code == 200


def _wait_serving_from(stack: TestStack, count: int) -> None:
    wait_for("the database behind the replicas", lambda: _database_answers(stack), 90, every_s=1)
    wait_for(
        f"HAProxy to serve from {count} replicas", lambda: len(_served_by(stack)) == count, 60, every_s=1
    )


def test_the_service_takes_the_probe_command_from_the_image(byo_stack: TestStack) -> None:
    spec = byo_stack.service().attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["Image"].startswith("hostscale/sample-go:"), spec["Image"]
    assert not spec["Healthcheck"].get("Test"), spec["Healthcheck"]


def test_replicas_run_the_images_probe_on_the_specs_timing_and_become_healthy(byo_stack: TestStack) -> None:
    expected = liveness_check(8000)
    containers = _containers(byo_stack)
    assert len(containers) == 2
    for container in containers:
        wait_healthy(container, 60)
        check = container.attrs["Config"]["Healthcheck"]
        # The image's command (there is no bash to run the sample app's), the spec's patient timing (the
        # image says 2 s / 5 s / 3 retries / 30 s).
        assert check == {
            "Test": ["CMD", "/sample-go", "probe"],
            "Interval": _duration_ns(str(expected.interval)),
            "Timeout": _duration_ns(str(expected.timeout)),
            "Retries": expected.retries,
            "StartPeriod": _duration_ns(str(expected.start_period)),
        }
        assert not _runs(container, ["bash", "-c", "true"]), "the point is an image without bash"


def test_it_serves_through_haproxy_with_the_password_from_the_secret_file(byo_stack: TestStack) -> None:
    replicas = {container.attrs["Config"]["Hostname"] for container in _containers(byo_stack)}
    _wait_serving_from(byo_stack, 2)
    assert _served_by(byo_stack) == replicas


def test_it_scales_out_and_in(byo_stack: TestStack) -> None:
    with byo_stack.autoscaler_stopped():
        byo_stack.service().scale(3)
        byo_stack.wait_running(3)
        for container in _containers(byo_stack):
            wait_healthy(container, 60)
        _wait_serving_from(byo_stack, 3)
        byo_stack.service().scale(1)
        byo_stack.wait_running(1)
        _wait_serving_from(byo_stack, 1)
        byo_stack.service().scale(2)
        byo_stack.wait_running(2)


def test_a_replica_stops_by_itself_on_sigterm_within_the_grace_period(byo_stack: TestStack) -> None:
    replica = _containers(byo_stack)[0]
    replica.kill(signal="SIGTERM")

    def exited() -> bool:
        replica.reload()
        return str(replica.status) == "exited"

    # Nothing sends SIGKILL here, so an exit at all means the app stopped by itself; within the grace period
    # is what Swarm allows before it would send one.
    wait_for(f"{replica.name} to stop after SIGTERM", exited, STOP_GRACE_S)
    state: dict[str, Any] = replica.attrs["State"]
    assert state["ExitCode"] == 0, state
    logs = replica.logs().decode(errors="replace")
    assert "terminated: draining" in logs, logs
    assert logs.rstrip().endswith("stopped"), logs


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"PORT": "abc"}, 'PORT must be an integer, got "abc"', id="a port that is not a number"),
        pytest.param(
            {"PORT": "70000"}, "PORT must be between 1 and 65535, got 70000", id="a port out of range"
        ),
        pytest.param(
            {"DB_PASSWORD": "x"},
            "DB_PASSWORD is not read: put the password in a file and set DB_PASSWORD_FILE",
            id="a password in the environment",
        ),
        pytest.param(
            {"SHUTDOWN_GRACE_SECONDS": "soon"},
            'SHUTDOWN_GRACE_SECONDS must be a number, got "soon"',
            id="a grace period that is not a number",
        ),
    ],
)
def test_the_sample_refuses_bad_settings_naming_the_variable_and_value(
    docker_client: docker.DockerClient, images: dict[str, str], env: dict[str, str], message: str
) -> None:
    container = docker_client.containers.run(images[IMAGE], environment=env, detach=True)
    try:
        assert container.wait(timeout=30)["StatusCode"] == 2
        assert container.logs().decode().split(" ", 2)[-1] == message + "\n"
    finally:
        container.remove(force=True)
