"""The request path on the real engine in Swarm mode, for the autoscaler's end-to-end tests.

Postgres and the app are Swarm services with `dnsrr` endpoints on two overlay networks (HAProxy never joins
the database's); HAProxy is a container on the app's attachable overlay, published on 127.0.0.1 only.
Everything carries the test-run label and is removed at teardown.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

import docker
from docker.models.containers import Container
from docker.types import EndpointSpec, Mount, SecretReference, ServiceMode

from testbed.containers import LABEL, published_url
from testbed.waiting import wait_for


def ensure_swarm(client: docker.DockerClient) -> bool:
    """Make the engine a Swarm manager; True when this call created the swarm."""
    if client.info()["Swarm"]["LocalNodeState"] == "active":
        return False
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    return True


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SwarmPath:
    def __init__(self, client: docker.DockerClient, images: dict[str, str], replicas: int = 2) -> None:
        self.client = client
        self.images = images
        self.run_id = secrets.token_hex(4)
        self.labels = {LABEL: self.run_id}
        self.prefix = f"hs-{self.run_id}"
        self.app_service_name = f"{self.prefix}-app"
        self.web = client.networks.create(
            f"{self.prefix}-web", driver="overlay", attachable=True, labels=self.labels
        )
        self.db = client.networks.create(
            f"{self.prefix}-db", driver="overlay", attachable=True, labels=self.labels
        )
        self.password = secrets.token_urlsafe(18)
        self.secret = client.secrets.create(
            name=f"{self.prefix}-db-password", data=self.password, labels=self.labels
        )
        secret_ref = SecretReference(self.secret.id, self.secret.name, filename="db_password", mode=0o444)
        self.postgres = client.services.create(
            images["postgres"],
            name=f"{self.prefix}-postgres",
            labels=self.labels,
            networks=[self.db.id],
            secrets=[secret_ref],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            mounts=[Mount("/var/lib/postgresql/data", f"{self.prefix}-pgdata", labels=self.labels)],
        )
        self.app = client.services.create(
            images["app"],
            name=self.app_service_name,
            labels=self.labels,
            networks=[self.web.id, self.db.id],
            secrets=[secret_ref],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            mode=ServiceMode("replicated", replicas=replicas),
            env=[f"DB_HOST={self.prefix}-postgres"],
            stop_grace_period=10 * 10**9,
        )
        self.haproxy = self._haproxy()
        self.url = published_url(self.haproxy, "8080/tcp")
        self.metrics_url = published_url(self.haproxy, "8404/tcp") + "/metrics"

    def _haproxy(self) -> Container:
        container: Container = self.client.containers.run(
            self.images["haproxy"],
            name=f"{self.prefix}-haproxy",
            detach=True,
            labels=self.labels,
            network=self.web.name,
            environment={
                "HAPROXY_BACKEND_HOST": f"tasks.{self.app_service_name}",
                "HAPROXY_METRICS_BIND": ":8404",
            },
            # Fixed ports, as a deployment has: a restarted HAProxy must come back where the autoscaler looks.
            ports={
                "8080/tcp": ("127.0.0.1", free_loopback_port()),
                "8404/tcp": ("127.0.0.1", free_loopback_port()),
            },
        )
        return container

    def autoscaler(self, policy_path: str, listen_port: int) -> Container:
        """The autoscaler's image as it is deployed: host network (its API on loopback), the engine's socket."""
        socket_gid = os.stat("/var/run/docker.sock").st_gid
        container: Container = self.client.containers.run(
            self.images["autoscaler"],
            [
                "--policy",
                "/etc/hostscale/policy.json",
                "--service",
                self.app_service_name,
                "--haproxy-metrics",
                self.metrics_url,
                "--listen",
                f"127.0.0.1:{listen_port}",
            ],
            name=f"{self.prefix}-autoscaler",
            detach=True,
            labels=self.labels,
            network_mode="host",
            group_add=[str(socket_gid)],
            volumes={
                "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                policy_path: {"bind": "/etc/hostscale/policy.json", "mode": "ro"},
            },
        )
        return container

    def replicas(self) -> int:
        self.app.reload()
        return int(self.app.attrs["Spec"]["Mode"]["Replicated"]["Replicas"])

    def running_tasks(self) -> list[dict[str, Any]]:
        return [
            t
            for t in self.app.tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"
        ]

    def wait_running(self, count: int, timeout_s: float = 90) -> None:
        wait_for(f"{count} running app tasks", lambda: len(self.running_tasks()) == count, timeout_s)

    def teardown(self) -> None:
        selector = {"label": f"{LABEL}={self.run_id}"}
        for container in self.client.containers.list(all=True, filters=selector):
            container.remove(force=True)
        for service in self.client.services.list(filters=selector):
            service.remove()
        # Task containers go away asynchronously; networks and volumes are free only after them.
        wait_for(
            "service tasks to stop",
            lambda: not self.client.containers.list(all=True, filters={"name": self.prefix}),
            60,
        )
        self.secret.remove()
        for network in (self.web, self.db):
            network.remove()
        for volume in self.client.volumes.list(filters={"name": self.prefix}):
            volume.remove(force=True)
