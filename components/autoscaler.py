"""The autoscaler on the host: its image, its policy file rendered from the validated stack config, the
Docker socket, and its status API on the address the operator chose (loopback by default)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from components.config import AutoscalerConfig, VmPoolConfig

DOCKER_SOCKET = "/var/run/docker.sock"
LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"
POLICY_PATH = "/etc/hostscale/policy.json"


def render_policy_file(raw_policy: dict[str, Any]) -> str:
    """The policy exactly as validated at preview: the autoscaler validates it again with the same loader."""
    return json.dumps(raw_policy, indent=2, sort_keys=True) + "\n"


def socket_group(path: str) -> str:
    # The container runs as an unprivileged user that only needs the socket's group.
    return str(os.stat(path).st_gid) if os.path.exists(path) else "0"


def warm_pool_arguments(vms: VmPoolConfig, names: list[str]) -> list[str]:
    return [
        *("--libvirt-uri", vms.libvirt_uri, "--vms", ",".join(names)),
        *("--replicas-per-vm", str(vms.replicas_per_vm), "--park", vms.warm_pool),
        *("--vm-scale-in-after", str(vms.scale_in_after_seconds)),
    ]


@dataclass
class AutoscalerArgs:
    name_prefix: str
    image: str
    settings: AutoscalerConfig
    app_service_name: str
    haproxy_metrics_url: str
    depends_on: list[pulumi.Resource]
    # The lab stack: the worker VMs it powers on and off (the warm pool), on the local hypervisor's socket.
    vms: VmPoolConfig | None = None
    vm_names: list[str] = field(default_factory=list)


class Autoscaler(pulumi.ComponentResource):
    status_url: str
    container: docker.Container

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Autoscaler", name, None, opts)
        s = args.settings
        mounts = [docker.ContainerMountArgs(target=DOCKER_SOCKET, source=DOCKER_SOCKET, type="bind")]
        groups = [socket_group(DOCKER_SOCKET)]
        extra: list[str] = []
        if args.vms is not None:
            extra = warm_pool_arguments(args.vms, args.vm_names)
            mounts.append(
                docker.ContainerMountArgs(target=LIBVIRT_SOCKET, source=LIBVIRT_SOCKET, type="bind")
            )
            groups.append(socket_group(LIBVIRT_SOCKET))
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
                *extra,
            ],
            mounts=mounts,
            group_adds=sorted(set(groups)),
            uploads=[docker.ContainerUploadArgs(file=POLICY_PATH, content=render_policy_file(s.raw_policy))],
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.status_url = f"http://{s.listen_host}:{s.listen_port}/status"
        self.register_outputs({"status_url": self.status_url})
