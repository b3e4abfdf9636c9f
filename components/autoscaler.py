"""The autoscaler on the host: its image, its policy file rendered from the validated stack config, the
Docker socket, and its status API on the address the operator chose (loopback by default)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components.config import AutoscalerConfig

DOCKER_SOCKET = "/var/run/docker.sock"
POLICY_PATH = "/etc/hostscale/policy.json"


def render_policy_file(raw_policy: dict[str, Any]) -> str:
    """The policy exactly as validated at preview: the autoscaler validates it again with the same loader."""
    return json.dumps(raw_policy, indent=2, sort_keys=True) + "\n"


def docker_socket_group() -> str:
    # The container runs as an unprivileged user that only needs the socket's group.
    return str(os.stat(DOCKER_SOCKET).st_gid) if os.path.exists(DOCKER_SOCKET) else "0"


@dataclass
class AutoscalerArgs:
    name_prefix: str
    image: str
    settings: AutoscalerConfig
    app_service_name: str
    haproxy_metrics_url: str
    depends_on: list[pulumi.Resource]


class Autoscaler(pulumi.ComponentResource):
    status_url: str
    container: docker.Container

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Autoscaler", name, None, opts)
        s = args.settings
        self.container = docker.Container(
            f"{name}-container",
            name=f"{args.name_prefix}-autoscaler",
            image=args.image,
            # Host network: it reads HAProxy's metrics where the host publishes them and serves its own API
            # on the host's loopback, with no port publishing in between.
            network_mode="host",
            command=[
                "--policy",
                POLICY_PATH,
                "--service",
                args.app_service_name,
                "--haproxy-metrics",
                args.haproxy_metrics_url,
                "--listen",
                f"{s.listen_host}:{s.listen_port}",
            ],
            mounts=[docker.ContainerMountArgs(target=DOCKER_SOCKET, source=DOCKER_SOCKET, type="bind")],
            group_adds=[docker_socket_group()],
            uploads=[docker.ContainerUploadArgs(file=POLICY_PATH, content=render_policy_file(s.raw_policy))],
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.status_url = f"http://{s.listen_host}:{s.listen_port}/status"
        self.register_outputs({"status_url": self.status_url})
