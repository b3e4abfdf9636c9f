"""hostscale's guardrails (Pulumi CrossGuard), mandatory unless noted:

- postgres-not-published: Postgres is never published on a host port.
- no-plaintext-secret-env: no secret in a plain environment variable (secrets travel as files).
- service-health-and-limits: every Swarm service has a health check and resource limits.
- vm-host-budget: the VMs on each hypervisor host fit its memory and vCPU budget.
- replicas-fit-vm-capacity: the autoscaler's max replicas fit what all VMs hold.
- registry-writable-on-loopback-only: a registry published beyond loopback serves read-only (its read-only
  config, every mount read-only): pushes stay on the host.
- stats-on-loopback (advisory): HAProxy's stats/metrics port is published on loopback only.

Resources are recognised by what they run (image repositories hostscale/postgres, hostscale/haproxy,
hostscale/autoscaler, hostscale/registry), so a renamed stack or prefix changes nothing.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

SERVICE = "docker:index/service:Service"
CONTAINER = "docker:index/container:Container"
DOMAIN = "libvirt:index/domain:Domain"
HYPERVISOR = "hostscale:index:Hypervisor"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL", re.IGNORECASE)
LOOPBACK = ("127.", "::1", "localhost")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (Docker's default when a port has no ip: what we must catch)
METRICS_PORT = 8404  # inside the HAProxy container: stats page and Prometheus endpoint
REGISTRY_READ_ONLY_CONFIG = "/etc/docker/registry/read-only.yml"  # images/registry/read-only.yml


def _image(props: Mapping[str, Any]) -> str:
    return str(
        (props.get("taskSpec") or {}).get("containerSpec", {}).get("image") or props.get("image") or ""
    )


def _runs(props: Mapping[str, Any], repository: str) -> bool:
    return f"/{repository}:" in f"/{_image(props)}"


def _is_secret(value: Any) -> bool:
    return type(value).__name__ == "Secret"  # pulumi_policy.Secret: a value the engine marked secret


def _env_pairs(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if resource_type == SERVICE:
        env = (props.get("taskSpec") or {}).get("containerSpec", {}).get("env") or {}
        return list(env.items())
    if resource_type == CONTAINER:
        return [tuple(item.split("=", 1)) if "=" in item else (item, "") for item in props.get("envs") or []]
    return []


def postgres_not_published(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _runs(args.props, "hostscale/postgres"):
        return
    if args.resource_type == SERVICE:
        ports = (args.props.get("endpointSpec") or {}).get("ports") or []
        if ports:
            published = [p.get("publishedPort") for p in ports]
            report(
                f"{args.name}: Postgres must not be published on a host port, publishes {published}", args.urn
            )
    elif args.resource_type == CONTAINER and args.props.get("ports"):
        published = [p.get("external") for p in args.props["ports"]]
        report(f"{args.name}: Postgres must not be published on a host port, publishes {published}", args.urn)


def no_plaintext_secret_env(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for key, value in _env_pairs(args.resource_type, args.props):
        if _is_secret(value):
            report(
                f"{args.name}: environment variable {key} carries a secret value; deliver it as a file",
                args.urn,
            )
        elif SECRET_NAME.search(str(key)) and value and not str(key).endswith("_FILE"):
            report(
                f"{args.name}: environment variable {key} looks like a secret in plain text; use {key}_FILE",
                args.urn,
            )


def service_health_and_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SERVICE:
        return
    task = args.props.get("taskSpec") or {}
    health = task.get("containerSpec", {}).get("healthcheck") or {}
    tests = health.get("tests") or []
    # An empty test with a timing is the image's own HEALTHCHECK on that timing (an operator's image:
    # components/app_tier.py liveness_check); only a missing check or NONE is none.
    if (tests[:1] == ["NONE"]) or (not tests and not health.get("interval")):
        report(f"{args.name}: the service has no health check (taskSpec.containerSpec.healthcheck)", args.urn)
    limits = (task.get("resources") or {}).get("limits") or {}
    if not limits.get("memoryBytes"):
        report(
            f"{args.name}: the service has no memory limit (taskSpec.resources.limits.memoryBytes)", args.urn
        )


def _by_host(resources: list[Any]) -> dict[str, list[Any]]:
    """Domains grouped by the hypervisor host (the libvirt provider's URI) they run on."""
    hosts: dict[str, list[Any]] = defaultdict(list)
    for resource in resources:
        if resource.resource_type == DOMAIN:
            uri = (resource.provider.props.get("uri") if resource.provider else None) or "qemu:///system"
            hosts[uri].append(resource)
    return hosts


def vm_host_budget(args: StackValidationArgs, report: ReportViolation) -> None:
    budgets = {r.props.get("libvirtUri"): r.props for r in args.resources if r.resource_type == HYPERVISOR}
    for uri, domains in _by_host(args.resources).items():
        budget = budgets.get(uri)
        if budget is None:
            report(f"VMs on {uri} have no declared host budget (the Hypervisor component's budget)", None)
            continue
        memory = sum(int(d.props.get("memory") or 0) for d in domains)
        vcpus = sum(int(d.props.get("vcpu") or 0) for d in domains)
        if memory > int(budget["budgetMemoryMb"]):
            report(
                f"{uri}: {len(domains)} VMs take {memory} MB of memory, the host's budget is {int(budget['budgetMemoryMb'])} MB",
                None,
            )
        if vcpus > int(budget["budgetVcpus"]):
            report(
                f"{uri}: {len(domains)} VMs take {vcpus} vCPUs, the host's budget is {int(budget['budgetVcpus'])}",
                None,
            )


def _max_replicas(resources: list[Any]) -> int | None:
    for resource in resources:
        if resource.resource_type == CONTAINER and _runs(resource.props, "hostscale/autoscaler"):
            for upload in resource.props.get("uploads") or []:
                if str(upload.get("file", "")).endswith("autoscaler.json"):  # its settings file
                    return int(json.loads(upload["content"])["policy"]["replicas"]["max"])
    return None


def replicas_fit_vm_capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    domains = [r for r in args.resources if r.resource_type == DOMAIN]
    if not domains:
        return  # the local stack: replicas run on the host itself
    per_vm = [
        (r.props.get("taskSpec") or {}).get("placement", {}).get("maxReplicas")
        for r in args.resources
        if r.resource_type == SERVICE
        and (r.props.get("taskSpec") or {}).get("placement", {}).get("maxReplicas")
    ]
    maximum = _max_replicas(args.resources)
    if maximum is None or not per_vm:
        report(
            "cannot check the autoscaler's max replicas against VM capacity: no autoscaler policy or no per-VM capacity",
            None,
        )
        return
    capacity = len(domains) * int(per_vm[0])
    if maximum > capacity:
        report(
            f"the autoscaler may run {maximum} replicas but {len(domains)} VMs hold {capacity} ({int(per_vm[0])} each)",
            None,
        )


def stats_on_loopback(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER or not _runs(args.props, "hostscale/haproxy"):
        return
    for port in args.props.get("ports") or []:
        bind = str(port.get("ip") or ALL_INTERFACES)
        if int(port.get("internal", 0)) == METRICS_PORT and not bind.startswith(LOOPBACK):
            report(
                f"{args.name}: HAProxy's stats and metrics are published on {bind}, not loopback", args.urn
            )


def registry_writable_on_loopback_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER or not _runs(args.props, "hostscale/registry"):
        return
    binds = {str(p.get("ip") or ALL_INTERFACES) for p in args.props.get("ports") or []}
    beyond = sorted(bind for bind in binds if not bind.startswith(LOOPBACK))
    if not beyond:
        return
    if REGISTRY_READ_ONLY_CONFIG not in (args.props.get("command") or []):
        report(
            f"{args.name}: a registry published on {', '.join(beyond)} must serve {REGISTRY_READ_ONLY_CONFIG}",
            args.urn,
        )
    writable = [m.get("target") for m in args.props.get("mounts") or [] if not m.get("readOnly")]
    if writable:
        report(
            f"{args.name}: a registry published on {', '.join(beyond)} mounts {writable} writable", args.urn
        )


def _resource_policy(
    name: str, description: str, validate: Callable[..., None], level: EnforcementLevel
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=level
    )


POLICIES = [
    _resource_policy(
        "registry-writable-on-loopback-only",
        "A registry published beyond loopback serves read-only: pushes stay on the host.",
        registry_writable_on_loopback_only,
        EnforcementLevel.MANDATORY,
    ),
    _resource_policy(
        "postgres-not-published",
        "Postgres is never published on a host port.",
        postgres_not_published,
        EnforcementLevel.MANDATORY,
    ),
    _resource_policy(
        "no-plaintext-secret-env",
        "No secret in a plain environment variable.",
        no_plaintext_secret_env,
        EnforcementLevel.MANDATORY,
    ),
    _resource_policy(
        "service-health-and-limits",
        "Every Swarm service has a health check and limits.",
        service_health_and_limits,
        EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="vm-host-budget",
        description="The VMs fit each host's memory and vCPU budget.",
        validate=vm_host_budget,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="replicas-fit-vm-capacity",
        description="Max replicas fit the VMs' capacity.",
        validate=replicas_fit_vm_capacity,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    _resource_policy(
        "stats-on-loopback",
        "HAProxy stats and metrics bind to loopback.",
        stats_on_loopback,
        EnforcementLevel.ADVISORY,
    ),
]
