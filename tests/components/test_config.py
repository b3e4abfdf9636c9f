"""The stack config: both real stack files load; each invalid config fails with the key and the value named,
and the program fails on it before declaring any resource."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config import ConfigError, load_stack_config
from harness.program import stack_config
from harness.recording import RecordingMocks, record_program


def getter(config: dict[str, Any]) -> Any:
    return lambda name: config.get(f"hostscale:{name}")


DELETED = object()  # as the value of an edit: remove the setting instead of setting it


def edited(stack: str, setting: str, value: Any) -> dict[str, Any]:
    """The stack's config with `setting` (a dotted path below hostscale:, digits index lists, e.g.
    vms.hosts.1.ssh_host_key) set to `value`, or removed if the value is DELETED."""
    config = copy.deepcopy(stack_config(stack))
    key, *path = setting.split(".")
    node: Any = config.setdefault(f"hostscale:{key}", {})
    for part in path[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last: Any = int(path[-1]) if path[-1].isdigit() else path[-1]
    if value is DELETED:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)  # rows share their values; no load may change another row's
    return config


@pytest.mark.parametrize("stack", ["local", "lab", "lab-emulated", "multihost"])
def test_real_stack_files_load(stack: str) -> None:
    config = load_stack_config(getter(stack_config(stack)))
    assert config.autoscaler.policy.min_replicas >= 2
    assert (config.vms is not None) == (stack != "local")


def test_the_emulated_lab_boots_the_built_image_and_parks_its_warm_vm_suspended() -> None:
    vms = load_stack_config(getter(stack_config("lab-emulated"))).vms
    assert vms is not None
    assert (vms.domain_type, vms.kernel, vms.warm_pool) == (
        "qemu", "/var/lib/hostscale/vm-image/vmlinuz", "suspended",
    )  # fmt: skip
    assert (vms.count, vms.running, vms.replicas_per_vm, vms.registry_port) == (2, 1, 2, 5000)


LOCAL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBj2d30KoOheLb20xUyzKmqb0D04pPxUuAC9NReNWI8B"
HOSTS_REVERSED = stack_config("multihost")["hostscale:vms"]["hosts"][::-1]
ED25519_DATA = LOCAL_KEY.split()[1]
# Public keys made with ssh-keygen for these tables (the private halves were thrown away).
RSA_1024 = "ssh-rsa " + (
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDXu90lP+wE0EqoJM0narP818KAn2pjT5C+4FhOtVJfhItOF/jZbezr3Tf3s/ZG3GXPJZ1J"
    "5Tp9HOPdRrF6GQ2Tj3VeoawbvO9Ew0xWFUVVecgtFC4UzVhg1vyD6u7lA9YqpGB4hzrGxQ9DdyklHbSHwaETZnl47CMswVgP2hmI"
    "dQ=="
)
RSA_3072 = "ssh-rsa " + (
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQDTRtlSQCuH68H4plOylDbflgvwp5kEvRxeZrfv7rGK80XLnbSVYHYAuzeuiuyod8umH9Pn"
    "PnRo28+VZgrYt1YoW+B37eCXaWIc0IROowzFpIsYhlZ7HfiQFeZMlsVz6o7TbgPGoFl0uHvTb9rl/k0TAa+BLz4l08XJ4M6Q8tYE"
    "DSG/ZCgH/u1IPvwrQ6Bed/mwKqTGlwikvgv9gQEuO7pUS70AToHh1Md3Fhn3wOqnVosT38CdFuryARfIuBacZLMgDn1gzYSEcBVX"
    "67tksBOD6kOW6m4IDmfT+eMXRVPFJYao3jhyxk9JZ1GMGmYZ2o2YrtDqmkm6CZSWwCvmNXdQQeZ4oHOv7LDlnLdotGkiFvCQRryE"
    "a7CoNDXxeo9Xv/6k4fnWl9hTI2voi8W4RbaOus/yp3mCjTL6YdqsOBfLZjufKOUDGVrKd+ua62O76Rf1wMzJqiUCHgk1EJxx3bHX"
    "BIJNfox9IGmOZU8RRiZzgabaQ0LdRZqeMCb7QS5tD3E="
)
ECDSA_256 = "ecdsa-sha2-nistp256 " + (
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAZOr4hVgoeSJHYyZrWzrUIF0E9Iuy5Eici4kSeWqAMQzj5s"
    "A8SZQIsjjEweiIU2dimfUHp6bJ47Rig2kluBP1Q="
)
# An ed25519 key cut short: the type is right, the key inside is 16 bytes instead of 32.
ED25519_SHORT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAEAAAAAAAAAAAAAAAAAAAAAA="
PUBLIC_KEY_FORM = (
    "must be an OpenSSH public key (TYPE BASE64 [COMMENT], e.g. ssh-ed25519 AAAA... operator@laptop)"
)
PLAIN_PATH = (
    "must be an absolute path on the hypervisor host (letters, digits and ._+- in each part, no . or .. part)"
)
IMAGE_FORM = "must be an image reference ([REGISTRY/]NAME[:TAG][@sha256:DIGEST], e.g. registry.example.com/team/app:1.4)"


def invalid(id: str, stack: str, setting: str, value: Any, message: str) -> Any:
    return pytest.param(stack, setting, value, message, id=id)


# Rows: id, the stack, the setting edited and its new value, then the exact error.
# fmt: off
INVALID = [
    invalid("min above max", "local", "autoscaler.replicas.min", 9,
            "hostscale:autoscaler.replicas.min is 9 but hostscale:autoscaler.replicas.max is 6"),
    invalid("unknown metric", "local", "autoscaler.targets", [{"name": "cpu", "metric": "cpu_percent", "target": 50}],
            "hostscale:autoscaler.targets[0].metric is 'cpu_percent', not a known metric (queued_requests, requests_per_second_per_replica, response_time_ms, sessions_per_replica)"),
    invalid("negative target", "local", "autoscaler.targets", [{"name": "s", "metric": "sessions_per_replica", "target": -1}],
            "hostscale:autoscaler.targets[0].target must be positive, got -1"),
    invalid("interval too short", "local", "autoscaler.interval_seconds", 0.1,
            "hostscale:autoscaler.interval_seconds is 0.1 but must be at least 0.5"),
    invalid("listen without port", "local", "autoscaler.listen", "0.0.0.0",  # noqa: S104 (the invalid value under test)
            "hostscale:autoscaler.listen must be ADDRESS:PORT, got '0.0.0.0'"),
    invalid("two tiers on one host port", "local", "load_balancer.http_port", 8404,
            "hostscale:load_balancer.stats_port is 8404, the same host port as hostscale:load_balancer.http_port"),
    invalid("port out of range", "local", "load_balancer.http_port", 70000,
            "hostscale:load_balancer.http_port must be at most 65535, got 70000"),
    invalid("bind not an address", "local", "load_balancer.stats_bind", "localhost",
            "hostscale:load_balancer.stats_bind must be an IPv4 address, got 'localhost'"),
    invalid("not a finite number", "local", "app.cpu_limit", float("nan"),
            "hostscale:app.cpu_limit must be a finite number, got nan"),
    invalid("an infinite number", "local", "autoscaler.targets", [{"name": "s", "metric": "sessions_per_replica", "target": float("inf")}],
            "hostscale:autoscaler.targets[0].target must be a finite number, got inf"),
    invalid("misspelt setting", "local", "load_balancer.maxconn", 10,
            "hostscale:load_balancer.maxconn is not a known setting (did you mean hostscale:load_balancer.server_maxconn?)"),
    invalid("initial replicas outside bounds", "local", "app.initial_replicas", 9,
            "hostscale:app.initial_replicas is 9 but hostscale:autoscaler.replicas allows 2 to 6"),
    invalid("app memory too small", "local", "app.memory_mb", 16,
            "hostscale:app.memory_mb must be at least 64, got 16"),
    invalid("served-by header not a boolean", "local", "app.served_by_header", "yes",
            "hostscale:app.served_by_header must be true or false, got 'yes'"),
    invalid("an unknown liveness probe", "local", "app.liveness_probe", "curl",
            "hostscale:app.liveness_probe must be one of image, bash, got 'curl'"),
    invalid("the image's probe without an image", "local", "app.liveness_probe", "image",
            "hostscale:app.liveness_probe is 'image' but hostscale:app.image is not set: the built sample app is probed with bash"),
    invalid("empty image", "local", "app.image", "",
            f"hostscale:app.image {IMAGE_FORM}, got ''"),
    invalid("VMs over the memory budget", "lab", "vms.memory_mb", 4096,
            "hostscale:vms.memory_mb is 4096 for 3 VMs (12288 in all) but hostscale:host.budget_memory_mb is 8192"),
    invalid("VMs over the vCPU budget", "lab", "vms.vcpus", 4,
            "hostscale:vms.vcpus is 4 for 3 VMs (12 in all) but hostscale:host.budget_vcpus is 6"),
    invalid("invalid CIDR", "lab", "vms.network_cidr", "10.77.0.0/33",
            "hostscale:vms.network_cidr must be an IPv4 CIDR, got '10.77.0.0/33'"),
    invalid("invalid libvirt URI", "lab", "vms.libvirt_uri", "http://hypervisor",
            "hostscale:vms.libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, got 'http://hypervisor'"),
    invalid("unknown domain type", "lab", "vms.domain_type", "xen",
            "hostscale:vms.domain_type must be kvm or qemu, got 'xen'"),
    invalid("more running than VMs", "lab", "vms.running", 4,
            "hostscale:vms.running is 4 but hostscale:vms.count is 3"),
    invalid("max replicas beyond VM capacity", "lab", "vms.replicas_per_vm", 2,
            "hostscale:autoscaler.replicas.max is 12 but 3 VMs hold 6 replicas (hostscale:vms.replicas_per_vm is 2)"),
    invalid("manager not on the VM network", "lab", "host.advertise_addr", "127.0.0.1",
            "hostscale:host.advertise_addr is 127.0.0.1 but the VMs reach the manager at 10.77.0.1 (the first address of hostscale:vms.network_cidr 10.77.0.0/24)"),
    invalid("unknown warm pool mode", "lab", "vms.warm_pool", "hibernate",
            "hostscale:vms.warm_pool must be one of suspended, stopped, got 'hibernate'"),
    invalid("a warm pool minimum beyond the VMs that park", "lab", "vms.warm_pool_min", 2,
            "hostscale:vms.warm_pool_min must be at most 1, got 2"),
    invalid("reuse on scale-in not a boolean", "lab", "vms.reuse_on_scale_in", "no",
            "hostscale:vms.reuse_on_scale_in must be true or false, got 'no'"),
    invalid("an unknown predictive mode", "lab", "vms.predictive_power_on", "always",
            "hostscale:vms.predictive_power_on must be one of off, forecast_only, on, got 'always'"),
    invalid("a trend window of a day", "lab", "vms.trend_window_seconds", 86400,
            "hostscale:vms.trend_window_seconds must be at most 3600, got 86400"),
    invalid("a power-on time of zero", "lab", "vms.power_on_seconds", 0,
            "hostscale:vms.power_on_seconds must be positive, got 0"),
    invalid("kernel without initrd", "lab", "vms.initrd", None,
            "hostscale:vms.kernel and hostscale:vms.initrd go together, or neither"),
    invalid("relative kernel path", "lab", "vms.kernel", "vmlinuz",
            f"hostscale:vms.kernel {PLAIN_PATH}, got 'vmlinuz'"),
    invalid("no running worker", "lab", "vms.running", 0,
            "hostscale:vms.running must be at least 1, got 0"),

    # Upper bounds: a number far beyond any plan is a typo.
    invalid("a billion replicas", "local", "autoscaler.replicas.max", 10**9,
            "hostscale:autoscaler.replicas.max must be at most 1000, got 1000000000"),
    invalid("a billion initial replicas", "local", "app.initial_replicas", 10**9,
            "hostscale:app.initial_replicas must be at most 1000, got 1000000000"),
    invalid("a thousand CPUs per replica", "local", "app.cpu_limit", 1000,
            "hostscale:app.cpu_limit must be at most 64, got 1000"),
    invalid("a host budget of a petabyte", "lab", "host.budget_memory_mb", 10**9,
            "hostscale:host.budget_memory_mb must be at most 4194304, got 1000000000"),
    invalid("a listed host with a million vCPUs", "multihost", "vms.hosts.1.budget_vcpus", 10**6,
            "hostscale:vms.hosts[1].budget_vcpus must be at most 1024, got 1000000"),
    invalid("a pool bigger than the app takes", "local", "app.db_pool_max_size", 500,
            "hostscale:app.db_pool_max_size must be at most 200, got 500"),

    # Wrong types.
    invalid("a port as a string", "local", "load_balancer.http_port", "8080",
            "hostscale:load_balancer.http_port must be an integer, got '8080'"),
    invalid("a count as a boolean", "lab", "vms.replicas_per_vm", True,
            "hostscale:vms.replicas_per_vm must be an integer, got True"),
    invalid("a budget as a float", "lab", "host.budget_vcpus", 4.5,
            "hostscale:host.budget_vcpus must be an integer, got 4.5"),
    invalid("a path as a list", "lab", "vms.pool_path", ["/var/lib"],
            f"hostscale:vms.pool_path {PLAIN_PATH}, got ['/var/lib']"),
    invalid("a host entry that is not a mapping", "multihost", "vms.hosts.2", "hv3",
            "hostscale:vms.hosts[2] must be a mapping, got 'hv3'"),

    # Values that reach a shell, a Docker reference or a file path: their grammar.
    invalid("a prefix with a space and capitals", "local", "host.name_prefix", "Hs Lab",
            "hostscale:host.name_prefix must be lowercase letters, digits and dashes, starting with a letter and "
            "not ending with a dash (at most 24), got 'Hs Lab'"),
    invalid("a prefix with a shell command", "local", "host.name_prefix", "hs;reboot",
            "hostscale:host.name_prefix must be lowercase letters, digits and dashes, starting with a letter and "
            "not ending with a dash (at most 24), got 'hs;reboot'"),
    invalid("a prefix too long for Docker's names", "local", "host.name_prefix", "h" * 25,
            "hostscale:host.name_prefix must be lowercase letters, digits and dashes, starting with a letter and "
            f"not ending with a dash (at most 24), got '{'h' * 25}'"),
    invalid("an image with a shell command", "local", "app.image", "app:1; docker rm -f x",
            f"hostscale:app.image {IMAGE_FORM}, got 'app:1; docker rm -f x'"),
    invalid("an image with capitals in its path", "local", "app.image", "registry.example.com/Team/App:1",
            f"hostscale:app.image {IMAGE_FORM}, got 'registry.example.com/Team/App:1'"),
    invalid("an image with a short digest", "local", "app.image", "app@sha256:abc",
            f"hostscale:app.image {IMAGE_FORM}, got 'app@sha256:abc'"),
    invalid("a pool path that climbs out", "lab", "vms.pool_path", "/var/lib/libvirt/../../etc",
            f"hostscale:vms.pool_path {PLAIN_PATH}, got '/var/lib/libvirt/../../etc'"),
    invalid("a pool path with a space", "lab", "vms.pool_path", "/var/lib/my pool",
            f"hostscale:vms.pool_path {PLAIN_PATH}, got '/var/lib/my pool'"),
    invalid("a relative pool path", "lab", "vms.pool_path", "hostscale",
            f"hostscale:vms.pool_path {PLAIN_PATH}, got 'hostscale'"),
    invalid("a key file with a colon, which a bind mount splits", "multihost", "vms.ssh_identity_file", "/root/key:rw",
            f"hostscale:vms.ssh_identity_file {PLAIN_PATH}, got '/root/key:rw'"),
    invalid("a relative base image", "lab", "vms.base_image", "disk.qcow2",
            f"hostscale:vms.base_image {PLAIN_PATH}, got 'disk.qcow2'"),
    invalid("a base image URL with a quote", "lab", "vms.base_image", "https://example.com/a'b.qcow2",
            "hostscale:vms.base_image must be an http(s) URL of letters, digits and ._~%+=&?/- or an absolute path "
            "on the hypervisor host, got \"https://example.com/a'b.qcow2\""),
    invalid("an SSH user with a shell command", "multihost", "vms.hosts.2.libvirt_uri", "qemu+ssh://a;reboot@192.168.50.13/system",
            "hostscale:vms.hosts[2].libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, "
            "got 'qemu+ssh://a;reboot@192.168.50.13/system'"),
    invalid("an SSH host with a command substitution", "multihost", "vms.hosts.2.libvirt_uri", "qemu+ssh://u@h$(id)/system",
            "hostscale:vms.hosts[2].libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, "
            "got 'qemu+ssh://u@h$(id)/system'"),

    # The operator's SSH key for the VMs, parsed.
    invalid("a login key with authorized_keys options", "lab", "vms.ssh_public_key", f'command="id" {LOCAL_KEY}',
            f"hostscale:vms.ssh_public_key {PUBLIC_KEY_FORM}, got 'command=\"id\" {LOCAL_KEY}': command=\"id\" is not "
            "a key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521)"),
    invalid("a login key that smuggles a second line", "lab", "vms.ssh_public_key", f"{LOCAL_KEY} a\n{RSA_3072}",
            f"hostscale:vms.ssh_public_key {PUBLIC_KEY_FORM}, got {LOCAL_KEY + ' a' + chr(10) + RSA_3072!r}: it is not "
            "one printable line"),
    invalid("a login key whose data is another type", "lab", "vms.ssh_public_key", "ssh-rsa " + ED25519_DATA,
            f"hostscale:vms.ssh_public_key {PUBLIC_KEY_FORM}, got 'ssh-rsa {ED25519_DATA}': its data is a ssh-ed25519 "
            "key, not ssh-rsa"),
    invalid("a login key cut short", "lab", "vms.ssh_public_key", ED25519_SHORT,
            f"hostscale:vms.ssh_public_key {PUBLIC_KEY_FORM}, got '{ED25519_SHORT}': its data is not a whole "
            "ssh-ed25519 key"),
    invalid("a 1024-bit RSA login key", "lab", "vms.ssh_public_key", RSA_1024 + " short",
            f"hostscale:vms.ssh_public_key {PUBLIC_KEY_FORM}, got '{RSA_1024} short': an RSA key of 1024 bits, "
            "fewer than 2048"),
    invalid("a login key that is not base64", "lab", "vms.ssh_public_key", "ssh-ed25519 AAAA!",
            f"hostscale:vms.ssh_public_key {PUBLIC_KEY_FORM}, got 'ssh-ed25519 AAAA!': its data is not base64 of an "
            "SSH key"),

    # Cross-checks.
    invalid("more connections than Postgres takes", "local", "database.max_connections", 50,
            "hostscale:autoscaler.replicas.max is 6: 7 replicas (one more during an update) x "
            "hostscale:app.db_pool_max_size 10 + 3 reserved = 73 connections but hostscale:database.max_connections "
            "is 50"),
    invalid("a pool that exhausts Postgres at max replicas", "multihost", "app.db_pool_max_size", 11,
            "hostscale:autoscaler.replicas.max is 36: 37 replicas (one more during an update) x "
            "hostscale:app.db_pool_max_size 11 + 3 reserved = 410 connections but hostscale:database.max_connections "
            "is 400"),
    invalid("a full worker's replicas beyond the VM's memory", "lab", "app.memory_mb", 512,
            "hostscale:vms.replicas_per_vm is 4: 4 x hostscale:app.memory_mb 512 + 256 for the guest's system = "
            "2304 MB but hostscale:vms.memory_mb is 1536"),
    invalid("a full worker's replicas beyond the VM's vCPUs", "lab", "app.cpu_limit", 1.0,
            "hostscale:vms.replicas_per_vm is 4: 4 x hostscale:app.cpu_limit 1.0 = 4 CPUs but hostscale:vms.vcpus "
            "is 2"),

    # The multihost stack: VMs spread over several hypervisor hosts.
    invalid("more VMs than the hosts hold", "multihost", "vms.count", 15,
            "hostscale:vms.count is 15 but the hosts' budgets hold 14 VMs of 2048 MB and 1 vCPUs "
            "(hostscale:vms.memory_mb, hostscale:vms.vcpus): "
            "hv1 4 (hostscale:vms.hosts[0]: budget_memory_mb 8192, budget_vcpus 6), "
            "hv2 8 (hostscale:vms.hosts[1]: budget_memory_mb 16384, budget_vcpus 8), "
            "hv3 2 (hostscale:vms.hosts[2]: budget_memory_mb 4096, budget_vcpus 2)"),
    invalid("one host's budget shrinks below its share", "multihost", "vms.hosts.1.budget_memory_mb", 4096,
            "hostscale:vms.count is 10 but the hosts' budgets hold 8 VMs of 2048 MB and 1 vCPUs "
            "(hostscale:vms.memory_mb, hostscale:vms.vcpus): "
            "hv1 4 (hostscale:vms.hosts[0]: budget_memory_mb 8192, budget_vcpus 6), "
            "hv2 2 (hostscale:vms.hosts[1]: budget_memory_mb 4096, budget_vcpus 8), "
            "hv3 2 (hostscale:vms.hosts[2]: budget_memory_mb 4096, budget_vcpus 2)"),
    invalid("host without a budget", "multihost", "vms.hosts.2.budget_vcpus", DELETED,
            "hostscale:vms.hosts[2].budget_vcpus is required"),
    invalid("flat key beside the host list", "multihost", "vms.libvirt_uri", "qemu:///system",
            "hostscale:vms.libvirt_uri is set but hostscale:vms.hosts lists the hosts: set it on each host there"),
    invalid("host budget beside the host list", "multihost", "host.budget_memory_mb", 65536,
            "hostscale:host.budget_memory_mb is set but hostscale:vms.hosts gives each host its own budget"),
    invalid("empty host list", "multihost", "vms.hosts", [],
            "hostscale:vms.hosts must be a non-empty list of hosts, got []"),
    invalid("two hosts one name", "multihost", "vms.hosts.2.name", "hv2",
            "hostscale:vms.hosts[2].name is 'hv2', the same as hostscale:vms.hosts[1].name"),
    invalid("host name unfit for resource names", "multihost", "vms.hosts.2.name", "HV 3",
            "hostscale:vms.hosts[2].name must be lowercase letters, digits and dashes (at most 20), got 'HV 3'"),
    invalid("two hosts one hypervisor", "multihost", "vms.hosts.2.libvirt_uri", "qemu+ssh://hostscale@192.168.50.12/system",
            "hostscale:vms.hosts[2].libvirt_uri is qemu+ssh://hostscale@192.168.50.12/system, the same hypervisor "
            "as hostscale:vms.hosts[1]"),
    invalid("overlapping VM networks", "multihost", "vms.hosts.2.network_cidr", "10.77.0.0/16",
            "hostscale:vms.hosts[2].network_cidr 10.77.0.0/16 overlaps hostscale:vms.hosts[0].network_cidr 10.77.1.0/24"),
    invalid("NAT network across hosts", "multihost", "vms.hosts.1.network_mode", "nat",
            "hostscale:vms.hosts[1].network_mode is nat but workers on different hosts must reach each other: set "
            "route, and route each host's network_cidr to that host (docs/multihost.md: the network between the hosts)"),
    invalid("unknown network mode", "multihost", "vms.hosts.1.network_mode", "bridge",
            "hostscale:vms.hosts[1].network_mode must be one of nat, route, got 'bridge'"),
    invalid("manager's host not first", "multihost", "vms.hosts", HOSTS_REVERSED,
            "hostscale:vms.hosts[0].libvirt_uri is qemu+ssh://hostscale@192.168.50.13/system but the first host is "
            "the Swarm manager's own hypervisor: it must be qemu:///system"),
    invalid("remote host without its host key", "multihost", "vms.hosts.1.ssh_host_key", DELETED,
            "hostscale:vms.hosts[1].ssh_host_key is required for qemu+ssh://hostscale@192.168.50.12/system: the "
            "autoscaler connects with strict host key checking (the host's public key, e.g. from "
            "/etc/ssh/ssh_host_ed25519_key.pub on that host)"),
    invalid("host key whose type does not match its data", "multihost", "vms.hosts.1.ssh_host_key", "ssh-rsa " + LOCAL_KEY.split()[1],
            "hostscale:vms.hosts[1].ssh_host_key must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
            f"got 'ssh-rsa {LOCAL_KEY.split()[1]}': its data is a ssh-ed25519 key, not ssh-rsa"),
    invalid("host key that is not base64", "multihost", "vms.hosts.1.ssh_host_key", "ssh-ed25519 not-base64!",
            "hostscale:vms.hosts[1].ssh_host_key must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
            "got 'ssh-ed25519 not-base64!': its data is not base64 of an SSH key"),
    invalid("host key for the local hypervisor", "multihost", "vms.hosts.0.ssh_host_key", LOCAL_KEY,
            "hostscale:vms.hosts[0].ssh_host_key is set but hostscale:vms.hosts[0].libvirt_uri is qemu:///system: "
            "only qemu+ssh hosts are reached over SSH"),
    invalid("remote URI without user, with parameters", "multihost", "vms.hosts.2.libvirt_uri", "qemu+ssh://192.168.50.13/system?keyfile=/root/key",
            "hostscale:vms.hosts[2].libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, "
            "got 'qemu+ssh://192.168.50.13/system?keyfile=/root/key'"),
    invalid("remote URI with a port that is not a number", "multihost", "vms.hosts.2.libvirt_uri", "qemu+ssh://hostscale@192.168.50.13:ssh/system",
            "hostscale:vms.hosts[2].libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, "
            "got 'qemu+ssh://hostscale@192.168.50.13:ssh/system'"),
    invalid("no key for the autoscaler", "multihost", "vms.ssh_identity_file", DELETED,
            "hostscale:vms.ssh_identity_file is required: hostscale:vms.hosts[1].libvirt_uri is "
            "qemu+ssh://hostscale@192.168.50.12/system and the autoscaler powers VMs there over SSH (a private key "
            "on this host, readable by the autoscaler's user)"),
    invalid("host network too small for its share", "multihost", "vms.hosts.2.network_cidr", "10.77.3.0/29",
            "hostscale:vms.hosts[2].network_cidr is 10.77.3.0/29: too small for 2 VMs"),
    invalid("manager advertising on another host's network", "multihost", "host.advertise_addr", "10.77.2.1",
            "hostscale:host.advertise_addr is 10.77.2.1 but the VMs reach the manager at 10.77.1.1 (the first "
            "address of hostscale:vms.hosts[0].network_cidr 10.77.1.0/24)"),
]
# fmt: on


@pytest.mark.parametrize(("stack", "setting", "value", "message"), INVALID)
def test_invalid_config_names_key_and_value(stack: str, setting: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_stack_config(getter(edited(stack, setting, value)))
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        pytest.param(
            {"warm_pool_min": 1, "warm_pool_max": 0},
            "hostscale:vms.warm_pool_max is 0 but hostscale:vms.warm_pool_min is 1",
            id="a warm pool maximum below its minimum",
        ),
        pytest.param(
            {"warm_pool_min": 1, "warm_pool": "stopped"},
            "hostscale:vms.warm_pool_min is 1 but hostscale:vms.warm_pool is stopped: a pool that parks cold "
            "keeps no VM warm",
            id="a warm minimum for a pool that parks cold",
        ),
    ],
)
def test_warm_pool_settings_that_contradict_each_other(edits: dict[str, Any], message: str) -> None:
    config = stack_config("lab")
    config["hostscale:vms"] = {**config["hostscale:vms"], **edits}
    with pytest.raises(ConfigError) as error:
        load_stack_config(getter(config))
    assert str(error.value) == message


def test_warm_pool_settings_reach_the_pool() -> None:
    config = stack_config("lab")
    config["hostscale:vms"] = {
        **config["hostscale:vms"],
        "warm_pool_min": 1,
        "warm_pool_max": 1,
        "reuse_on_scale_in": False,
    }
    vms = load_stack_config(getter(config)).vms
    assert vms is not None
    assert (vms.warm_pool_min, vms.warm_pool_max, vms.reuse_on_scale_in) == (1, 1, False)


@pytest.mark.parametrize(
    ("section", "value"),
    [pytest.param("app", [], id="an empty list"), pytest.param("load_balancer", "", id="an empty string")],
)
def test_a_section_that_is_not_a_mapping_is_refused_even_when_empty(section: str, value: Any) -> None:
    config = {**stack_config("local"), f"hostscale:{section}": value}
    with pytest.raises(ConfigError) as error:
        load_stack_config(getter(config))
    assert str(error.value) == f"hostscale:{section} must be a mapping, got {value!r}"


def valid(id: str, stack: str, setting: str, value: Any) -> Any:
    return pytest.param(stack, setting, value, id=id)


# fmt: off
VALID = [
    valid("an image on a registry with a port, a tag and a digest", "local", "app.image",
          "registry.example.com:5000/team/app:1.4@sha256:" + "a" * 64),
    valid("an image by its short name", "local", "app.image", "app"),
    valid("an RSA login key of 3072 bits with a comment", "lab", "vms.ssh_public_key", RSA_3072 + " operator@laptop"),
    valid("an ECDSA login key", "lab", "vms.ssh_public_key", ECDSA_256),
    valid("an ed25519 login key with a comment of several words", "lab", "vms.ssh_public_key", LOCAL_KEY + " the operator"),
    valid("a base image from an https URL", "lab", "vms.base_image",
          "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"),
    valid("an RSA host key", "multihost", "vms.hosts.1.ssh_host_key", RSA_3072),
    valid("a prefix of 24 characters", "local", "host.name_prefix", "h" * 23 + "1"),
    valid("a remote hypervisor by DNS name and port", "multihost", "vms.hosts.2.libvirt_uri",
          "qemu+ssh://deploy@hv3.lab.example:2222/system"),
]
# fmt: on


@pytest.mark.parametrize(("stack", "setting", "value"), VALID)
def test_valid_values_at_the_edges_of_each_grammar_load(stack: str, setting: str, value: Any) -> None:
    load_stack_config(getter(edited(stack, setting, value)))


def test_the_app_is_told_its_pool_size_which_the_connection_check_counted() -> None:
    run = record_program(edited("local", "app.db_pool_max_size", 7), "local")
    env = run.resources["app-service"].inputs["taskSpec"]["containerSpec"]["env"]
    assert env["DB_POOL_MAX_SIZE"] == "7"


def test_program_fails_on_invalid_config_before_declaring_anything() -> None:
    config = edited("local", "autoscaler.replicas.min", 9)
    mocks = RecordingMocks()
    with pytest.raises(ConfigError, match=r"hostscale:autoscaler\.replicas\.min is 9"):
        record_program(config, "local", mocks=mocks)
    declared = [name for name, r in mocks.resources.items() if r.type != "pulumi:pulumi:Stack"]
    assert declared == [], f"resources declared before the config error: {declared}"


def test_program_reads_the_operators_db_password_as_a_secret() -> None:
    run = record_program(
        stack_config("local"), "local", secrets={"hostscale:db_password": "operator-chosen-pw"}
    )
    assert "database-generated-password" not in run.resources, "no password is generated when one is given"
    assert "data" in run.resources["database-password"].secret_inputs


def test_the_flat_vms_keys_are_one_host_with_the_host_sections_budget() -> None:
    vms = load_stack_config(getter(stack_config("lab"))).vms
    assert vms is not None
    [host] = vms.hosts
    assert (host.name, host.libvirt_uri, host.network_cidr, host.network_mode) == (
        "host", "qemu:///system", "10.77.0.0/24", "nat",
    )  # fmt: skip
    assert (host.budget_memory_mb, host.budget_vcpus, host.ssh_host_key) == (8192, 6, None)
    assert vms.placement == (0, 0, 0)


def test_multihost_spreads_the_vms_over_the_hosts_within_each_budget() -> None:
    vms = load_stack_config(getter(stack_config("multihost"))).vms
    assert vms is not None
    assert [h.name for h in vms.hosts] == ["hv1", "hv2", "hv3"]
    # hv1 holds 4 VMs of 2048 MB (8192 MB), hv3 2 (2 vCPUs): skipped once full.
    assert vms.placement == (0, 1, 2, 0, 1, 2, 0, 1, 0, 1)
    assert [vms.host_of(i).name for i in range(vms.running)] == ["hv1", "hv2", "hv3"]
    assert vms.gateway == "10.77.1.1"
    assert vms.hosts[1].known_hosts_line().startswith("192.168.50.12 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
