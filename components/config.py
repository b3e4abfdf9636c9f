"""The whole stack config, loaded once into the typed, validated settings of components/settings.py.

Invalid config fails here, at `pulumi preview`, before any resource is declared; every error names the key
and the value (`hostscale:autoscaler.replicas.min is 5 but hostscale:autoscaler.replicas.max is 3`). The
scaling policy is validated by the autoscaler's own loader, so what previews is what the autoscaler runs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from autoscaler.policy import PolicyError, Reader, load_policy
from autoscaler.warm_pool import PARK_MODES
from components.settings import (
    LOCAL_LIBVIRT,
    AppConfig,
    AutoscalerConfig,
    DatabaseConfig,
    HostConfig,
    HypervisorHostConfig,
    LoadBalancerConfig,
    StackConfig,
    VmPoolConfig,
)
from components.spread import capacity, spread

ConfigError = PolicyError
NAMESPACE = "hostscale"


SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


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
    return HostConfig(
        name_prefix=section.string("name_prefix", "hostscale"),
        advertise_addr=section.address("advertise_addr", "127.0.0.1"),
    )


def _load_balancer(section: _Section) -> LoadBalancerConfig:
    config = LoadBalancerConfig(
        http_bind=section.address("http_bind", "127.0.0.1"),
        http_port=section.port("http_port", 8080),
        stats_bind=section.address("stats_bind", "127.0.0.1"),
        stats_port=section.port("stats_port", 8404),
        server_maxconn=section.bounded("server_maxconn", 32, 1, 1000),
        queue_timeout_s=section.bounded("queue_timeout_seconds", 10, 1, 300),
        queue_max=section.bounded("queue_max", 256, 1, 100_000),
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
    host, port = section.listen("listen", "127.0.0.1:9100")
    raw_policy = {key: value for key, value in section.raw.items() if key != "listen"}
    policy = load_policy(raw_policy, prefix=section.path)
    return AutoscalerConfig(policy, raw_policy, host, port)


HOST_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
PER_HOST_KEYS = ("libvirt_uri", "network_cidr", "network_mode", "ssh_host_key")
BUDGET_KEYS = ("budget_memory_mb", "budget_vcpus")


def _libvirt_uri(section: _Section) -> str:
    uri = section.string("libvirt_uri", LOCAL_LIBVIRT)
    url = urlsplit(uri)
    try:
        port_ok = url.port is None or url.port > 0
    except ValueError:  # a port that is not a number
        port_ok = False
    over_ssh = url.scheme == "qemu+ssh" and bool(url.username and url.hostname) and url.path == "/system"
    if uri != LOCAL_LIBVIRT and not (over_ssh and port_ok and not url.query and not url.fragment):
        raise ConfigError(
            f"{section.key('libvirt_uri')} must be {LOCAL_LIBVIRT} or qemu+ssh://USER@HOST[:PORT]/system, "
            f"got {uri!r}"
        )
    return uri


def _key_type_inside(blob: str) -> str | None:
    """An OpenSSH public key's base64 blob starts with its own type name (a length-prefixed string)."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None
    length = int.from_bytes(raw[:4], "big")
    return raw[4 : 4 + length].decode("ascii", "replace") if len(raw) > 4 + length else None


def _ssh_host_key(section: _Section, uri: str) -> str | None:
    value = section.get("ssh_host_key")
    if uri == LOCAL_LIBVIRT:
        if value is not None:
            raise ConfigError(
                f"{section.key('ssh_host_key')} is set but {section.key('libvirt_uri')} is {uri}: "
                "only qemu+ssh hosts are reached over SSH"
            )
        return None
    if value is None:
        raise ConfigError(
            f"{section.key('ssh_host_key')} is required for {uri}: the autoscaler connects with strict host key "
            "checking (the host's public key, e.g. from /etc/ssh/ssh_host_ed25519_key.pub on that host)"
        )
    parts = value.split() if isinstance(value, str) else []
    if len(parts) not in (2, 3) or parts[0] not in SSH_KEY_TYPES or _key_type_inside(parts[1]) != parts[0]:
        raise ConfigError(
            f"{section.key('ssh_host_key')} must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
            f"got {value!r}"
        )
    return f"{parts[0]} {parts[1]}"


def _hypervisor_host(
    section: _Section, name: str, budget_key: str, budget: tuple[int, int]
) -> HypervisorHostConfig:
    uri = _libvirt_uri(section)
    cidr = section.string("network_cidr", "10.77.0.0/24")
    try:
        ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ConfigError(f"{section.key('network_cidr')} must be an IPv4 CIDR, got {cidr!r}") from None
    return HypervisorHostConfig(
        name=name,
        key=section.path,
        budget_key=budget_key,
        libvirt_uri=uri,
        network_cidr=cidr,
        network_mode=section.choice("network_mode", "nat", ("nat", "route")),  # type: ignore[arg-type]
        budget_memory_mb=budget[0],
        budget_vcpus=budget[1],
        ssh_host_key=_ssh_host_key(section, uri),
    )


def _listed_host(section: _Section) -> HypervisorHostConfig:
    name = section.string("name")
    if not HOST_NAME.fullmatch(name):
        raise ConfigError(
            f"{section.key('name')} must be lowercase letters, digits and dashes (at most 20), got {name!r}"
        )
    budget = (
        section.integer("budget_memory_mb", low=0),
        section.integer("budget_vcpus", low=0),
    )
    host = _hypervisor_host(section, name, section.path, budget)
    section.done()
    return host


def _hosts(
    section: _Section, host_section: _Section, budget: tuple[int, int]
) -> tuple[HypervisorHostConfig, ...]:
    """`vms.hosts`, or the one host given by the flat keys of `vms` (budget from `host`)."""
    listed = section.get("hosts")
    if listed is None:
        return (_hypervisor_host(section, "host", host_section.path, budget),)
    for flat in PER_HOST_KEYS:
        if flat in section.raw:
            raise ConfigError(
                f"{section.key(flat)} is set but {section.key('hosts')} lists the hosts: set it on each host there"
            )
    for key in BUDGET_KEYS:
        if key in host_section.raw:
            raise ConfigError(
                f"{host_section.key(key)} is set but {section.key('hosts')} gives each host its own budget"
            )
    if not isinstance(listed, list) or not listed:
        raise ConfigError(f"{section.key('hosts')} must be a non-empty list of hosts, got {listed!r}")
    hosts = tuple(
        _listed_host(_Section(entry, f"{section.key('hosts')}[{index}]"))
        for index, entry in enumerate(listed)
    )
    _check_hosts_apart(hosts)
    return hosts


def _check_hosts_apart(hosts: tuple[HypervisorHostConfig, ...]) -> None:
    for later, b in enumerate(hosts):
        for a in hosts[:later]:
            if a.name == b.name:
                raise ConfigError(f"{b.key}.name is {b.name!r}, the same as {a.key}.name")
            if a.libvirt_uri == b.libvirt_uri:
                raise ConfigError(f"{b.key}.libvirt_uri is {b.libvirt_uri}, the same hypervisor as {a.key}")
            if ipaddress.IPv4Network(a.network_cidr).overlaps(ipaddress.IPv4Network(b.network_cidr)):
                raise ConfigError(
                    f"{b.key}.network_cidr {b.network_cidr} overlaps {a.key}.network_cidr {a.network_cidr}"
                )
    if len(hosts) == 1:
        return
    if hosts[0].over_ssh:
        raise ConfigError(
            f"{hosts[0].key}.libvirt_uri is {hosts[0].libvirt_uri} but the first host is the Swarm manager's own "
            f"hypervisor: it must be {LOCAL_LIBVIRT}"
        )
    for host in hosts:
        if host.network_mode != "route":
            raise ConfigError(
                f"{host.key}.network_mode is {host.network_mode} but workers on different hosts must reach each "
                "other: set route, and route each host's network_cidr to that host (docs/multihost.md: the network "
                "between the hosts)"
            )


def _placement(
    section: _Section, hosts: tuple[HypervisorHostConfig, ...], count: int, memory_mb: int, vcpus: int
) -> tuple[int, ...]:
    if len(hosts) == 1:
        host = hosts[0]
        for what, per_vm, budget in (
            ("memory_mb", memory_mb, host.budget_memory_mb),
            ("vcpus", vcpus, host.budget_vcpus),
        ):
            if count * per_vm > budget:
                raise ConfigError(
                    f"{section.key(what)} is {per_vm} for {count} VMs ({count * per_vm} in all) "
                    f"but {host.budget_key}.budget_{what} is {budget}"
                )
        return (0,) * count
    rooms = [capacity(h.budget_memory_mb, h.budget_vcpus, memory_mb, vcpus) for h in hosts]
    placement = spread(count, rooms)
    if placement is None:
        held = ", ".join(
            f"{h.name} {room} ({h.key}: budget_memory_mb {h.budget_memory_mb}, budget_vcpus {h.budget_vcpus})"
            for h, room in zip(hosts, rooms, strict=True)
        )
        raise ConfigError(
            f"{section.key('count')} is {count} but the hosts' budgets hold {sum(rooms)} VMs of {memory_mb} MB "
            f"and {vcpus} vCPUs ({section.key('memory_mb')}, {section.key('vcpus')}): {held}"
        )
    return tuple(placement)


def _vms(section: _Section, host_section: _Section, budget: tuple[int, int]) -> VmPoolConfig:
    hosts = _hosts(section, host_section, budget)
    domain_type = section.string("domain_type", "kvm")
    if domain_type not in ("kvm", "qemu"):
        raise ConfigError(f"{section.key('domain_type')} must be kvm or qemu, got {domain_type!r}")
    count = section.bounded("count", 3, 0, 64)
    running = section.integer("running", 2, low=1 if count else 0)  # the last worker is never parked
    if running > count:
        raise ConfigError(f"{section.key('running')} is {running} but {section.key('count')} is {count}")
    memory_mb = section.bounded("memory_mb", 1024, 256, 262144)
    vcpus = section.bounded("vcpus", 1, 1, 64)
    placement = _placement(section, hosts, count, memory_mb, vcpus)
    for index, host in enumerate(hosts):
        on_host = placement.count(index)
        if ipaddress.IPv4Network(host.network_cidr).num_addresses < on_host + 8:
            raise ConfigError(f"{host.key}.network_cidr is {host.network_cidr}: too small for {on_host} VMs")
    identity = section.optional_path("ssh_identity_file")
    remote = next((h for h in hosts if h.over_ssh), None)
    if remote is not None and identity is None:
        raise ConfigError(
            f"{section.key('ssh_identity_file')} is required: {remote.key}.libvirt_uri is {remote.libvirt_uri} "
            "and the autoscaler powers VMs there over SSH (a private key on this host, readable by the "
            "autoscaler's user)"
        )
    config = VmPoolConfig(
        hosts=hosts,
        placement=placement,
        ssh_identity_file=identity,
        domain_type=domain_type,  # type: ignore[arg-type]  # checked just above
        base_image=section.string("base_image"),
        pool_path=section.string("pool_path", "/var/lib/libvirt/hostscale"),
        count=count,
        running=running,
        memory_mb=memory_mb,
        vcpus=vcpus,
        ssh_public_key=section.string("ssh_public_key"),
        replicas_per_vm=section.bounded("replicas_per_vm", 4, 1, 100),
        kernel=section.optional_path("kernel"),
        initrd=section.optional_path("initrd"),
        warm_pool=section.choice("warm_pool", "suspended", PARK_MODES),  # type: ignore[arg-type]
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
    manager = vms.hosts[0]
    if config.host.advertise_addr != manager.gateway:
        raise ConfigError(
            f"{NAMESPACE}:host.advertise_addr is {config.host.advertise_addr} but the VMs reach the manager at "
            f"{manager.gateway} (the first address of {manager.key}.network_cidr {manager.network_cidr})"
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
    host_section = _section(raw, "host")
    host = _host(host_section)
    # The flat form's one hypervisor is this host: its budget is here (vms.hosts gives each host its own).
    budget = (
        host_section.integer("budget_memory_mb", 8192, low=0),
        host_section.integer("budget_vcpus", 4, low=0),
    )
    host_section.done()
    config = StackConfig(
        host=host,
        load_balancer=_load_balancer(_section(raw, "load_balancer")),
        app=_app(_section(raw, "app")),
        database=_database(_section(raw, "database")),
        autoscaler=_autoscaler(_section(raw, "autoscaler")),
        vms=_vms(_section(raw, "vms"), host_section, budget) if vms_raw is not None else None,
    )
    _cross_check(config)
    return config
