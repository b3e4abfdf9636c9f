"""The stack's settings as the components use them: typed, frozen, and already validated.

components/config.py builds them from the stack config (and refuses what is invalid, naming the key and the
value); the components only read them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from autoscaler.fleet import ParkMode
from autoscaler.forecast import PredictiveMode
from autoscaler.policy import Policy


@dataclass(frozen=True)
class HostConfig:
    """The physical host: Swarm manager, HAProxy, Postgres and the autoscaler run here."""

    name_prefix: str  # every Docker object's name starts with it
    advertise_addr: str  # the address Swarm workers reach the manager on


@dataclass(frozen=True)
class LoadBalancerConfig:
    http_bind: str  # host address HAProxy's frontend is published on
    http_port: int
    stats_bind: str  # stats page and Prometheus metrics: loopback unless the operator opens them
    stats_port: int
    server_maxconn: int  # per replica: beyond it requests wait in HAProxy's queue, not in the app
    queue_timeout_s: int
    queue_max: int  # requests waiting for a free replica; more are refused at once with 503 + Retry-After


@dataclass(frozen=True)
class AppConfig:
    image: str | None  # the operator's own image; None builds the sample app from app/
    port: int
    initial_replicas: int  # only at creation: afterwards the autoscaler owns the count
    cpu_limit: float
    memory_mb: int
    stop_grace_s: int
    db_pool_max_size: int  # connections each replica may hold (DB_POOL_MAX_SIZE)
    ready_timeout_s: int  # how long `up` waits for the tier to serve through HAProxy before it fails
    # X-Served-By on every response names the container that answered: useful to tests and debugging, but it
    # tells every client the tier's container IDs, so it is off unless the operator turns it on.
    served_by_header: bool = False
    # Swarm's liveness probe: "image", the image's own HEALTHCHECK command (an operator's image, which may have
    # no shell); "bash", a bash /dev/tcp request to /healthz (the sample app, or an image without a HEALTHCHECK).
    liveness_probe: str = "bash"


@dataclass(frozen=True)
class DatabaseConfig:
    memory_mb: int
    max_connections: int


@dataclass(frozen=True)
class AutoscalerConfig:
    policy: Policy
    raw_policy: dict[str, Any]  # exactly what was validated: the policy file the autoscaler reads
    listen_host: str
    listen_port: int


LOCAL_LIBVIRT = "qemu:///system"


@dataclass(frozen=True)
class HypervisorHostConfig:
    """One hypervisor host: some of the worker VMs, on its own VM network, within its own budget."""

    name: str  # in its resources' names and in its workers' engine label dev.hostscale.hypervisor
    key: str  # where it is configured (hostscale:vms or hostscale:vms.hosts[N]): errors name it
    budget_key: str  # where its budget is configured (hostscale:host for the flat form)
    libvirt_uri: str
    network_cidr: str
    # nat: the VMs reach out through the host only (one host); route: their subnet is routed, so workers on
    # other hosts reach them (more than one host: the operator routes each subnet to its host).
    network_mode: Literal["nat", "route"]
    budget_memory_mb: int  # what the operator lets VMs take from this host
    budget_vcpus: int
    ssh_host_key: str | None  # qemu+ssh hosts: the autoscaler trusts this host key and no other

    @property
    def gateway(self) -> str:
        """libvirt gives the host the network's first address."""
        return str(ipaddress.IPv4Network(self.network_cidr).network_address + 1)

    @property
    def over_ssh(self) -> bool:
        return self.libvirt_uri != LOCAL_LIBVIRT

    def known_hosts_line(self) -> str:
        """The host's entry in an OpenSSH known_hosts file (a non-default port goes in brackets)."""
        url = urlsplit(self.libvirt_uri)
        host = url.hostname if url.port in (None, 22) else f"[{url.hostname}]:{url.port}"
        return f"{host} {self.ssh_host_key}"


@dataclass(frozen=True)
class VmPoolConfig:
    """libvirt guests that join the Swarm as workers (the lab stacks), on one hypervisor host or several."""

    # The first host is the Swarm manager's own: its VM network's gateway is where every worker joins.
    hosts: tuple[HypervisorHostConfig, ...]
    placement: tuple[int, ...]  # the index in `hosts` of each VM's host (components/spread.py)
    ssh_identity_file: str | None  # on the manager: the autoscaler's key for the qemu+ssh hosts
    domain_type: Literal["kvm", "qemu"]
    base_image: str  # a cloud image URL or a local path
    pool_path: str
    count: int
    running: int  # powered on at creation; the rest are the warm pool
    memory_mb: int
    vcpus: int
    ssh_public_key: str
    replicas_per_vm: int  # Swarm places at most this many app tasks on one worker (its capacity)
    # Images without a bootloader (scripts/build-vm-image) boot their own kernel directly.
    kernel: str | None
    initrd: str | None
    # Warm-pool VMs finish their first boot at `up`, then are parked: "suspended" (libvirt managed save: memory
    # on disk, resumed in seconds) or "stopped" (powered off: a plain boot).
    warm_pool: ParkMode
    scale_in_after_seconds: int  # workers must be surplus this long before one is handed over and parked
    registry_port: int  # the manager's image registry, on the VM network's gateway and loopback
    # The warm pool's size, like an AWS warm pool's (autoscaler/fleet.py): parked VMs kept warm (managed save)
    # at least / at most (None: no bound), and whether a VM leaving at scale-in parks warm or cold.
    warm_pool_min: int
    warm_pool_max: int | None
    reuse_on_scale_in: bool
    # Predictive power-on (autoscaler/forecast.py): off, forecast_only (log what it would do) or on; the trend's
    # window, and the power-on time assumed until one is measured.
    predictive_power_on: PredictiveMode
    trend_window_seconds: float
    power_on_seconds: float

    @property
    def gateway(self) -> str:
        """Where workers reach the Swarm manager and its registry: the manager's own VM network."""
        return self.hosts[0].gateway

    def host_of(self, index: int) -> HypervisorHostConfig:
        return self.hosts[self.placement[index]]


@dataclass(frozen=True)
class PrometheusConfig:
    """hostscale:prometheus: the observability pack's Prometheus deployed with the stack (off by default)."""

    enabled: bool
    port: int  # the Prometheus an operator queries, on the host's loopback
    scraper_port: int  # the replica scraper (on the web network), published on the host's loopback


@dataclass(frozen=True)
class StackConfig:
    host: HostConfig
    load_balancer: LoadBalancerConfig
    app: AppConfig
    database: DatabaseConfig
    autoscaler: AutoscalerConfig
    vms: VmPoolConfig | None
    prometheus: PrometheusConfig = PrometheusConfig(enabled=False, port=9090, scraper_port=9091)
