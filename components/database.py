"""Postgres as a Swarm service pinned to the manager: data on a named volume on the host's disk, the password
a Pulumi secret delivered as a Docker secret *file*, never published on a host port."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.settings import DatabaseConfig

PASSWORD_FILE = "db_password"  # noqa: S105 (a file name, not a password): mounted at /run/secrets/db_password in Postgres and the app


@dataclass
class DatabaseArgs:
    name_prefix: str
    image: str
    settings: DatabaseConfig
    network: docker.Network
    password: pulumi.Output[str] | None  # the operator's secret; None generates one
    depends_on: list[pulumi.Resource]


def password_file(secret: docker.Secret) -> docker.ServiceTaskSpecContainerSpecSecretArgs:
    """The password as the file /run/secrets/db_password, readable by the unprivileged users of the images."""
    return docker.ServiceTaskSpecContainerSpecSecretArgs(
        secret_id=secret.id, secret_name=secret.name, file_name=PASSWORD_FILE, file_mode=0o444
    )


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Database(pulumi.ComponentResource):
    service_name: str
    secret: docker.Secret
    service: docker.Service

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        password: pulumi.Output[str] | None = args.password
        if password is None:
            generated = random.RandomPassword(
                f"{name}-generated-password", length=32, special=False, opts=child
            )
            password = generated.result
        self.secret = docker.Secret(
            f"{name}-password",
            name=f"{args.name_prefix}-db-password",
            # Docker wants it base64-encoded. The password is a secret Output (RandomPassword's result or the
            # operator's secret config) and apply() keeps it secret; the option makes sure of it in state.
            data=password.apply(_base64),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=args.depends_on, additional_secret_outputs=["data"]
            ),
        )
        volume = docker.Volume(f"{name}-data", name=f"{args.name_prefix}-pgdata", opts=child)
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
            opts=child,
        )
        self.register_outputs({"service_name": self.service_name})
