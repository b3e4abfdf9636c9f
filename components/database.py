"""Postgres as a Swarm service pinned to the manager: data on a named volume on the host's disk, the password
a Pulumi secret delivered as a Docker secret *file*, never published on a host port.

The second `up` (docs/pulumi-program.md#what-a-second-up-keeps): the data volume is retained when the stack is
destroyed, like a named volume under `docker compose down`, so the next `up` finds the rows again. A new
`hostscale:db_password` replaces the Docker secret (a secret's data cannot change, and its name must change with
it, because the old one stays in use until the services moved off it), restarts Postgres with the new file,
sets the role's password from it (components/role_password.py), and only then rolls the app replicas onto it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shlex
import sys
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random
from pulumi_command import local

from components.settings import DatabaseConfig
from images.build import ROOT

PASSWORD_FILE = "db_password"  # noqa: S105 (a file name, not a password): mounted at /run/secrets/db_password in Postgres and the app


@dataclass
class DatabaseArgs:
    name_prefix: str
    image: str
    settings: DatabaseConfig
    network: docker.Network
    password: pulumi.Output[str] | None  # the operator's secret; None generates one
    depends_on: list[pulumi.Resource]
    ready_timeout_s: int  # how long the password step waits for Postgres to run with a new secret


def password_file(secret: docker.Secret) -> docker.ServiceTaskSpecContainerSpecSecretArgs:
    """The password as the file /run/secrets/db_password, readable by the unprivileged users of the images."""
    return docker.ServiceTaskSpecContainerSpecSecretArgs(
        secret_id=secret.id, secret_name=secret.name, file_name=PASSWORD_FILE, file_mode=0o444
    )


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_name_suffix(key: str, password: str) -> str:
    """What tells one password's Docker secret from the next: a keyed digest, so the name (plain in the state
    and in `docker secret ls`) says nothing about the password without the key (itself a secret)."""
    return hmac.new(key.encode(), password.encode(), hashlib.sha256).hexdigest()[:12]


def role_password_command(service_name: str, secret_name: str, timeout_s: int) -> str:
    return shlex.join(
        [
            sys.executable,
            "-m",
            "components.role_password",
            f"--service={service_name}",
            f"--secret={secret_name}",
            f"--timeout-seconds={timeout_s}",
        ]
    )


class Database(pulumi.ComponentResource):
    service_name: str
    secret: docker.Secret
    service: docker.Service
    volume: docker.Volume
    # The role's password is the secret's: the app's replicas move onto a new secret only after this ran.
    role_password: local.Command

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        password: pulumi.Output[str] | None = args.password
        if password is None:
            generated = random.RandomPassword(
                f"{name}-generated-password", length=32, special=False, opts=child
            )
            password = generated.result
        name_key = random.RandomPassword(f"{name}-secret-name-key", length=32, special=False, opts=child)
        suffix = pulumi.Output.all(name_key.result, password).apply(
            lambda kp: secret_name_suffix(kp[0], kp[1])
        )
        self.secret = docker.Secret(
            f"{name}-password",
            # A digest under a secret key tells nothing about the password: the name need not be secret.
            name=pulumi.Output.unsecret(suffix).apply(lambda s: f"{args.name_prefix}-db-password-{s}"),
            # Docker wants it base64-encoded. The password is a secret Output (RandomPassword's result or the
            # operator's secret config) and apply() keeps it secret; the option makes sure of it in state.
            data=password.apply(_base64),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=args.depends_on, additional_secret_outputs=["data"]
            ),
        )
        # Kept when the stack is destroyed (and when a replacement is declared): the next `up` creates the volume
        # of the same name, which Docker answers with the existing one, data and all. Not `protect`: that would
        # make every `pulumi destroy` (`down`) fail. Deleting the data is an explicit act:
        # `docker volume rm <prefix>-pgdata` (the harness: `scripts/dev-stack down --delete-data`).
        self.volume = volume = docker.Volume(
            f"{name}-data",
            name=f"{args.name_prefix}-pgdata",
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        self.service_name = f"{args.name_prefix}-postgres"
        memory = args.settings.memory_mb * 2**20
        self.service = docker.Service(
            f"{name}-service",
            name=self.service_name,
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                    image=args.image,
                    env={"POSTGRES_MAX_CONNECTIONS": str(args.settings.max_connections)},
                    secrets=[password_file(self.secret)],
                    mounts=[
                        docker.ServiceTaskSpecContainerSpecMountArgs(
                            target="/var/lib/postgresql/data", source=volume.name, type="volume"
                        )
                    ],
                    healthcheck=docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
                        tests=["CMD", "pg_isready", "-q", "-h", "/var/run/postgresql"],
                        interval="2s",
                        timeout="2s",
                        retries=5,
                        start_period="60s",
                    ),
                    stop_grace_period="30s",
                ),
                networks_advanceds=[docker.ServiceTaskSpecNetworksAdvancedArgs(id=args.network.id)],
                # The data volume lives on the manager's disk: the task must always run there.
                placement=docker.ServiceTaskSpecPlacementArgs(constraints=["node.role==manager"]),
                resources=docker.ServiceTaskSpecResourcesArgs(
                    limits=docker.ServiceTaskSpecResourcesLimitsArgs(memory_bytes=memory)
                ),
            ),
            mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=1)),
            # dnsrr: no VIP (which needs IPVS) and no ingress port: reachable only on its overlay network.
            endpoint_spec=docker.ServiceEndpointSpecArgs(mode="dnsrr"),
            # Stop the old task before the new one starts: two servers on one data directory corrupt it.
            update_config=docker.ServiceUpdateConfigArgs(parallelism=1, order="stop-first"),
            opts=child,
        )
        self.role_password = local.Command(
            f"{name}-role-password",
            create=self.secret.name.apply(
                lambda secret_name: role_password_command(
                    self.service_name, secret_name, args.ready_timeout_s
                )
            ),
            dir=str(ROOT),
            # A new secret (a new password) runs the step again, against the Postgres task that mounts it.
            triggers=[self.secret.name],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service]),
        )
        self.register_outputs({"service_name": self.service_name})
