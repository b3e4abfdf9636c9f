"""The autoscaler on the host: its image, its one settings file rendered from the validated stack config
(autoscaler/settings.py reads it), the Docker socket, and its status API on the address the operator chose
(loopback by default).

In the lab stacks it also powers the warm-pool VMs on and off: through the local libvirt socket, and over SSH
for VMs on other hosts, with its own key (a file the operator keeps on the host, mounted read-only) and the
hosts' keys from the stack config as its only known hosts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.haproxy_cfg import BACKEND
from components.settings import AutoscalerConfig, VmPoolConfig

DOCKER_SOCKET = "/var/run/docker.sock"
LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"
SETTINGS_PATH = "/etc/hostscale/autoscaler.json"
SSH_KEY_PATH = "/run/hostscale/libvirt-ssh-key"
KNOWN_HOSTS_PATH = "/etc/hostscale/known_hosts"
# Debian's ssh_config includes ssh_config.d/*.conf: virsh's qemu+ssh transport runs plain ssh, which reads it.
SSH_CONFIG_PATH = "/etc/ssh/ssh_config.d/hostscale.conf"
SSH_CONFIG = f"""# hostscale: the autoscaler reaches remote hypervisors with its own key, and trusts only their listed keys.
Host *
    IdentityFile {SSH_KEY_PATH}
    IdentitiesOnly yes
    UserKnownHostsFile {KNOWN_HOSTS_PATH}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
    # Every virsh call is a new connection: reuse one SSH session per host instead of a handshake per call
    # (BENCHMARKS.md: virsh over qemu+ssh). A dead link is noticed within 15 s and the next call reconnects.
    ControlMaster auto
    ControlPath /tmp/hostscale-ssh-%C
    ControlPersist 120
    ServerAliveInterval 5
    ServerAliveCountMax 3
"""


def render_settings_file(
    settings: AutoscalerConfig,
    app_service_name: str,
    haproxy_metrics_url: str,
    vms: VmPoolConfig | None = None,
    vm_names: Sequence[str] = (),
) -> str:
    """Everything the autoscaler process needs, from the validated stack config; the policy exactly as validated
    at preview (the autoscaler validates the whole file again, the policy with the same loader)."""
    fleet = None
    if vms is not None:
        fleet = {
            # In power-on order, each on the hypervisor components/spread.py placed it on.
            "vms": [
                {"name": name, "libvirt_uri": vms.host_of(index).libvirt_uri}
                for index, name in enumerate(vm_names)
            ],
            "replicas_per_vm": vms.replicas_per_vm,
            "park": vms.warm_pool,
            "scale_in_after_seconds": vms.scale_in_after_seconds,
        }
    document = {
        "service": app_service_name,
        "haproxy": {"metrics_url": haproxy_metrics_url, "backend": BACKEND},
        "listen": f"{settings.listen_host}:{settings.listen_port}",
        "policy": settings.raw_policy,
        "fleet": fleet,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def socket_group(path: str) -> str:
    # The container runs as an unprivileged user that only needs the socket's group.
    return str(os.stat(path).st_gid) if os.path.exists(path) else "0"


def known_hosts(vms: VmPoolConfig) -> str:
    return "".join(f"{host.known_hosts_line()}\n" for host in vms.hosts if host.over_ssh)


@dataclass
class AutoscalerArgs:
    name_prefix: str
    image: str
    settings: AutoscalerConfig
    app_service_name: str
    haproxy_metrics_url: str
    depends_on: list[pulumi.Resource]
    # The lab stacks: the worker VMs it powers on and off (the warm pool), wherever they run.
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
        rendered = render_settings_file(
            s, args.app_service_name, args.haproxy_metrics_url, args.vms, args.vm_names
        )
        uploads = [docker.ContainerUploadArgs(file=SETTINGS_PATH, content=rendered)]
        if args.vms is not None:
            if any(not host.over_ssh for host in args.vms.hosts):
                mounts.append(
                    docker.ContainerMountArgs(target=LIBVIRT_SOCKET, source=LIBVIRT_SOCKET, type="bind")
                )
                groups.append(socket_group(LIBVIRT_SOCKET))
            if args.vms.ssh_identity_file and any(host.over_ssh for host in args.vms.hosts):
                mounts.append(
                    docker.ContainerMountArgs(
                        target=SSH_KEY_PATH, source=args.vms.ssh_identity_file, type="bind", read_only=True
                    )
                )
                uploads += [
                    docker.ContainerUploadArgs(file=SSH_CONFIG_PATH, content=SSH_CONFIG),
                    docker.ContainerUploadArgs(file=KNOWN_HOSTS_PATH, content=known_hosts(args.vms)),
                ]
        self.container = docker.Container(
            f"{name}-container",
            name=f"{args.name_prefix}-autoscaler",
            image=args.image,
            # Host network: it reads HAProxy's metrics where the host publishes them and serves its own API
            # on the host's loopback, with no port publishing in between.
            network_mode="host",
            command=["--settings", SETTINGS_PATH],
            mounts=mounts,
            group_adds=sorted(set(groups)),
            uploads=uploads,
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.status_url = f"http://{s.listen_host}:{s.listen_port}/status"
        self.register_outputs({"status_url": self.status_url})
