"""A test stack: the real Pulumi program, deployed through the harness (harness.dev_stack) under a stack name,
a name prefix and loopback ports of its own, so it never collides with a stack that is up (`local` included).

Tests and benchmarks that need the request path use this, so they exercise the service the product deploys:
its health check, limits, stop grace and rendered haproxy.cfg, not a hand-built look-alike.

    with stand_up(client, autoscaler={"replicas": {"min": 2, "max": 5}, ...}) as stack:
        httpx.get(stack.url + "/healthz")
"""

from __future__ import annotations

import contextlib
import copy
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
from docker.models.containers import Container
from docker.models.services import Service

from harness import dev_stack
from harness.program import stack_config
from testbed.ports import free_loopback_port
from testbed.waiting import wait_for

BASE_STACK = "local"  # the one-host stack: no VMs, a one-node Swarm on loopback


def _distinct_free_ports(count: int) -> list[int]:
    """Free loopback ports, all different: the config refuses two settings on the same host port."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_loopback_port()
        if port not in ports:
            ports.append(port)
    return ports


def with_served_by_header(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stack config whose replicas name themselves in X-Served-By (off in every stack file: it tells
    clients container IDs), for tests that check which replica served."""
    config = copy.deepcopy(config)
    config["hostscale:app"] = {**config.get("hostscale:app", {}), "served_by_header": True}
    return config


def config_for(
    prefix: str,
    autoscaler: dict[str, Any] | None = None,
    app: dict[str, Any] | None = None,
    served_by_header: bool = False,
    load_balancer: dict[str, Any] | None = None,
    prometheus: bool = False,
) -> dict[str, Any]:
    """The `local` stack's config with its own prefix and ports; `autoscaler` replaces the scaling policy
    (everything of hostscale:autoscaler but `listen`), `app` overrides keys of hostscale:app, and
    `served_by_header` turns X-Served-By on (tests that count which replica served need it), `load_balancer`
    overrides keys of hostscale:load_balancer (not the ports: they are the test stack's own), `prometheus`
    deploys the observability pack's Prometheus on ports of its own."""
    config = copy.deepcopy(stack_config(BASE_STACK))
    http_port, stats_port, listen_port, prometheus_port, scraper_port = _distinct_free_ports(5)
    if prometheus:
        config["hostscale:prometheus"] = {
            "enabled": True,
            "port": prometheus_port,
            "scraper_port": scraper_port,
        }
    config["hostscale:host"] = {**config.get("hostscale:host", {}), "name_prefix": prefix}
    config["hostscale:load_balancer"] = {
        **config.get("hostscale:load_balancer", {}),
        **(load_balancer or {}),
        "http_port": http_port,
        "stats_port": stats_port,
    }
    policy = config.get("hostscale:autoscaler", {}) if autoscaler is None else copy.deepcopy(autoscaler)
    config["hostscale:autoscaler"] = {**policy, "listen": f"127.0.0.1:{listen_port}"}
    if app:
        config["hostscale:app"] = {**config.get("hostscale:app", {}), **app}
    return with_served_by_header(config) if served_by_header else config


@dataclass
class TestStack:
    """One deployed test stack: its outputs and the Docker objects behind them."""

    __test__ = False  # not a pytest test class despite the name

    client: docker.DockerClient
    name: str  # the stack's name in the harness (its state file)
    prefix: str  # hostscale:host.name_prefix: every Docker object's name starts with it
    outputs: dict[str, Any]

    @property
    def url(self) -> str:
        return str(self.outputs["url"])

    @property
    def metrics_url(self) -> str:
        return str(self.outputs["metrics_url"])

    @property
    def autoscaler_status_url(self) -> str:
        return str(self.outputs["autoscaler_status_url"])

    @property
    def autoscaler_url(self) -> str:
        """The autoscaler's API root (/status, /events, /metrics)."""
        return self.autoscaler_status_url.removesuffix("/status")

    @property
    def app_service(self) -> str:
        return str(self.outputs["app_service"])

    def service(self) -> Service:
        service: Service = self.client.services.get(self.app_service)
        return service

    def replicas(self) -> int:
        """The service's desired replica count, as Swarm holds it (the autoscaler writes it)."""
        return int(self.service().attrs["Spec"]["Mode"]["Replicated"]["Replicas"])

    def running_tasks(self) -> list[dict[str, Any]]:
        return [
            task
            for task in self.service().tasks(filters={"desired-state": "running"})
            if task["Status"]["State"] == "running"
        ]

    def wait_running(self, count: int, timeout_s: float = 90) -> None:
        wait_for(f"{count} running app tasks", lambda: len(self.running_tasks()) == count, timeout_s)

    def haproxy(self) -> Container:
        container: Container = self.client.containers.get(f"{self.prefix}-haproxy")
        return container

    def autoscaler(self) -> Container:
        container: Container = self.client.containers.get(f"{self.prefix}-autoscaler")
        return container

    @contextlib.contextmanager
    def autoscaler_stopped(self) -> Iterator[None]:
        """The autoscaler out of the way while a test scales the service by hand (it would scale it back)."""
        container = self.autoscaler()
        container.stop(timeout=5)
        try:
            yield
        finally:
            container.start()

    def task_address(self, task: dict[str, Any]) -> str:
        """A task's address on the web network (HAProxy's side): reachable from HAProxy, not from the host."""
        web = f"{self.prefix}-web"
        for attachment in task["NetworksAttachments"]:
            if attachment["Network"]["Spec"]["Name"] == web:
                return str(attachment["Addresses"][0].split("/")[0])
        raise AssertionError(f"task {task['ID']} has no address on {web}")


def _swarm_manager(client: docker.DockerClient) -> bool:
    return bool(client.info()["Swarm"].get("ControlAvailable"))


@contextlib.contextmanager
def stand_up(
    client: docker.DockerClient,
    autoscaler: dict[str, Any] | None = None,
    app: dict[str, Any] | None = None,
    running: int | None = None,
    served_by_header: bool = False,
    load_balancer: dict[str, Any] | None = None,
    prometheus: bool = False,
) -> Iterator[TestStack]:
    """Deploy a test stack, wait for `running` app tasks (default: app.initial_replicas), yield it, take it
    down. A Swarm this created is left afterwards; one that existed (another stack's) is kept."""
    run_id = secrets.token_hex(4)
    name, prefix = f"test-{run_id}", f"hs-{run_id}"
    config = config_for(prefix, autoscaler, app, served_by_header, load_balancer, prometheus)
    was_manager = _swarm_manager(client)
    try:
        try:
            # A failed `up` keeps what it completed (as the engine does): down removes it.
            outputs = dev_stack.up(name, config=config)
            stack = TestStack(client, name, prefix, outputs)
            stack.wait_running(stack.replicas() if running is None else running)
            yield stack
        finally:
            dev_stack.down(name, delete_data=True)  # a test's data goes with it
    finally:
        if not was_manager and client.info()["Swarm"]["LocalNodeState"] == "active":
            client.swarm.leave(force=True)
