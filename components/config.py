"""The whole stack config, loaded once into typed, validated settings.

Invalid config fails here, at `pulumi preview`, before any resource is declared; every error names the key
and the value (`hostscale:autoscaler.replicas.min is 5 but hostscale:autoscaler.replicas.max is 3`). The
scaling policy is validated by the autoscaler's own loader, so what previews is what the autoscaler runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from autoscaler.policy import Policy, PolicyError, Reader, load_policy

ConfigError = PolicyError
NAMESPACE = "hostscale"


@dataclass(frozen=True)
class HostConfig:
    """The physical host: Swarm manager, HAProxy, Postgres and the autoscaler run here."""

    name_prefix: str  # every Docker object's name starts with it
    advertise_addr: str  # the address Swarm workers reach the manager on
    budget_memory_mb: int  # what the operator lets VMs take from this host
    budget_vcpus: int


@dataclass(frozen=True)
class LoadBalancerConfig:
    http_bind: str  # host address HAProxy's frontend is published on
    http_port: int
    stats_bind: str  # stats page and Prometheus metrics: loopback unless the operator opens them
    stats_port: int
    server_maxconn: int  # per replica: beyond it requests wait in HAProxy's queue, not in the app
    queue_timeout_s: int


@dataclass(frozen=True)
class AppConfig:
    image: str | None  # the operator's own image; None builds the sample app from app/
    port: int
    initial_replicas: int  # only at creation: afterwards the autoscaler owns the count
    cpu_limit: float
    memory_mb: int
    stop_grace_s: int


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


@dataclass(frozen=True)
class VmPoolConfig:
    """libvirt guests that join the Swarm as workers (the lab stack)."""

    libvirt_uri: str
    domain_type: Literal["kvm", "qemu"]
    base_image: str  # a cloud image URL or a local path
    network_cidr: str
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
    warm_pool: Literal["suspended", "stopped"]
    scale_in_after_seconds: int  # workers must be surplus this long before one is drained and parked
    registry_port: int  # the manager's image registry, on the VM network's gateway and loopback

    @property
    def gateway(self) -> str:
        """libvirt gives the host the network's first address: where workers reach the Swarm manager."""
        return str(ipaddress.IPv4Network(self.network_cidr).network_address + 1)


@dataclass(frozen=True)
class StackConfig:
    host: HostConfig
    load_balancer: LoadBalancerConfig
    app: AppConfig
    database: DatabaseConfig
    autoscaler: AutoscalerConfig
    vms: VmPoolConfig | None


class _Section(Reader):
    def bounded(self, name: str, default: int, low: int, high: int) -> int:
        value = self.integer(name, default, low=low)
        if value > high:
            raise ConfigError(f"{self.key(name)} must be at most {high}, got {value}")
        return value

    def port(self, name: str, default: int) -> int:
        return self.bounded(name, default, 1, 65535)

    def address(self, name: str, default: str) -> str:
        value = self.string(name, default)
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ConfigError(f"{self.key(name)} must be an IPv4 address, got {value!r}") from None
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.string(name, default)
        if value not in allowed:
            raise ConfigError(f"{self.key(name)} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def optional_path(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith("/")):
            raise ConfigError(
                f"{self.key(name)} must be an absolute path on the hypervisor host, got {value!r}"
            )
        return value


def _section(raw: Callable[[str], Any], name: str) -> _Section:
    return _Section(raw(name) or {}, f"{NAMESPACE}:{name}")


def _host(section: _Section) -> HostConfig:
    host = HostConfig(
        name_prefix=section.string("name_prefix", "hostscale"),
        advertise_addr=section.address("advertise_addr", "127.0.0.1"),
        budget_memory_mb=section.integer("budget_memory_mb", 8192, low=0),
        budget_vcpus=section.integer("budget_vcpus", 4, low=0),
    )
    section.done()
    return host


def _load_balancer(section: _Section) -> LoadBalancerConfig:
    config = LoadBalancerConfig(
        http_bind=section.address("http_bind", "127.0.0.1"),
        http_port=section.port("http_port", 8080),
        stats_bind=section.address("stats_bind", "127.0.0.1"),
        stats_port=section.port("stats_port", 8404),
        server_maxconn=section.bounded("server_maxconn", 32, 1, 1000),
        queue_timeout_s=section.bounded("queue_timeout_seconds", 10, 1, 300),
    )
    section.done()
    return config


def _app(section: _Section) -> AppConfig:
    image = section.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise ConfigError(f"{section.key('image')} must be an image reference, got {image!r}")
    config = AppConfig(
        image=image,
        port=section.port("port", 8000),
        initial_replicas=section.integer("initial_replicas", 2, low=0),
        cpu_limit=section.number("cpu_limit", 1.0, positive=True),
        memory_mb=section.bounded("memory_mb", 256, 64, 65536),
        stop_grace_s=section.bounded("stop_grace_seconds", 15, 1, 600),
    )
    section.done()
    return config


def _database(section: _Section) -> DatabaseConfig:
    config = DatabaseConfig(
        memory_mb=section.bounded("memory_mb", 512, 128, 262144),
        max_connections=section.bounded("max_connections", 200, 10, 5000),
    )
    section.done()
    return config


def _autoscaler(section: _Section) -> AutoscalerConfig:
    listen = section.string("listen", "127.0.0.1:9100")
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{section.key('listen')} must be ADDRESS:PORT, got {listen!r}")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ConfigError(f"{section.key('listen')} must be ADDRESS:PORT, got {listen!r}") from None
    raw_policy = {key: value for key, value in section.raw.items() if key != "listen"}
    policy = load_policy(raw_policy, prefix=section.path)
    return AutoscalerConfig(policy, raw_policy, host, int(port))


def _vms(section: _Section) -> VmPoolConfig:
    uri = section.string("libvirt_uri", "qemu:///system")
    if not (uri == "qemu:///system" or uri.startswith("qemu+ssh://")):
        raise ConfigError(
            f"{section.key('libvirt_uri')} must be qemu:///system or qemu+ssh://USER@HOST/system, got {uri!r}"
        )
    domain_type = section.string("domain_type", "kvm")
    if domain_type not in ("kvm", "qemu"):
        raise ConfigError(f"{section.key('domain_type')} must be kvm or qemu, got {domain_type!r}")
    cidr = section.string("network_cidr", "10.77.0.0/24")
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ConfigError(f"{section.key('network_cidr')} must be an IPv4 CIDR, got {cidr!r}") from None
    count = section.bounded("count", 3, 0, 64)
    if network.num_addresses < count + 8:
        raise ConfigError(f"{section.key('network_cidr')} is {cidr}: too small for {count} VMs")
    running = section.integer("running", 2, low=1 if count else 0)  # the last worker is never parked
    if running > count:
        raise ConfigError(f"{section.key('running')} is {running} but {section.key('count')} is {count}")
    config = VmPoolConfig(
        libvirt_uri=uri,
        domain_type=domain_type,  # type: ignore[arg-type]  # checked just above
        base_image=section.string("base_image"),
        network_cidr=cidr,
        pool_path=section.string("pool_path", "/var/lib/libvirt/hostscale"),
        count=count,
        running=running,
        memory_mb=section.bounded("memory_mb", 1024, 256, 262144),
        vcpus=section.bounded("vcpus", 1, 1, 64),
        ssh_public_key=section.string("ssh_public_key"),
        replicas_per_vm=section.bounded("replicas_per_vm", 4, 1, 100),
        kernel=section.optional_path("kernel"),
        initrd=section.optional_path("initrd"),
        warm_pool=section.choice("warm_pool", "suspended", ("suspended", "stopped")),  # type: ignore[arg-type]
        scale_in_after_seconds=section.bounded("scale_in_after_seconds", 120, 0, 86400),
        registry_port=section.port("registry_port", 5000),
    )
    if (config.kernel is None) != (config.initrd is None):
        raise ConfigError(f"{section.key('kernel')} and {section.key('initrd')} go together, or neither")
    section.done()
    return config


def _cross_check(config: StackConfig) -> None:
    ports = {
        f"{NAMESPACE}:load_balancer.http_port": config.load_balancer.http_port,
        f"{NAMESPACE}:load_balancer.stats_port": config.load_balancer.stats_port,
        f"{NAMESPACE}:autoscaler.listen": config.autoscaler.listen_port,
    }
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            raise ConfigError(f"{key} is {port}, the same host port as {seen[port]}")
        seen[port] = key
    policy = config.autoscaler.policy
    if not policy.min_replicas <= config.app.initial_replicas <= policy.max_replicas:
        raise ConfigError(
            f"{NAMESPACE}:app.initial_replicas is {config.app.initial_replicas} but "
            f"{NAMESPACE}:autoscaler.replicas allows {policy.min_replicas} to {policy.max_replicas}"
        )
    vms = config.vms
    if vms is None:
        return
    for what, per_vm, budget in (
        ("memory_mb", vms.memory_mb, config.host.budget_memory_mb),
        ("vcpus", vms.vcpus, config.host.budget_vcpus),
    ):
        if vms.count * per_vm > budget:
            raise ConfigError(
                f"{NAMESPACE}:vms.{what} is {per_vm} for {vms.count} VMs ({vms.count * per_vm} in all) "
                f"but {NAMESPACE}:host.budget_{what} is {budget}"
            )
    if config.host.advertise_addr != vms.gateway:
        raise ConfigError(
            f"{NAMESPACE}:host.advertise_addr is {config.host.advertise_addr} but the VMs reach the manager at "
            f"{vms.gateway} (the first address of {NAMESPACE}:vms.network_cidr {vms.network_cidr})"
        )
    capacity = vms.count * vms.replicas_per_vm
    if policy.max_replicas > capacity:
        raise ConfigError(
            f"{NAMESPACE}:autoscaler.replicas.max is {policy.max_replicas} but {vms.count} VMs hold "
            f"{capacity} replicas ({NAMESPACE}:vms.replicas_per_vm is {vms.replicas_per_vm})"
        )


def load_stack_config(raw: Callable[[str], Any]) -> StackConfig:
    """`raw(name)` returns the parsed value of `hostscale:<name>` (or None when unset)."""
    vms_raw = raw("vms")
    config = StackConfig(
        host=_host(_section(raw, "host")),
        load_balancer=_load_balancer(_section(raw, "load_balancer")),
        app=_app(_section(raw, "app")),
        database=_database(_section(raw, "database")),
        autoscaler=_autoscaler(_section(raw, "autoscaler")),
        vms=_vms(_section(raw, "vms")) if vms_raw is not None else None,
    )
    _cross_check(config)
    return config
