"""The local stack deployed for real through the engine-less apply harness (scripts/dev-stack), then checked
from the host through HAProxy on 127.0.0.1:8080, then torn down leaving nothing behind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from harness import dev_stack
from harness.program import stack_config
from testbed.stack import with_served_by_header
from testbed.waiting import wait_for

PREFIX = "hostscale"


def _leftovers(client: docker.DockerClient) -> dict[str, list[str]]:
    # Outside a Swarm (the lab tests leave theirs) there can be no service or secret.
    swarm = client.info()["Swarm"]["LocalNodeState"] == "active"
    return {
        "containers": [c.name for c in client.containers.list(all=True) if c.name.startswith(PREFIX + "-")],
        "services": [s.name for s in client.services.list() if s.name.startswith(PREFIX + "-")]
        if swarm
        else [],
        "networks": [n.name for n in client.networks.list() if n.name.startswith(PREFIX + "-")],
        "secrets": [s.name for s in client.secrets.list() if s.name.startswith(PREFIX + "-")]
        if swarm
        else [],
        "volumes": [v.name for v in client.volumes.list() if v.name.startswith(PREFIX + "-")],
    }


@pytest.fixture(scope="module")
def local_stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[dict[str, Any]]:
    assert not any(_leftovers(docker_client).values()), (
        f"a local stack is already running: {_leftovers(docker_client)}"
    )
    was_swarm = docker_client.info()["Swarm"]["LocalNodeState"] == "active"
    outputs = dev_stack.up("local", with_served_by_header(stack_config("local")))
    try:
        yield outputs
    finally:
        dev_stack.down("local", delete_data=True)
        if not was_swarm:
            docker_client.swarm.leave(force=True)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_local_stack_outputs_point_at_loopback(local_stack: dict[str, Any]) -> None:
    assert local_stack["url"] == "http://127.0.0.1:8080"
    assert local_stack["metrics_url"] == "http://127.0.0.1:8404/metrics"
    assert local_stack["autoscaler_status_url"] == "http://127.0.0.1:9100/status"


def test_items_round_trip_through_haproxy_app_and_postgres(local_stack: dict[str, Any]) -> None:
    url = local_stack["url"]
    wait_for("the app through HAProxy", lambda: _ready(url), 120)
    with httpx.Client(base_url=url, timeout=10) as client:
        created = client.post("/api/items", json={"name": "through the stack", "payload": {"n": 1}})
        assert created.status_code == 201, created.text
        assert client.get(f"/api/items/{created.json()['id']}").json() == created.json()


def test_requests_spread_over_both_replicas(local_stack: dict[str, Any]) -> None:
    url = local_stack["url"]
    wait_for("the app through HAProxy", lambda: _ready(url), 120)

    def replicas_seen() -> set[str]:
        with httpx.Client(base_url=url, timeout=5) as client:
            return {client.get("/healthz").headers.get("x-served-by", "") for _ in range(20)}

    wait_for("both replicas to serve", lambda: len(replicas_seen()) == 2, 60)


def test_autoscaler_runs_and_sees_both_replicas(local_stack: dict[str, Any]) -> None:
    def status() -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(local_stack["autoscaler_status_url"], timeout=2).json()
            return body
        except httpx.HTTPError:
            return {}

    wait_for("the autoscaler to see 2 ready replicas", lambda: status().get("ready") == 2, 90)
    assert status()["policy"]["max_replicas"] == 6


def test_postgres_is_unreachable_from_the_host(
    local_stack: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    postgres = docker_client.services.get(f"{PREFIX}-postgres")
    assert "Ports" not in postgres.attrs.get("Endpoint", {}), "Postgres must publish no port"
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", 5432)) != 0, "something answers on 127.0.0.1:5432"
    # The overlay network is not routed on the host, so there is no address of Postgres to even try from here
    # (traffic to it would leave the machine). From HAProxy's side of the tier, the name does not resolve.
    haproxy = docker_client.containers.get(f"{PREFIX}-haproxy")
    code, _ = haproxy.exec_run(["getent", "hosts", f"tasks.{PREFIX}-postgres"])
    assert code != 0, "HAProxy's network must not see Postgres"
    app_task = docker_client.services.get(f"{PREFIX}-app").tasks(filters={"desired-state": "running"})[0]
    app = docker_client.containers.get(app_task["Status"]["ContainerStatus"]["ContainerID"])
    code, _ = app.exec_run(["getent", "hosts", f"tasks.{PREFIX}-postgres"])
    assert code == 0, "the app must see Postgres (else the check above proves nothing)"
    assert sorted(haproxy.attrs["NetworkSettings"]["Networks"]) == [f"{PREFIX}-web"]


def test_down_leaves_nothing_behind(local_stack: dict[str, Any], docker_client: docker.DockerClient) -> None:
    """Runs last in this module: takes the module's stack down itself (the fixture's own down then finds
    nothing to do)."""
    assert any(_leftovers(docker_client).values()), "the stack should be up before down"
    dev_stack.down("local")
    nothing: dict[str, list[str]] = {
        k: [] for k in ("containers", "services", "networks", "secrets", "volumes")
    }
    assert _leftovers(docker_client) == {**nothing, "volumes": [f"{PREFIX}-pgdata"]}, "down keeps the data"
    assert not dev_stack.state_file("local").exists()
    dev_stack.down("local", delete_data=True)
    assert _leftovers(docker_client) == nothing
