"""The stack config: both real stack files load; each invalid config fails with the key and the value named,
and the program fails on it before declaring any resource."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config import ConfigError, load_stack_config
from harness.program import stack_config
from tests.support.pulumi_program import RecordingMocks, run_program


def getter(config: dict[str, Any]) -> Any:
    return lambda name: config.get(f"hostscale:{name}")


def changed(stack: str, key: str, path: list[str], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(stack))
    node = config.setdefault(f"hostscale:{key}", {})
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return config


@pytest.mark.parametrize("stack", ["local", "lab", "lab-emulated"])
def test_real_stack_files_load(stack: str) -> None:
    config = load_stack_config(getter(stack_config(stack)))
    assert config.autoscaler.policy.min_replicas == 2
    assert (config.vms is not None) == stack.startswith("lab")


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
        "hostscale:vms.libvirt_uri must be qemu:///system or qemu+ssh://USER@HOST/system, got 'http://hypervisor'",
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
        run_program(config, "local", mocks=mocks)
    declared = [name for name, r in mocks.resources.items() if r.type != "pulumi:pulumi:Stack"]
    assert declared == [], f"resources declared before the config error: {declared}"


def test_program_reads_the_operators_db_password_as_a_secret() -> None:
    run = run_program(stack_config("local"), "local", secrets={"hostscale:db_password": "operator-chosen-pw"})
    assert "database-generated-password" not in run.resources, "no password is generated when one is given"
    assert "data" in run.resources["database-password"].secret_inputs
