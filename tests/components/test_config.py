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
    invalid("empty image", "local", "app.image", "",
            "hostscale:app.image must be an image reference, got ''"),
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
    invalid("kernel without initrd", "lab", "vms.initrd", None,
            "hostscale:vms.kernel and hostscale:vms.initrd go together, or neither"),
    invalid("relative kernel path", "lab", "vms.kernel", "vmlinuz",
            "hostscale:vms.kernel must be an absolute path on the hypervisor host, got 'vmlinuz'"),
    invalid("no running worker", "lab", "vms.running", 0,
            "hostscale:vms.running must be at least 1, got 0"),

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
            f"got 'ssh-rsa {LOCAL_KEY.split()[1]}'"),
    invalid("host key that is not base64", "multihost", "vms.hosts.1.ssh_host_key", "ssh-ed25519 not-base64!",
            "hostscale:vms.hosts[1].ssh_host_key must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
            "got 'ssh-ed25519 not-base64!'"),
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
