"""The whole stack config, loaded once into the typed, validated settings of components/settings.py.

Invalid config fails here, at `pulumi preview`, before any resource is declared; every error names the key
and the value (`hostscale:autoscaler.replicas.min is 5 but hostscale:autoscaler.replicas.max is 3`). The
scaling policy is validated by the autoscaler's own loader, so what previews is what the autoscaler runs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import posixpath
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from autoscaler.fleet import PARK_MODES
from autoscaler.forecast import PREDICTIVE_MODES
from autoscaler.policy import PolicyError, Reader, load_policy
from components.settings import (
    LOCAL_LIBVIRT,
    AppConfig,
    AutoscalerConfig,
    DatabaseConfig,
    HostConfig,
    HypervisorHostConfig,
    LoadBalancerConfig,
    PrometheusConfig,
    StackConfig,
    VmPoolConfig,
)
from components.spread import capacity, spread

ConfigError = PolicyError
NAMESPACE = "hostscale"


# Beyond these a value is a typo, not a plan: HAProxy declares a server slot for every replica the autoscaler
# may run, and a host budget is what one machine has.
MAX_REPLICAS = 1000
MAX_BUDGET_MEMORY_MB = 4 * 2**20  # 4 TiB
MAX_BUDGET_VCPUS = 1024
MAX_APP_CPUS = 64.0
# What a worker VM keeps for itself besides the app's tasks: the guest kernel, dockerd, containerd, the Swarm
# agent, journald.
GUEST_SYSTEM_MB = 256
# Postgres' superuser_reserved_connections (15's default): slots an app connection can never take.
POSTGRES_RESERVED_CONNECTIONS = 3

# Docker's reference grammar (github.com/distribution/reference, reference.go): [DOMAIN/]PATH[:TAG][@DIGEST].
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?"
)
MAX_IMAGE_NAME = 255  # the reference grammar's limit on the name (without tag and digest)
# Every Docker object, Swarm service (a DNS name: tasks.<prefix>-app), libvirt object and VM hostname starts
# with the prefix; the longest suffix is "-db-password" (12), Docker's secret names stop at 64.
NAME_PREFIX = re.compile(r"[a-z](?:[a-z0-9-]{0,22}[a-z0-9])?")
# A path component that needs no quoting anywhere: a shell, a `docker -v SRC:DST` or `--mount` argument (no
# colon, no comma), libvirt XML.
PATH_COMPONENT = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")
URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~%+=&?/-]*)?")
SSH_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
DNS_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
MIN_RSA_BITS = 2048
# An uncompressed EC point: 0x04, then X and Y.
EC_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}


class _Section(Reader):
    def bounded(self, name: str, default: int | None, low: int, high: int) -> int:
        value = self.integer(name, default, low=low)
        if value > high:
            raise ConfigError(f"{self.key(name)} must be at most {high}, got {value}")
        return value

    def bounded_number(self, name: str, default: float, high: float) -> float:
        value = self.number(name, default, positive=True)
        if value > high:
            raise ConfigError(f"{self.key(name)} must be at most {high:g}, got {self.raw[name]!r}")
        return value

    def absolute_path(self, name: str, default: str | None = None) -> str:
        value = self.get(name, default)
        if not _is_plain_path(value):
            raise ConfigError(
                f"{self.key(name)} must be an absolute path on the hypervisor host (letters, digits and ._+- in "
                f"each part, no . or .. part), got {value!r}"
            )
        return str(value)

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
        return None if self.get(name) is None else self.absolute_path(name)


def _is_plain_path(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("/") or posixpath.normpath(value) != value:
        return False
    parts = value.split("/")[1:]
    return value == "/" or all(PATH_COMPONENT.fullmatch(part) and part not in (".", "..") for part in parts)


def _section(raw: Callable[[str], Any], name: str) -> _Section:
    value = raw(name)
    # Only an absent section means "all defaults": `hostscale:app: []` or `""` is a mistake, not an empty mapping.
    return _Section({} if value is None else value, f"{NAMESPACE}:{name}")


def _host(section: _Section) -> HostConfig:
    prefix = section.string("name_prefix", "hostscale")
    if not NAME_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"{section.key('name_prefix')} must be lowercase letters, digits and dashes, starting with a letter "
            f"and not ending with a dash (at most 24), got {prefix!r}"
        )
    return HostConfig(name_prefix=prefix, advertise_addr=section.address("advertise_addr", "127.0.0.1"))


def _image_reference(section: _Section, name: str) -> str | None:
    value = section.get(name)
    if value is None:
        return None
    reference = value if isinstance(value, str) else ""
    if (
        not IMAGE_REFERENCE.fullmatch(reference)
        or len(reference.split("@")[0].rsplit(":", 1)[0]) > MAX_IMAGE_NAME
    ):
        raise ConfigError(
            f"{section.key(name)} must be an image reference ([REGISTRY/]NAME[:TAG][@sha256:DIGEST], e.g. "
            f"registry.example.com/team/app:1.4), got {value!r}"
        )
    return reference


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


LIVENESS_PROBES = ("image", "bash")


def _liveness_probe(section: _Section, image: str | None) -> str:
    # An operator's image carries its own probe (it may have no shell); the built sample app has bash.
    probe = section.get("liveness_probe", "image" if image is not None else "bash")
    if probe not in LIVENESS_PROBES:
        raise ConfigError(f"{section.key('liveness_probe')} must be one of image, bash, got {probe!r}")
    if probe == "image" and image is None:
        raise ConfigError(
            f"{section.key('liveness_probe')} is 'image' but {section.key('image')} is not set: the built"
            " sample app is probed with bash"
        )
    return str(probe)


def _app(section: _Section) -> AppConfig:
    image = _image_reference(section, "image")
    config = AppConfig(
        image=image,
        port=section.port("port", 8000),
        initial_replicas=section.bounded("initial_replicas", 2, 0, MAX_REPLICAS),
        cpu_limit=section.bounded_number("cpu_limit", 1.0, MAX_APP_CPUS),
        memory_mb=section.bounded("memory_mb", 256, 64, 65536),
        stop_grace_s=section.bounded("stop_grace_seconds", 15, 1, 600),
        # The app's own bounds (app/settings.py, DB_POOL_MAX_SIZE).
        db_pool_max_size=section.bounded("db_pool_max_size", 10, 1, 200),
        ready_timeout_s=section.bounded("ready_timeout_seconds", 180, 10, 3600),
        served_by_header=section.boolean("served_by_header", False),
        liveness_probe=_liveness_probe(section, image),
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
    if policy.max_replicas > MAX_REPLICAS:
        raise ConfigError(
            f"{section.key('replicas.max')} must be at most {MAX_REPLICAS}, got {policy.max_replicas}"
        )
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
    over_ssh = (
        url.scheme == "qemu+ssh"
        and url.path == "/system"
        and SSH_USER.fullmatch(url.username or "") is not None
        and (DNS_NAME.fullmatch(url.hostname or "") is not None or _is_ipv4(url.hostname))
        and "@" not in url.netloc.rsplit("@", 1)[0]  # one user: ssh and urlsplit would split a@b@host apart
    )
    if uri != LOCAL_LIBVIRT and not (over_ssh and port_ok and not url.query and not url.fragment):
        raise ConfigError(
            f"{section.key('libvirt_uri')} must be {LOCAL_LIBVIRT} or qemu+ssh://USER@HOST[:PORT]/system, "
            f"got {uri!r}"
        )
    return uri


def _is_ipv4(value: str | None) -> bool:
    try:
        ipaddress.IPv4Address(value or "")
    except ValueError:
        return False
    return True


def _ssh_key_fields(blob: str) -> list[bytes] | None:
    """An OpenSSH public key's base64 data: a run of length-prefixed strings (RFC 4253 6.6), nothing after."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None
    fields = []
    while raw:
        if len(raw) < 4:
            return None
        length = int.from_bytes(raw[:4], "big")
        if len(raw) < 4 + length:
            return None
        fields.append(raw[4 : 4 + length])
        raw = raw[4 + length :]
    return fields


def ssh_key_problem(key_type: str, blob: str) -> str | None:
    """Why `KEY_TYPE BLOB` is not a usable OpenSSH public key, or None when it is one."""
    if key_type not in SSH_KEY_TYPES:
        return f"{key_type} is not a key type ({', '.join(SSH_KEY_TYPES)})"
    fields = _ssh_key_fields(blob)
    if fields is None:
        return "its data is not base64 of an SSH key"
    inside = fields[0].decode("ascii", "replace") if fields else ""
    if inside != key_type:
        return f"its data is a {inside or 'malformed'} key, not {key_type}"
    if key_type == "ssh-ed25519":
        well_formed = len(fields) == 2 and len(fields[1]) == 32
    elif key_type == "ssh-rsa":
        well_formed = len(fields) == 3
        bits = int.from_bytes(fields[2], "big").bit_length() if well_formed else 0
        if well_formed and bits < MIN_RSA_BITS:
            return f"an RSA key of {bits} bits, fewer than {MIN_RSA_BITS}"
    else:
        curve = key_type.rsplit("-", 1)[1]
        well_formed = (
            len(fields) == 3 and fields[1] == curve.encode() and len(fields[2]) == EC_POINT_BYTES[curve]
        )
    return None if well_formed else f"its data is not a whole {key_type} key"


def _ssh_public_key(section: _Section) -> str:
    """The operator's login key for the VMs (cloud-init's ssh_authorized_keys): TYPE BASE64 [COMMENT], one line;
    no authorized_keys options, which would come before the type."""
    value = section.string("ssh_public_key")
    key_type, _, rest = value.partition(" ")
    blob = rest.split(" ", 1)[0]
    problem = "it is not one printable line" if not value.isprintable() else ssh_key_problem(key_type, blob)
    if problem is not None:
        raise ConfigError(
            f"{section.key('ssh_public_key')} must be an OpenSSH public key (TYPE BASE64 [COMMENT], e.g. "
            f"ssh-ed25519 AAAA... operator@laptop), got {value!r}: {problem}"
        )
    return value


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
    parts = value.split(" ") if isinstance(value, str) and value.isprintable() else []
    problem = (
        ssh_key_problem(parts[0], parts[1]) if len(parts) in (2, 3) else "it is not TYPE BASE64 [COMMENT]"
    )
    if problem is not None:
        raise ConfigError(
            f"{section.key('ssh_host_key')} must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
            f"got {value!r}: {problem}"
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
        section.bounded("budget_memory_mb", None, 0, MAX_BUDGET_MEMORY_MB),
        section.bounded("budget_vcpus", None, 0, MAX_BUDGET_VCPUS),
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


def _base_image(section: _Section) -> str:
    value = section.string("base_image")
    if value.startswith(("http://", "https://")):
        if not URL.fullmatch(value):
            raise ConfigError(
                f"{section.key('base_image')} must be an http(s) URL of letters, digits and ._~%+=&?/- or an "
                f"absolute path on the hypervisor host, got {value!r}"
            )
        return value
    return section.absolute_path("base_image")


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
        base_image=_base_image(section),
        pool_path=section.absolute_path("pool_path", "/var/lib/libvirt/hostscale"),
        count=count,
        running=running,
        memory_mb=memory_mb,
        vcpus=vcpus,
        ssh_public_key=_ssh_public_key(section),
        replicas_per_vm=section.bounded("replicas_per_vm", 1, 1, 100),
        kernel=section.optional_path("kernel"),
        initrd=section.optional_path("initrd"),
        warm_pool=section.choice("warm_pool", "suspended", PARK_MODES),  # type: ignore[arg-type]
        scale_in_after_seconds=section.bounded("scale_in_after_seconds", 120, 0, 86400),
        registry_port=section.port("registry_port", 5000),
        warm_pool_min=section.bounded("warm_pool_min", 0, 0, count - running),
        warm_pool_max=section.optional_integer("warm_pool_max", None, low=0, high=count - running),
        reuse_on_scale_in=section.boolean("reuse_on_scale_in", True),
        predictive_power_on=section.choice("predictive_power_on", "off", PREDICTIVE_MODES),  # type: ignore[arg-type]
        trend_window_seconds=section.bounded_number("trend_window_seconds", 60, 3600),
        power_on_seconds=section.bounded_number("power_on_seconds", 90, 3600),
    )
    _check_warm_pool(section, config)
    if (config.kernel is None) != (config.initrd is None):
        raise ConfigError(f"{section.key('kernel')} and {section.key('initrd')} go together, or neither")
    section.done()
    return config


def _check_warm_pool(section: _Section, vms: VmPoolConfig) -> None:
    if vms.warm_pool_max is not None and vms.warm_pool_max < vms.warm_pool_min:
        raise ConfigError(
            f"{section.key('warm_pool_max')} is {vms.warm_pool_max} but {section.key('warm_pool_min')} is "
            f"{vms.warm_pool_min}"
        )
    if vms.warm_pool == "stopped" and vms.warm_pool_min:
        raise ConfigError(
            f"{section.key('warm_pool_min')} is {vms.warm_pool_min} but {section.key('warm_pool')} is stopped: "
            "a pool that parks cold keeps no VM warm"
        )


def _prometheus(section: _Section) -> PrometheusConfig:
    config = PrometheusConfig(
        enabled=section.boolean("enabled", False),
        port=section.port("port", 9090),
        scraper_port=section.port("scraper_port", 9091),
    )
    section.done()
    return config


def _cross_check(config: StackConfig) -> None:
    ports = {
        f"{NAMESPACE}:load_balancer.http_port": config.load_balancer.http_port,
        f"{NAMESPACE}:load_balancer.stats_port": config.load_balancer.stats_port,
        f"{NAMESPACE}:autoscaler.listen": config.autoscaler.listen_port,
    }
    if config.prometheus.enabled:
        ports[f"{NAMESPACE}:prometheus.port"] = config.prometheus.port
        ports[f"{NAMESPACE}:prometheus.scraper_port"] = config.prometheus.scraper_port
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            raise ConfigError(f"{key} is {port}, the same host port as {seen[port]}")
        seen[port] = key
    _check_connections(config)
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
    _check_replicas_fit_a_vm(config.app, vms)


def _check_connections(config: StackConfig) -> None:
    """Every replica's pool full, one more replica during a start-first update, within max_connections."""
    app, most = config.app, config.autoscaler.policy.max_replicas
    needed = (most + 1) * app.db_pool_max_size + POSTGRES_RESERVED_CONNECTIONS
    if needed > config.database.max_connections:
        raise ConfigError(
            f"{NAMESPACE}:autoscaler.replicas.max is {most}: {most + 1} replicas (one more during an update) x "
            f"{NAMESPACE}:app.db_pool_max_size {app.db_pool_max_size} + {POSTGRES_RESERVED_CONNECTIONS} reserved "
            f"= {needed} connections but {NAMESPACE}:database.max_connections is {config.database.max_connections}"
        )


def _check_replicas_fit_a_vm(app: AppConfig, vms: VmPoolConfig) -> None:
    """A full worker's tasks at their limits fit the VM: no OOM kill or CPU starvation that the autoscaler
    would read as load."""
    per_vm = vms.replicas_per_vm
    memory = per_vm * app.memory_mb + GUEST_SYSTEM_MB
    if memory > vms.memory_mb:
        raise ConfigError(
            f"{NAMESPACE}:vms.replicas_per_vm is {per_vm}: {per_vm} x {NAMESPACE}:app.memory_mb {app.memory_mb} "
            f"+ {GUEST_SYSTEM_MB} for the guest's system = {memory} MB but {NAMESPACE}:vms.memory_mb is "
            f"{vms.memory_mb}"
        )
    cpus = per_vm * app.cpu_limit
    if cpus > vms.vcpus:
        raise ConfigError(
            f"{NAMESPACE}:vms.replicas_per_vm is {per_vm}: {per_vm} x {NAMESPACE}:app.cpu_limit {app.cpu_limit} "
            f"= {cpus:g} CPUs but {NAMESPACE}:vms.vcpus is {vms.vcpus}"
        )


def load_stack_config(raw: Callable[[str], Any]) -> StackConfig:
    """`raw(name)` returns the parsed value of `hostscale:<name>` (or None when unset)."""
    vms_raw = raw("vms")
    host_section = _section(raw, "host")
    host = _host(host_section)
    # The flat form's one hypervisor is this host: its budget is here (vms.hosts gives each host its own).
    budget = (
        host_section.bounded("budget_memory_mb", 8192, 0, MAX_BUDGET_MEMORY_MB),
        host_section.bounded("budget_vcpus", 4, 0, MAX_BUDGET_VCPUS),
    )
    host_section.done()
    config = StackConfig(
        host=host,
        load_balancer=_load_balancer(_section(raw, "load_balancer")),
        app=_app(_section(raw, "app")),
        database=_database(_section(raw, "database")),
        autoscaler=_autoscaler(_section(raw, "autoscaler")),
        vms=_vms(_section(raw, "vms"), host_section, budget) if vms_raw is not None else None,
        prometheus=_prometheus(_section(raw, "prometheus")),
    )
    _cross_check(config)
    return config
