"""The autoscaler on the host: its image, its one settings file rendered from the validated stack config
(autoscaler/settings.py reads it), and its status API on the address the operator chose (loopback by default).

It holds neither the Docker socket nor the libvirt socket (each is root on the host). A gate container
(autoscaler/gate.py, from the same image) holds them and offers the autoscaler, on unix sockets in a volume the
two share, only the calls it makes: the app service's replica count, the worker VMs' availability, reads, and
virsh's power verbs on this stack's VM domains (docs/security.md, "The autoscaler's reach").

In the lab stacks it also powers the warm-pool VMs on and off: through the gate for the local hypervisor, and
over SSH for VMs on other hosts, with its own key (a file the operator keeps on the host, mounted read-only),
whose forced command on those hosts runs the same virsh rules, and the hosts' keys from the stack config as its
only known hosts.
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
GATE_SETTINGS_PATH = "/etc/hostscale/gate.json"
# The volume both containers mount: the gate's sockets, a directory only the autoscaler's uid may enter
# (autoscaler/Dockerfile creates it 0700; Docker copies that into the new volume).
GATE_DIR = "/run/hostscale/gate"
GATE_DOCKER_HOST = f"unix://{GATE_DIR}/docker.sock"
GATE_LIBVIRT_SOCKET = f"{GATE_DIR}/libvirt.sock"
# Neither needs a capability: both run as an unprivileged user and only connect to unix sockets.
NO_CAPABILITIES = docker.ContainerCapabilitiesArgs(drops=["ALL"])
NO_NEW_PRIVILEGES = ["no-new-privileges:true"]
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
            "warm_pool": {
                "min": vms.warm_pool_min,
                "max": vms.warm_pool_max,
                "reuse_on_scale_in": vms.reuse_on_scale_in,
            },
            "predictive": {
                "mode": vms.predictive_power_on,
                "window_seconds": vms.trend_window_seconds,
                "default_power_on_seconds": vms.power_on_seconds,
            },
        }
    document = {
        "service": app_service_name,
        "haproxy": {"metrics_url": haproxy_metrics_url, "backend": BACKEND},
        "listen": f"{settings.listen_host}:{settings.listen_port}",
        "policy": settings.raw_policy,
        "fleet": fleet,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_gate_settings(app_service_name: str, vms: VmPoolConfig | None, vm_names: Sequence[str]) -> str:
    """What the gate lets the autoscaler act on: the app service, the worker VMs' nodes (their hostnames are
    the domain names), and of those the domains on this host's libvirt."""
    local = [
        name for index, name in enumerate(vm_names) if vms is not None and not vms.host_of(index).over_ssh
    ]
    document = {"service": app_service_name, "worker_nodes": list(vm_names), "libvirt_domains": local}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def remote_virsh_rules(vms: VmPoolConfig | None, vm_names: Sequence[str]) -> dict[str, str]:
    """For each remote hypervisor, the settings file of the autoscaler key's forced command there
    (/etc/hostscale/virsh-gate.json): the domains this stack placed on it."""
    if vms is None:
        return {}
    placed: dict[str, list[str]] = {host.name: [] for host in vms.hosts if host.over_ssh}
    for index, name in enumerate(vm_names):
        host = vms.host_of(index)
        if host.over_ssh:
            placed[host.name].append(name)
    return {host: json.dumps({"domains": names}, sort_keys=True) + "\n" for host, names in placed.items()}


# Where a remote hypervisor keeps the forced command and its settings (docs/security.md: how to install them).
REMOTE_RULES_PATH = "/usr/local/lib/hostscale/virsh_rules.py"
REMOTE_RULES_SETTINGS = "/etc/hostscale/virsh-gate.json"


def authorized_keys_line(
    public_key: str, rules: str = REMOTE_RULES_PATH, settings: str = REMOTE_RULES_SETTINGS
) -> str:
    """The autoscaler's key on a remote hypervisor: whatever the client asks, sshd runs the virsh rules
    (autoscaler/virsh_rules.py), and `restrict` takes away forwarding, agent, X11 and a terminal."""
    return f'command="/usr/bin/python3 {rules} {settings}",restrict {public_key.strip()}\n'


def healthcheck(settings: AutoscalerConfig) -> docker.ContainerHealthcheckArgs:
    """Docker's health check: /healthz answers 503 once the loop has not finished a tick for a while
    (autoscaler/status.py). The image has no curl: python3's urllib fails (exit 1) on a 503 or no answer."""
    # The listen address is IPv4 (the config checks it); a wildcard one is probed on loopback.
    host = "127.0.0.1" if settings.listen_host == "0.0.0.0" else settings.listen_host  # noqa: S104
    url = f"http://{host}:{settings.listen_port}/healthz"
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=4)"
    return docker.ContainerHealthcheckArgs(
        tests=["CMD", "python3", "-c", probe], interval="10s", timeout="5s", start_period="30s", retries=3
    )


def gate_healthcheck() -> docker.ContainerHealthcheckArgs:
    """Healthy while the gate answers a ping from the engine through its socket (the image has no curl)."""
    probe = (
        "import http.client, socket\n"
        "class C(http.client.HTTPConnection):\n"
        "    def connect(self):\n"
        "        self.sock = socket.socket(socket.AF_UNIX); self.sock.settimeout(4)\n"
        f"        self.sock.connect({GATE_DIR + '/docker.sock'!r})\n"
        "c = C('gate'); c.request('GET', '/_ping'); assert c.getresponse().status == 200"
    )
    return docker.ContainerHealthcheckArgs(
        tests=["CMD", "python3", "-c", probe], interval="10s", timeout="5s", start_period="10s", retries=3
    )


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
    gate: docker.Container

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Autoscaler", name, None, opts)
        s = args.settings
        volume = docker.Volume(
            f"{name}-gate-sockets",
            name=f"{args.name_prefix}-autoscaler-gate",
            opts=pulumi.ResourceOptions(parent=self),
        )
        gate_dir = docker.ContainerMountArgs(target=GATE_DIR, source=volume.name, type="volume")
        gate_mounts = [docker.ContainerMountArgs(target=DOCKER_SOCKET, source=DOCKER_SOCKET, type="bind")]
        gate_groups = [socket_group(DOCKER_SOCKET)]
        local_vms = args.vms is not None and any(not host.over_ssh for host in args.vms.hosts)
        if local_vms:
            gate_mounts.append(
                docker.ContainerMountArgs(target=LIBVIRT_SOCKET, source=LIBVIRT_SOCKET, type="bind")
            )
            gate_groups.append(socket_group(LIBVIRT_SOCKET))
        self.gate = docker.Container(
            f"{name}-gate",
            name=f"{args.name_prefix}-autoscaler-gate",
            image=args.image,
            entrypoints=["python3", "-m", "autoscaler.gate"],
            command=["--settings", GATE_SETTINGS_PATH],
            # No network at all: it serves on unix sockets and talks to two more.
            network_mode="none",
            mounts=[*gate_mounts, gate_dir],
            group_adds=sorted(set(gate_groups)),
            uploads=[
                docker.ContainerUploadArgs(
                    file=GATE_SETTINGS_PATH,
                    content=render_gate_settings(args.app_service_name, args.vms, args.vm_names),
                )
            ],
            restart="unless-stopped",
            healthcheck=gate_healthcheck(),
            # Same fixed name as the autoscaler's: the old one goes first.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*args.depends_on, volume], delete_before_replace=True
            ),
            capabilities=NO_CAPABILITIES,
            security_opts=NO_NEW_PRIVILEGES,
        )
        mounts = [gate_dir]
        envs = [f"DOCKER_HOST={GATE_DOCKER_HOST}"]
        if local_vms:
            envs.append(f"HOSTSCALE_LIBVIRT_GATE={GATE_LIBVIRT_SOCKET}")
        rendered = render_settings_file(
            s, args.app_service_name, args.haproxy_metrics_url, args.vms, args.vm_names
        )
        uploads = [docker.ContainerUploadArgs(file=SETTINGS_PATH, content=rendered)]
        vms = args.vms
        if vms is not None and vms.ssh_identity_file and any(host.over_ssh for host in vms.hosts):
            mounts.append(
                docker.ContainerMountArgs(
                    target=SSH_KEY_PATH, source=vms.ssh_identity_file, type="bind", read_only=True
                )
            )
            uploads += [
                docker.ContainerUploadArgs(file=SSH_CONFIG_PATH, content=SSH_CONFIG),
                docker.ContainerUploadArgs(file=KNOWN_HOSTS_PATH, content=known_hosts(vms)),
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
            envs=envs,
            uploads=uploads,
            restart="unless-stopped",
            healthcheck=healthcheck(s),
            # A changed file or image replaces a container (the provider's ForceNew); the new one cannot be
            # created next to the old (its fixed name and its API port on the host are taken), so the old one goes first.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*args.depends_on, self.gate], delete_before_replace=True
            ),
            capabilities=NO_CAPABILITIES,
            security_opts=NO_NEW_PRIVILEGES,
        )
        self.status_url = f"http://{s.listen_host}:{s.listen_port}/status"
        self.register_outputs({"status_url": self.status_url})
