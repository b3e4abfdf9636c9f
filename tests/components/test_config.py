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


def changed(stack: str, key: str, path: list[str], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(stack))
    node = config.setdefault(f"hostscale:{key}", {})
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
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


INVALID = [
    pytest.param(
        "local",
        "autoscaler",
        ["replicas", "min"],
        9,
        "hostscale:autoscaler.replicas.min is 9 but hostscale:autoscaler.replicas.max is 6",
        id="min above max",
    ),
    pytest.param(
        "local",
        "autoscaler",
        ["targets"],
        [{"name": "cpu", "metric": "cpu_percent", "target": 50}],
        "hostscale:autoscaler.targets[0].metric is 'cpu_percent', not a known metric (queued_requests, requests_per_second_per_replica, response_time_ms, sessions_per_replica)",
        id="unknown metric",
    ),
    pytest.param(
        "local",
        "autoscaler",
        ["targets"],
        [{"name": "s", "metric": "sessions_per_replica", "target": -1}],
        "hostscale:autoscaler.targets[0].target must be positive, got -1",
        id="negative target",
    ),
    pytest.param(
        "local",
        "autoscaler",
        ["interval_seconds"],
        0.1,
        "hostscale:autoscaler.interval_seconds is 0.1 but must be at least 0.5",
        id="interval too short",
    ),
    pytest.param(
        "local",
        "autoscaler",
        ["listen"],
        "0.0.0.0",  # noqa: S104 (the invalid value under test)
        "hostscale:autoscaler.listen must be ADDRESS:PORT, got '0.0.0.0'",
        id="listen without port",
    ),
    pytest.param(
        "local",
        "load_balancer",
        ["http_port"],
        8404,
        "hostscale:load_balancer.stats_port is 8404, the same host port as hostscale:load_balancer.http_port",
        id="two tiers on one host port",
    ),
    pytest.param(
        "local",
        "load_balancer",
        ["http_port"],
        70000,
        "hostscale:load_balancer.http_port must be at most 65535, got 70000",
        id="port out of range",
    ),
    pytest.param(
        "local",
        "load_balancer",
        ["stats_bind"],
        "localhost",
        "hostscale:load_balancer.stats_bind must be an IPv4 address, got 'localhost'",
        id="bind not an address",
    ),
    pytest.param(
        "local",
        "load_balancer",
        ["maxconn"],
        10,
        "hostscale:load_balancer.maxconn is not a known setting",
        id="misspelt setting",
    ),
    pytest.param(
        "local",
        "app",
        ["initial_replicas"],
        9,
        "hostscale:app.initial_replicas is 9 but hostscale:autoscaler.replicas allows 2 to 6",
        id="initial replicas outside bounds",
    ),
    pytest.param(
        "local",
        "app",
        ["memory_mb"],
        16,
        "hostscale:app.memory_mb must be at least 64, got 16",
        id="app memory too small",
    ),
    pytest.param(
        "local",
        "app",
        ["image"],
        "",
        "hostscale:app.image must be an image reference, got ''",
        id="empty image",
    ),
    pytest.param(
        "lab",
        "vms",
        ["memory_mb"],
        4096,
        "hostscale:vms.memory_mb is 4096 for 3 VMs (12288 in all) but hostscale:host.budget_memory_mb is 8192",
        id="VMs over the memory budget",
    ),
    pytest.param(
        "lab",
        "vms",
        ["vcpus"],
        4,
        "hostscale:vms.vcpus is 4 for 3 VMs (12 in all) but hostscale:host.budget_vcpus is 6",
        id="VMs over the vCPU budget",
    ),
    pytest.param(
        "lab",
        "vms",
        ["network_cidr"],
        "10.77.0.0/33",
        "hostscale:vms.network_cidr must be an IPv4 CIDR, got '10.77.0.0/33'",
        id="invalid CIDR",
    ),
    pytest.param(
        "lab",
        "vms",
        ["libvirt_uri"],
        "http://hypervisor",
        "hostscale:vms.libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, got 'http://hypervisor'",
        id="invalid libvirt URI",
    ),
    pytest.param(
        "lab",
        "vms",
        ["domain_type"],
        "xen",
        "hostscale:vms.domain_type must be kvm or qemu, got 'xen'",
        id="unknown domain type",
    ),
    pytest.param(
        "lab",
        "vms",
        ["running"],
        4,
        "hostscale:vms.running is 4 but hostscale:vms.count is 3",
        id="more running than VMs",
    ),
    pytest.param(
        "lab",
        "vms",
        ["replicas_per_vm"],
        2,
        "hostscale:autoscaler.replicas.max is 12 but 3 VMs hold 6 replicas (hostscale:vms.replicas_per_vm is 2)",
        id="max replicas beyond VM capacity",
    ),
    pytest.param(
        "lab",
        "host",
        ["advertise_addr"],
        "127.0.0.1",
        "hostscale:host.advertise_addr is 127.0.0.1 but the VMs reach the manager at 10.77.0.1 (the first address of hostscale:vms.network_cidr 10.77.0.0/24)",
        id="manager not on the VM network",
    ),
    pytest.param(
        "lab",
        "vms",
        ["warm_pool"],
        "hibernate",
        "hostscale:vms.warm_pool must be one of suspended, stopped, got 'hibernate'",
        id="unknown warm pool mode",
    ),
    pytest.param(
        "lab",
        "vms",
        ["initrd"],
        None,
        "hostscale:vms.kernel and hostscale:vms.initrd go together, or neither",
        id="kernel without initrd",
    ),
    pytest.param(
        "lab",
        "vms",
        ["kernel"],
        "vmlinuz",
        "hostscale:vms.kernel must be an absolute path on the hypervisor host, got 'vmlinuz'",
        id="relative kernel path",
    ),
    pytest.param(
        "lab",
        "vms",
        ["running"],
        0,
        "hostscale:vms.running must be at least 1, got 0",
        id="no running worker",
    ),
]


@pytest.mark.parametrize(("stack", "key", "path", "value", "message"), INVALID)
def test_invalid_config_names_key_and_value(
    stack: str, key: str, path: list[str], value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_stack_config(getter(changed(stack, key, path, value)))
    assert str(error.value) == message


def test_program_fails_on_invalid_config_before_declaring_anything() -> None:
    config = changed("local", "autoscaler", ["replicas", "min"], 9)
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


def multihost(edit: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config("multihost"))
    edit(config)
    return config


def vms_edit(*path: str | int, value: Any) -> Any:
    """An edit of hostscale:vms at `path` (keys and list indexes); value None deletes the key."""

    def edit(config: dict[str, Any]) -> None:
        node = config["hostscale:vms"]
        for part in path[:-1]:
            node = node[part]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return edit


LOCAL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBj2d30KoOheLb20xUyzKmqb0D04pPxUuAC9NReNWI8B"

INVALID_MULTIHOST = [
    pytest.param(
        vms_edit("count", value=15),
        "hostscale:vms.count is 15 but the hosts' budgets hold 14 VMs of 2048 MB and 1 vCPUs "
        "(hostscale:vms.memory_mb, hostscale:vms.vcpus): "
        "hv1 4 (hostscale:vms.hosts[0]: budget_memory_mb 8192, budget_vcpus 6), "
        "hv2 8 (hostscale:vms.hosts[1]: budget_memory_mb 16384, budget_vcpus 8), "
        "hv3 2 (hostscale:vms.hosts[2]: budget_memory_mb 4096, budget_vcpus 2)",
        id="more VMs than the hosts hold",
    ),
    pytest.param(
        vms_edit("hosts", 1, "budget_memory_mb", value=4096),
        "hostscale:vms.count is 10 but the hosts' budgets hold 8 VMs of 2048 MB and 1 vCPUs "
        "(hostscale:vms.memory_mb, hostscale:vms.vcpus): "
        "hv1 4 (hostscale:vms.hosts[0]: budget_memory_mb 8192, budget_vcpus 6), "
        "hv2 2 (hostscale:vms.hosts[1]: budget_memory_mb 4096, budget_vcpus 8), "
        "hv3 2 (hostscale:vms.hosts[2]: budget_memory_mb 4096, budget_vcpus 2)",
        id="one host's budget shrinks below its share",
    ),
    pytest.param(
        vms_edit("hosts", 2, "budget_vcpus", value=None),
        "hostscale:vms.hosts[2].budget_vcpus is required",
        id="host without a budget",
    ),
    pytest.param(
        vms_edit("libvirt_uri", value="qemu:///system"),
        "hostscale:vms.libvirt_uri is set but hostscale:vms.hosts lists the hosts: set it on each host there",
        id="flat key beside the host list",
    ),
    pytest.param(
        lambda c: c["hostscale:host"].update(budget_memory_mb=65536),
        "hostscale:host.budget_memory_mb is set but hostscale:vms.hosts gives each host its own budget",
        id="host budget beside the host list",
    ),
    pytest.param(
        vms_edit("hosts", value=[]),
        "hostscale:vms.hosts must be a non-empty list of hosts, got []",
        id="empty host list",
    ),
    pytest.param(
        vms_edit("hosts", 2, "name", value="hv2"),
        "hostscale:vms.hosts[2].name is 'hv2', the same as hostscale:vms.hosts[1].name",
        id="two hosts one name",
    ),
    pytest.param(
        vms_edit("hosts", 2, "name", value="HV 3"),
        "hostscale:vms.hosts[2].name must be lowercase letters, digits and dashes (at most 20), got 'HV 3'",
        id="host name unfit for resource names",
    ),
    pytest.param(
        vms_edit("hosts", 2, "libvirt_uri", value="qemu+ssh://hostscale@192.168.50.12/system"),
        "hostscale:vms.hosts[2].libvirt_uri is qemu+ssh://hostscale@192.168.50.12/system, the same hypervisor "
        "as hostscale:vms.hosts[1]",
        id="two hosts one hypervisor",
    ),
    pytest.param(
        vms_edit("hosts", 2, "network_cidr", value="10.77.0.0/16"),
        "hostscale:vms.hosts[2].network_cidr 10.77.0.0/16 overlaps hostscale:vms.hosts[0].network_cidr 10.77.1.0/24",
        id="overlapping VM networks",
    ),
    pytest.param(
        vms_edit("hosts", 1, "network_mode", value="nat"),
        "hostscale:vms.hosts[1].network_mode is nat but workers on different hosts must reach each other: set "
        "route, and route each host's network_cidr to that host (README: More than one hypervisor host)",
        id="NAT network across hosts",
    ),
    pytest.param(
        vms_edit("hosts", 1, "network_mode", value="bridge"),
        "hostscale:vms.hosts[1].network_mode must be one of nat, route, got 'bridge'",
        id="unknown network mode",
    ),
    pytest.param(
        lambda c: c["hostscale:vms"]["hosts"].reverse(),
        "hostscale:vms.hosts[0].libvirt_uri is qemu+ssh://hostscale@192.168.50.13/system but the first host is "
        "the Swarm manager's own hypervisor: it must be qemu:///system",
        id="manager's host not first",
    ),
    pytest.param(
        vms_edit("hosts", 1, "ssh_host_key", value=None),
        "hostscale:vms.hosts[1].ssh_host_key is required for qemu+ssh://hostscale@192.168.50.12/system: the "
        "autoscaler connects with strict host key checking (the host's public key, e.g. from "
        "/etc/ssh/ssh_host_ed25519_key.pub on that host)",
        id="remote host without its host key",
    ),
    pytest.param(
        vms_edit("hosts", 1, "ssh_host_key", value="ssh-rsa " + LOCAL_KEY.split()[1]),
        "hostscale:vms.hosts[1].ssh_host_key must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
        f"got 'ssh-rsa {LOCAL_KEY.split()[1]}'",
        id="host key whose type does not match its data",
    ),
    pytest.param(
        vms_edit("hosts", 1, "ssh_host_key", value="ssh-ed25519 not-base64!"),
        "hostscale:vms.hosts[1].ssh_host_key must be a public host key (TYPE BASE64, e.g. ssh-ed25519 AAAA...), "
        "got 'ssh-ed25519 not-base64!'",
        id="host key that is not base64",
    ),
    pytest.param(
        vms_edit("hosts", 0, "ssh_host_key", value=LOCAL_KEY),
        "hostscale:vms.hosts[0].ssh_host_key is set but hostscale:vms.hosts[0].libvirt_uri is qemu:///system: "
        "only qemu+ssh hosts are reached over SSH",
        id="host key for the local hypervisor",
    ),
    pytest.param(
        vms_edit("hosts", 2, "libvirt_uri", value="qemu+ssh://192.168.50.13/system?keyfile=/root/key"),
        "hostscale:vms.hosts[2].libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, "
        "got 'qemu+ssh://192.168.50.13/system?keyfile=/root/key'",
        id="remote URI without user, with parameters",
    ),
    pytest.param(
        vms_edit("hosts", 2, "libvirt_uri", value="qemu+ssh://hostscale@192.168.50.13:ssh/system"),
        "hostscale:vms.hosts[2].libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST[:PORT]/system, "
        "got 'qemu+ssh://hostscale@192.168.50.13:ssh/system'",
        id="remote URI with a port that is not a number",
    ),
    pytest.param(
        vms_edit("ssh_identity_file", value=None),
        "hostscale:vms.ssh_identity_file is required: hostscale:vms.hosts[1].libvirt_uri is "
        "qemu+ssh://hostscale@192.168.50.12/system and the autoscaler powers VMs there over SSH (a private key "
        "on this host, readable by the autoscaler's user)",
        id="no key for the autoscaler",
    ),
    pytest.param(
        vms_edit("hosts", 2, "network_cidr", value="10.77.3.0/29"),
        "hostscale:vms.hosts[2].network_cidr is 10.77.3.0/29: too small for 2 VMs",
        id="host network too small for its share",
    ),
    pytest.param(
        lambda c: c["hostscale:host"].update(advertise_addr="10.77.2.1"),
        "hostscale:host.advertise_addr is 10.77.2.1 but the VMs reach the manager at 10.77.1.1 (the first "
        "address of hostscale:vms.hosts[0].network_cidr 10.77.1.0/24)",
        id="manager advertising on another host's network",
    ),
]


@pytest.mark.parametrize(("edit", "message"), INVALID_MULTIHOST)
def test_invalid_multihost_config_names_key_and_value(edit: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_stack_config(getter(multihost(edit)))
    assert str(error.value) == message
