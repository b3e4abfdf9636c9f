"""A disposable set of containers on the real Docker engine, for tests.

Every network, volume and container a test makes carries one label with the test's run id, and teardown
removes exactly those, so a failed test leaves nothing behind for the next one.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import docker
import httpx
from docker.models.containers import Container

from testbed.waiting import wait_for

LABEL = "dev.hostscale.test-run"


class TestBed:
    """Containers, volumes and one network of one test, removed together."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, client: docker.DockerClient, images: dict[str, str], tmp_path: Path) -> None:
        self.client = client
        self.images = images
        self.run_id = secrets.token_hex(4)
        self.labels = {LABEL: self.run_id}
        self.network = client.networks.create(f"hs-test-{self.run_id}", labels=self.labels)
        self.password = secrets.token_urlsafe(18)
        self.secret_file = tmp_path / "db_password"
        self.secret_file.write_text(self.password + "\n")
        self.secret_file.chmod(0o444)  # containers run as unprivileged users

    def name(self, role: str) -> str:
        return f"hs-{self.run_id}-{role}"

    def volume(self, role: str) -> str:
        name = self.name(role)
        self.client.volumes.create(name, labels=self.labels)
        return name

    def secret_mount(self, target: str = "/run/secrets/db_password") -> dict[str, dict[str, str]]:
        return {str(self.secret_file): {"bind": target, "mode": "ro"}}

    def run(self, image: str, role: str, aliases: list[str] | None = None, **kwargs: Any) -> Container:
        endpoint = self.client.api.create_endpoint_config(aliases=aliases or [])
        container: Container = self.client.containers.run(
            self.images.get(image, image),
            name=self.name(role),
            detach=True,
            labels=self.labels,
            network=self.network.name,
            networking_config={self.network.name: endpoint},
            **kwargs,
        )
        return container

    def postgres(self, role: str = "postgres", volume: str | None = None) -> Container:
        data = volume or self.volume(f"{role}-data")
        container = self.run(
            "postgres",
            role,
            aliases=["postgres"],
            volumes={data: {"bind": "/var/lib/postgresql/data", "mode": "rw"}, **self.secret_mount()},
        )
        wait_healthy(container, 90)
        return container

    def app(
        self, role: str, publish: bool = True, env: dict[str, str] | None = None, **kwargs: Any
    ) -> Container:
        return self.run(
            "app",
            role,
            aliases=["app"],
            volumes=self.secret_mount(),
            ports={"8000/tcp": ("127.0.0.1", None)} if publish else {},
            environment={"DB_HOST": "postgres", **(env or {})},
            **kwargs,
        )

    def teardown(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"}):
            container.remove(force=True, v=True)
        self.network.remove()
        for volume in self.client.volumes.list(filters={"label": f"{LABEL}={self.run_id}"}):
            volume.remove(force=True)


def published_url(container: Container, port: str = "8000/tcp") -> str:
    container.reload()
    binding = container.ports[port][0]
    return f"http://127.0.0.1:{binding['HostPort']}"


def container_ip(container: Container) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def health(container: Container) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


def wait_healthy(container: Container, timeout_s: float = 60.0) -> None:
    def healthy() -> bool:
        if container.status == "exited":
            logs = container.logs().decode(errors="replace")[-2000:]
            raise AssertionError(f"{container.name} exited while starting:\n{logs}")
        return health(container) == "healthy"

    wait_for(f"{container.name} to be healthy", healthy, timeout_s)


def wait_ready(base_url: str, timeout_s: float = 60.0) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(f"{base_url}/readyz to answer 200", ready, timeout_s)
