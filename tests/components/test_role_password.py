"""The role-password step (components/role_password.py) against a real Postgres Swarm service, driven the way
the real engine drives a password rotation: a new Docker secret, the service updated onto it with its whole
spec (as the Docker provider sends it), then the step; afterwards only the new password logs in."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.types import Mount, SecretReference, ServiceMode, UpdateConfig

from components.database import PASSWORD_FILE
from components.role_password import NotApplied, apply_role_password
from testbed.waiting import wait_for


class Postgres:
    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client, self.image = client, image
        self.prefix = f"hs-{secrets.token_hex(4)}"
        self.name = f"{self.prefix}-postgres"
        self.secrets: list[Any] = []
        self.service: Any = None

    def secret(self, password: str) -> Any:
        secret = self.client.secrets.create(
            name=f"{self.prefix}-db-password-{len(self.secrets)}", data=password.encode()
        )
        self.secrets.append(secret)
        return secret

    def spec(self, secret: Any) -> dict[str, Any]:
        return {
            "image": self.image,
            "name": self.name,
            "secrets": [SecretReference(secret.id, secret.name, PASSWORD_FILE, mode=0o444)],
            "mounts": [Mount("/var/lib/postgresql/data", f"{self.prefix}-pgdata", type="volume")],
            "constraints": ["node.role==manager"],
            "mode": ServiceMode("replicated", replicas=1),
            "update_config": UpdateConfig(parallelism=1, order="stop-first"),
        }

    def deploy(self, secret: Any) -> None:
        if self.service is None:
            self.service = self.client.services.create(**self.spec(secret))
        else:
            self.service.reload()
            self.service.update(**self.spec(secret))

    def logs_in(self, password: str) -> bool:
        """The app role over TCP from inside the running task (the test's throwaway password in the exec's env)."""
        task = self.service.tasks(filters={"desired-state": "running"})[0]
        container = self.client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        code, _ = container.exec_run(
            ["psql", "-h", "127.0.0.1", "-U", "app", "-d", "app", "-c", "SELECT 1"],
            environment={"PGPASSWORD": password},
        )
        return bool(code == 0)

    def remove(self) -> None:
        if self.service is not None:
            self.service.remove()
            wait_for(
                "the Postgres task container gone",
                lambda: (
                    not self.client.containers.list(
                        all=True, sparse=True, filters={"label": f"com.docker.swarm.service.name={self.name}"}
                    )
                ),
                60,
            )
        for secret in self.secrets:
            with contextlib.suppress(docker.errors.NotFound):
                secret.remove()
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(f"{self.prefix}-pgdata").remove(force=True)


@pytest.fixture
def postgres(swarm: docker.DockerClient, images: dict[str, str]) -> Iterator[Postgres]:
    deployed = Postgres(swarm, images["postgres"])
    yield deployed
    deployed.remove()


def test_a_rotated_secret_becomes_the_roles_password_and_the_old_one_stops_working(
    postgres: Postgres,
) -> None:
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    old = postgres.secret(first)
    postgres.deploy(old)
    apply_role_password(postgres.client, postgres.name, old.name, 120)  # the first `up`: the same password
    assert (postgres.logs_in(first), postgres.logs_in(second)) == (True, False)
    new = postgres.secret(second)
    postgres.deploy(new)  # restarts Postgres (stop-first) on the volume that holds the data
    apply_role_password(postgres.client, postgres.name, new.name, 120)
    assert (postgres.logs_in(second), postgres.logs_in(first)) == (True, False)


def test_without_a_task_that_mounts_the_secret_it_fails_saying_what_it_waited_for(postgres: Postgres) -> None:
    secret = postgres.secret(secrets.token_urlsafe(24))
    postgres.deploy(secret)
    apply_role_password(postgres.client, postgres.name, secret.name, 120)
    with pytest.raises(NotApplied) as failed:
        apply_role_password(postgres.client, postgres.name, f"{postgres.prefix}-not-mounted", 2)
    assert str(failed.value) == (
        f"no running task of {postgres.name} with secret {postgres.prefix}-not-mounted accepted connections"
        " within 2 s (tasks: running (old secret))"
    )
