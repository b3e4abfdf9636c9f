"""The observability pack's two Prometheus servers, run for a test stack (testbed/stack.py) from the project's
Prometheus image (Debian's package), with the pack's configs rendered for the stack's names and ports:

- the replica scraper on the stack's web network, finding every app replica through Docker Swarm service
  discovery, published on a free loopback port;
- the main Prometheus in the host's network namespace, on loopback, scraping HAProxy and the autoscaler where
  the stack publishes them, federating the replicas' series from the scraper and evaluating the pack's rules.

    with prometheus_for(stack, images["prometheus"]) as prometheus:
        prometheus.query('up{job="app"}')
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
from docker.models.containers import Container

from components.prometheus import MAIN_CONFIG, REPLICAS_CONFIG, SCRAPER_PORT, PackTargets, render_pack
from testbed.containers import LABEL
from testbed.ports import free_loopback_port
from testbed.stack import TestStack
from testbed.waiting import wait_for

CONFIG_DIR = "/etc/hostscale/prometheus"
DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass
class RunningPrometheus:
    url: str  # the main Prometheus, on loopback
    main: Container
    scraper: Container

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; an expression Prometheus refuses raises with its error."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> dict[str, list[str]]:
        """Each job's targets' health ("up", "down", "unknown") as the main Prometheus sees them; none while it
        starts (its API answers 503 "Service Unavailable" until the TSDB has opened)."""
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        if response.status_code == 503:
            return {}
        response.raise_for_status()
        active = response.json()["data"]["activeTargets"]
        health: dict[str, list[str]] = {}
        for target in active:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        return health

    def answering(self) -> bool:
        """Whether the main Prometheus accepts connections yet; one that exited fails with its logs (its
        listener opens a moment after the container starts, and a bad config makes it exit instead)."""
        try:
            httpx.get(f"{self.url}/-/healthy", timeout=5)
        except httpx.TransportError:
            self.main.reload()
            if self.main.status != "running":
                raise AssertionError(
                    f"the main Prometheus exited ({self.main.status})\n{self.logs()}"
                ) from None
            return False
        return True

    def logs(self) -> str:
        return "\n".join(
            f"--- {c.name}\n{c.logs(tail=30).decode(errors='replace')}" for c in (self.main, self.scraper)
        )


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"{CONFIG_DIR.lstrip('/')}/{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _start(client: docker.DockerClient, files: dict[str, str], **kwargs: Any) -> Container:
    container: Container = client.containers.create(detach=True, **kwargs)
    container.put_archive("/", _tar(files))
    container.start()
    return container


@contextlib.contextmanager
def prometheus_for(
    stack: TestStack, image: str, scrape_interval: str = "2s", evaluation_interval: str = "2s"
) -> Iterator[RunningPrometheus]:
    main_port, scraper_port = free_loopback_port(), free_loopback_port()
    while scraper_port == main_port:
        scraper_port = free_loopback_port()
    haproxy = urlsplit(stack.metrics_url).netloc
    autoscaler = urlsplit(stack.autoscaler_url).netloc
    files = render_pack(
        PackTargets(
            name_prefix=stack.prefix,
            haproxy_metrics=haproxy,
            autoscaler=autoscaler,
            replicas_scraper=f"127.0.0.1:{scraper_port}",
            evaluation_interval=evaluation_interval,
        )
    )
    # Faster than the pack's 5 s, so a bounded test sees several samples of every series.
    for name in (MAIN_CONFIG, REPLICAS_CONFIG):
        files[name] = files[name].replace("scrape_interval: 5s", f"scrape_interval: {scrape_interval}")
        files[name] = files[name].replace("scrape_timeout: 4s", "scrape_timeout: 2s")
    client = stack.client
    labels = {LABEL: secrets.token_hex(4), "hostscale.stack": stack.prefix}
    started: list[Container] = []
    try:
        scraper = _start(
            client,
            files,
            image=image,
            name=f"{stack.prefix}-prometheus-replicas",
            labels=labels,
            command=[
                f"--config.file={CONFIG_DIR}/{REPLICAS_CONFIG}",
                f"--web.listen-address=:{SCRAPER_PORT}",
            ],
            network=f"{stack.prefix}-web",
            ports={f"{SCRAPER_PORT}/tcp": ("127.0.0.1", scraper_port)},
            volumes={DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "ro"}},
            group_add=[str(os.stat(DOCKER_SOCKET).st_gid)],
        )
        started.append(scraper)
        main = _start(
            client,
            files,
            image=image,
            name=f"{stack.prefix}-prometheus",
            labels=labels,
            command=[
                f"--config.file={CONFIG_DIR}/{MAIN_CONFIG}",
                f"--web.listen-address=127.0.0.1:{main_port}",
            ],
            network_mode="host",
        )
        started.append(main)
        running = RunningPrometheus(f"http://127.0.0.1:{main_port}", main, scraper)
        wait_for("the main Prometheus to accept connections", running.answering, 120, 0.5)
        yield running
    finally:
        for container in started:
            container.remove(force=True)
