"""The policy pack's rules, fed the resources the real stacks declare (recorded under the mock runtime, in the
shape CrossGuard hands them over) and hand-made violations: the stacks pass, each violation is reported with
its message."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from harness.program import ROOT, stack_config
from harness.recording import Declared, record_program
from policies.guardrails import POLICIES

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def as_policy_resources(resources: dict[str, Declared]) -> list[PolicyResource]:
    providers = {
        f"{name}-id": PolicyProviderResource(r.type, r.inputs, f"urn:{name}", name)
        for name, r in resources.items()
        if r.type.startswith("pulumi:providers:")
    }
    return [
        PolicyResource(
            r.type,
            r.inputs,
            f"urn:{name}",
            name,
            OPTIONS,
            providers.get(r.provider.rsplit("::", 1)[-1]),
            None,
            [],
            {},
        )
        for name, r in resources.items()
        if not r.type.startswith("pulumi:providers:")
    ]


def violations(resources: list[PolicyResource]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {policy.name: [] for policy in POLICIES}
    for policy in POLICIES:

        def report(message: str, urn: str | None = None, name: str = policy.name) -> None:
            found[name].append(message)

        validate: Callable[..., None] = policy.validate  # type: ignore[attr-defined]
        if isinstance(policy, StackValidationPolicy):
            validate(StackValidationArgs(resources), report)
        elif isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts, r.provider)
                validate(args, report)
    return {name: messages for name, messages in found.items() if messages}


@pytest.fixture(scope="module", params=["local", "lab", "lab-emulated", "multihost"])
def recorded(request: pytest.FixtureRequest) -> list[PolicyResource]:
    return as_policy_resources(record_program(stack_config(request.param), request.param).resources)


def test_the_real_stacks_pass_every_policy(recorded: list[PolicyResource]) -> None:
    assert violations(recorded) == {}


def edited(
    resources: list[PolicyResource], name: str, edit: Callable[[dict[str, Any]], None]
) -> list[PolicyResource]:
    out = []
    for r in resources:
        if r.name == name:
            props = copy.deepcopy(dict(r.props))
            edit(props)
            r = PolicyResource(r.resource_type, props, r.urn, r.name, r.opts, r.provider, None, [], {})
        out.append(r)
    return out


@pytest.fixture(scope="module")
def lab() -> list[PolicyResource]:
    return as_policy_resources(record_program(stack_config("lab"), "lab").resources)


def test_postgres_published_on_a_host_port_is_refused(lab: list[PolicyResource]) -> None:
    def publish(props: dict[str, Any]) -> None:
        props["endpointSpec"]["ports"] = [{"targetPort": 5432, "publishedPort": 5432}]

    assert violations(edited(lab, "database-service", publish)) == {
        "postgres-not-published": [
            "database-service: Postgres must not be published on a host port, publishes [5432]"
        ]
    }


def test_a_secret_in_a_plain_environment_variable_is_refused(lab: list[PolicyResource]) -> None:
    def leak(props: dict[str, Any]) -> None:
        props["taskSpec"]["containerSpec"]["env"]["DB_PASSWORD"] = "hunter2"  # noqa: S105 (the violation)

    assert violations(edited(lab, "app-service", leak)) == {
        "no-plaintext-secret-env": [
            "app-service: environment variable DB_PASSWORD looks like a secret in plain text; use DB_PASSWORD_FILE"
        ]
    }


def test_a_service_without_health_check_or_limits_is_refused(lab: list[PolicyResource]) -> None:
    def strip(props: dict[str, Any]) -> None:
        del props["taskSpec"]["containerSpec"]["healthcheck"]
        del props["taskSpec"]["resources"]

    assert violations(edited(lab, "app-service", strip)) == {
        "service-health-and-limits": [
            "app-service: the service has no health check (taskSpec.containerSpec.healthcheck)",
            "app-service: the service has no memory limit (taskSpec.resources.limits.memoryBytes)",
        ]
    }


def test_vms_beyond_the_host_budget_are_refused(lab: list[PolicyResource]) -> None:
    def grow(props: dict[str, Any]) -> None:
        props["memory"], props["vcpu"] = 8192, 5

    assert violations(edited(lab, "vms-0", grow)) == {
        "vm-host-budget": [
            "qemu:///system: 3 VMs take 11264 MB of memory, the host's budget is 8192 MB",
            "qemu:///system: 3 VMs take 9 vCPUs, the host's budget is 6",
        ]
    }


def test_each_hypervisor_host_is_held_to_its_own_budget() -> None:
    multihost = as_policy_resources(record_program(stack_config("multihost"), "multihost").resources)

    def grow(props: dict[str, Any]) -> None:
        props["memory"] = 4096

    # hsmulti-worker-2 is on hv3 (budget 4096 MB, 2 VMs): over it, though hv2 has 8192 MB to spare.
    assert violations(edited(multihost, "vms-2", grow)) == {
        "vm-host-budget": [
            "qemu+ssh://hostscale@192.168.50.13/system: 2 VMs take 6144 MB of memory, the host's budget is 4096 MB"
        ]
    }


def test_max_replicas_beyond_vm_capacity_is_refused(lab: list[PolicyResource]) -> None:
    def raise_max(props: dict[str, Any]) -> None:
        upload = props["uploads"][0]
        settings = json.loads(upload["content"])
        settings["policy"]["replicas"]["max"] = 13
        upload["content"] = json.dumps(settings)

    assert violations(edited(lab, "autoscaler-container", raise_max)) == {
        "replicas-fit-vm-capacity": ["the autoscaler may run 13 replicas but 3 VMs hold 12 (4 each)"]
    }


def test_a_registry_writable_beyond_loopback_is_refused(lab: list[PolicyResource]) -> None:
    def writable_on_the_vm_network(props: dict[str, Any]) -> None:
        del props["command"]
        props["mounts"][0]["readOnly"] = False

    def push_registry_on_the_vm_network(props: dict[str, Any]) -> None:
        props["ports"].append({"internal": 5000, "external": 5000, "ip": "10.77.0.1"})

    assert violations(edited(lab, "registry-pull-registry", writable_on_the_vm_network)) == {
        "registry-writable-on-loopback-only": [
            "registry-pull-registry: a registry published on 10.77.0.1 must serve /etc/docker/registry/read-only.yml",
            "registry-pull-registry: a registry published on 10.77.0.1 mounts ['/var/lib/docker-registry'] writable",
        ]
    }
    assert violations(edited(lab, "registry-registry", push_registry_on_the_vm_network)) == {
        "registry-writable-on-loopback-only": [
            "registry-registry: a registry published on 10.77.0.1 must serve /etc/docker/registry/read-only.yml",
            "registry-registry: a registry published on 10.77.0.1 mounts ['/var/lib/docker-registry'] writable",
        ]
    }


def test_haproxy_metrics_on_all_interfaces_is_reported(lab: list[PolicyResource]) -> None:
    def open_up(props: dict[str, Any]) -> None:
        for port in props["ports"]:
            if port["internal"] == 8404:
                port["ip"] = "0.0.0.0"  # noqa: S104 (the violation under test)

    assert violations(edited(lab, "load-balancer-haproxy", open_up)) == {
        "stats-on-loopback": [
            "load-balancer-haproxy: HAProxy's stats and metrics are published on 0.0.0.0, not loopback"
        ]
    }
    advisory = next(p for p in POLICIES if p.name == "stats-on-loopback")
    assert advisory.enforcement_level is not None
    assert advisory.enforcement_level.value == "advisory"


def test_the_policy_packs_pins_match_the_lock_file() -> None:
    pinned = dict(
        line.split("==")
        for line in (ROOT / "policies" / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    lock = (ROOT / "uv.lock").read_text()
    for package, version in pinned.items():
        assert f'name = "{package}"\nversion = "{version}"' in lock, (
            f"{package}=={version} is not what uv.lock pins"
        )


def test_a_stack_with_the_operators_own_image_passes_every_policy() -> None:
    # Its health check is the image's own HEALTHCHECK command (an empty test) on the spec's timing.
    config = copy.deepcopy(stack_config("local"))
    config["hostscale:app"] = {**config["hostscale:app"], "image": "registry.example/team/shop:1"}
    assert violations(as_policy_resources(record_program(config, "local").resources)) == {}


def test_a_service_that_turns_its_health_check_off_is_refused(lab: list[PolicyResource]) -> None:
    def disable(props: dict[str, Any]) -> None:
        props["taskSpec"]["containerSpec"]["healthcheck"]["tests"] = ["NONE"]

    assert violations(edited(lab, "app-service", disable)) == {
        "service-health-and-limits": [
            "app-service: the service has no health check (taskSpec.containerSpec.healthcheck)"
        ]
    }
