"""The gate in front of the real engine: the autoscaler's own code (SwarmService, SwarmNodes, docker-py's
from_env) works through it, and everything else is refused with a 403 naming the call, before the engine
sees it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import ServiceMode

from autoscaler.docker_rules import Scope
from autoscaler.gate import MAX_BODY_BYTES, DockerGate, engine_client, server
from autoscaler.nodes import SwarmNodes
from autoscaler.swarm import SwarmService
from testbed.swarm import swarm_manager
from testbed.waiting import wait_for


@pytest.fixture(scope="module")
def swarm(docker_client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    with swarm_manager(docker_client) as client:
        yield client


@pytest.fixture(scope="module")
def app_service(swarm: docker.DockerClient, images: dict[str, str]) -> Iterator[Any]:
    prefix = f"hs-{secrets.token_hex(4)}"
    # Pending forever (no node has the label): the spec is real, and no task costs anything.
    service = swarm.services.create(
        images["app"],
        name=f"{prefix}-app",
        mode=ServiceMode("replicated", replicas=1),
        constraints=["node.labels.hostscale-never==true"],
    )
    yield service
    service.remove()


@contextlib.contextmanager
def running_gate(scope: Scope, socket_path: Path) -> Iterator[None]:
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def run() -> None:
        async with engine_client("/var/run/docker.sock") as engine:
            holder["server"] = gate = server(DockerGate(scope, engine), str(socket_path))
            ready.set()
            await gate.serve()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    ready.wait(10)
    wait_for("the gate to listen", lambda: socket_path.exists() and holder["server"].started, timeout_s=10)
    try:
        yield
    finally:
        holder["server"].should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def gate_socket(app_service: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    scope = Scope(service=app_service.name, worker_nodes=frozenset({f"{app_service.name}-vm-0"}))
    socket_path = tmp_path_factory.mktemp("gate") / "docker.sock"
    with running_gate(scope, socket_path):
        yield socket_path


@pytest.fixture(scope="module")
def gated(gate_socket: Path) -> Iterator[docker.DockerClient]:
    """docker-py as the autoscaler builds it (from_env), with DOCKER_HOST at the gate."""
    client = docker.from_env(environment={"DOCKER_HOST": f"unix://{gate_socket}"})
    yield client
    client.close()


def test_the_autoscaler_scales_the_app_service_and_reads_its_tasks_through_the_gate(
    gated: docker.DockerClient, app_service: Any
) -> None:
    service = SwarmService(gated, app_service.name)
    assert service.get() == 1
    service.set(3)
    assert service.get() == 3
    assert service.running() == 0  # pending: no node carries the label
    app_service.reload()
    assert app_service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 3


def test_the_warm_pool_reads_nodes_and_their_tasks_through_the_gate(
    gated: docker.DockerClient, swarm: docker.DockerClient
) -> None:
    nodes = SwarmNodes(gated)
    manager = nodes.find(swarm.info()["Name"])
    assert manager is not None
    assert manager.id == swarm.info()["Swarm"]["NodeID"]
    running = [t for t in swarm.api.tasks(filters={"node": manager.id}) if t["Status"]["State"] == "running"]
    assert nodes.tasks_on(manager) >= len(running)


def refusal(action: Any) -> str:
    with pytest.raises(docker.errors.APIError) as refused:
        action()
    assert refused.value.response is not None
    assert refused.value.response.status_code == 403, refused.value
    return str(refused.value.explanation)


def spec_with(service: Any, change: Any) -> dict[str, Any]:
    service.reload()
    spec: dict[str, Any] = json.loads(json.dumps(service.attrs["Spec"]))
    change(spec)
    return spec


def raw_update(client: docker.DockerClient, path: str, version: int, spec: dict[str, Any]) -> None:
    api = client.api
    response = api.post(f"{api.base_url}/v{api.api_version}{path}", params={"version": version}, json=spec)
    api._raise_for_status(response)


def add_mount(spec: dict[str, Any]) -> None:
    spec["TaskTemplate"]["ContainerSpec"]["Mounts"] = [{"Type": "bind", "Source": "/", "Target": "/host"}]


def change_image(spec: dict[str, Any]) -> None:
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = "busybox:latest"


def test_everything_else_is_refused_with_a_403_that_names_the_call(
    gated: docker.DockerClient, app_service: Any, swarm: docker.DockerClient, caplog: pytest.LogCaptureFixture
) -> None:
    version = gated.api.api_version
    manager = gated.nodes.get(swarm.info()["Swarm"]["NodeID"])  # through the gate: its updates go there too
    manager_spec = dict(manager.attrs["Spec"])
    image = app_service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    update = f"/services/{app_service.id}/update"
    cases = {
        "container create": (
            lambda: gated.containers.create("busybox", "true"),
            f"POST /v{version}/containers/create refused: not a call the autoscaler makes",
        ),
        "exec": (
            lambda: gated.api.exec_create("anything", "sh"),
            f"POST /v{version}/containers/anything/exec refused: not a call the autoscaler makes",
        ),
        "service create": (
            lambda: gated.services.create(image, name=f"{app_service.name}-2"),
            f"POST /v{version}/services/create refused: not a call the autoscaler makes",
        ),
        "image change": (
            lambda: raw_update(gated, update, app_service.version, spec_with(app_service, change_image)),
            f"POST /v{version}{update} refused: a service update may change Mode.Replicated.Replicas only; "
            "this one changes TaskTemplate.ContainerSpec.Image",
        ),
        "added mount": (
            lambda: raw_update(gated, update, app_service.version, spec_with(app_service, add_mount)),
            f"POST /v{version}{update} refused: a service update may change Mode.Replicated.Replicas only; "
            "this one changes TaskTemplate.ContainerSpec.Mounts",
        ),
        "manager drained": (
            lambda: manager.update(dict(manager.attrs["Spec"], Availability="drain")),
            f"POST /v{version}/nodes/{manager.id}/update refused: node {manager.attrs['Description']['Hostname']!r}"
            " is a manager, not a worker VM",
        ),
        "manager's labels": (
            lambda: manager.update(dict(manager.attrs["Spec"], Labels={"x": "y"})),
            f"POST /v{version}/nodes/{manager.id}/update refused: node {manager.attrs['Description']['Hostname']!r}"
            " is a manager, not a worker VM",
        ),
        "another service read": (
            lambda: gated.services.list(),
            f"GET /v{version}/services refused: not a call the autoscaler makes",
        ),
    }
    with caplog.at_level(logging.WARNING, logger="hostscale.gate"):
        seen = {name: refusal(action) for name, (action, _) in cases.items()}
    assert seen == {name: f"hostscale gate: {message}" for name, (_, message) in cases.items()}
    logged = [r.getMessage() for r in caplog.records if r.name == "hostscale.gate"]
    assert logged == list(seen.values())
    app_service.reload()
    assert app_service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == image
    manager.reload()
    assert manager.attrs["Spec"] == manager_spec


def test_an_update_of_another_service_is_refused(
    gated: docker.DockerClient, swarm: docker.DockerClient, images: dict[str, str], app_service: Any
) -> None:
    other = swarm.services.create(
        images["app"], name=f"{app_service.name}-other", constraints=["node.labels.hostscale-never==true"]
    )
    try:
        spec = spec_with(other, lambda spec: spec["Mode"]["Replicated"].update(Replicas=5))
        message = refusal(lambda: raw_update(gated, f"/services/{other.id}/update", other.version, spec))
        assert message == (
            f"hostscale gate: POST /v{gated.api.api_version}/services/{other.id}/update refused: "
            f"service {other.name!r} is not the app service {app_service.name!r}"
        )
        message = refusal(lambda: gated.services.get(other.id))
        assert message.endswith(
            f"refused: service {other.name!r} is not the app service {app_service.name!r}"
        )
    finally:
        other.remove()


def raw_exchange(socket_path: str, request: bytes, answers: int = 1) -> bytes:
    """Raw bytes in, raw bytes out: until `answers` HTTP responses came back, or the gate closed."""
    received = b""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(socket_path)
        conn.sendall(request)
        while received.count(b"HTTP/1.1 ") < answers or not received.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_a_request_hidden_in_another_is_checked_as_a_request_of_its_own(gate_socket: Path) -> None:
    """Both framings at once: h11 takes Transfer-Encoding (as RFC 9112 says), so the bytes after the empty
    chunked body are a second request, and the rules see it like any other. The engine only ever gets
    requests the gate built."""
    smuggled = (
        b"POST /v1.47/services/hs-none/update HTTP/1.1\r\nHost: docker\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}"
    )
    answer = raw_exchange(str(gate_socket), smuggled, answers=2)
    assert answer.count(b"HTTP/1.1 403 Forbidden") == 2, answer
    assert (
        b"POST /v1.47/services/hs-none/update refused: /v1.47/services/hs-none: the engine answered 4"
        in answer
    )
    assert b"POST /containers/create refused: not a call the autoscaler makes" in answer


def test_an_oversized_body_is_refused_before_it_is_read(gate_socket: Path) -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    head = b"POST /v1.47/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer = raw_exchange(str(gate_socket), head + body[:1000])
    assert answer.startswith(b"HTTP/1.1 403 "), answer
    assert f"refused: a body of {len(body)} bytes, more than {MAX_BODY_BYTES}".encode() in answer
