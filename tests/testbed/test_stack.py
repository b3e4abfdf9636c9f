"""A test stack's config (testbed/stack.py) under Pulumi's mock runtime: everything the program names or
publishes on the host is the test stack's own, so it deploys next to a `local` stack that is up."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config import load_stack_config
from components.settings import StackConfig
from harness.program import stack_config
from harness.recording import record_program
from testbed.stack import config_for

PREFIX = "hs-0123abcd"
POLICY = {
    "replicas": {"min": 1, "max": 1},
    "interval_seconds": 1,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
}
LOCAL_PORTS = {8080, 8404, 9100}  # the local stack's: a test stack must take none of them


def loaded(config: dict[str, Any]) -> StackConfig:
    return load_stack_config(lambda name: config.get(f"hostscale:{name}"))


def test_every_docker_object_the_program_names_starts_with_the_test_stacks_prefix() -> None:
    run = record_program(config_for(PREFIX), "test-0123abcd")
    named = {
        name: declared.inputs["name"]
        for name, declared in run.resources.items()
        if declared.type.startswith("docker:") and "name" in declared.inputs
    }
    assert sorted(named) == [
        "app-service",
        "autoscaler-container",
        "autoscaler-gate",
        "autoscaler-gate-sockets",
        "database-data",
        "database-password",
        "database-service",
        "load-balancer-haproxy",
        "swarm-db",
        "swarm-web",
    ]
    foreign = {name: value for name, value in named.items() if not value.startswith(f"{PREFIX}-")}
    assert foreign == {}, f"named without the prefix {PREFIX}: {foreign}"


def test_host_ports_are_free_loopback_ports_of_its_own() -> None:
    config = config_for(PREFIX)
    run = record_program(config, "test-0123abcd")
    haproxy = run.resources["load-balancer-haproxy"].inputs
    published = {(p["ip"], p["external"]) for p in haproxy["ports"]}
    settings = loaded(config)
    lb = settings.load_balancer
    assert published == {("127.0.0.1", lb.http_port), ("127.0.0.1", lb.stats_port)}
    uploads = {u["file"]: u["content"] for u in run.resources["autoscaler-container"].inputs["uploads"]}
    listen = json.loads(uploads["/etc/hostscale/autoscaler.json"])["listen"]
    assert listen == f"127.0.0.1:{settings.autoscaler.listen_port}"
    ports = {lb.http_port, lb.stats_port, settings.autoscaler.listen_port}
    assert len(ports) == 3, f"ports must differ: {ports}"
    assert not ports & LOCAL_PORTS, f"a test stack took a port of the local stack: {ports & LOCAL_PORTS}"


@pytest.mark.parametrize(
    ("autoscaler", "app", "expected"),
    [
        pytest.param(
            None,
            None,
            {"min": 2, "max": 6, "interval": 2.0, "initial": 2},
            id="no overrides keep the local policy",
        ),
        pytest.param(
            POLICY,
            {"initial_replicas": 1},
            {"min": 1, "max": 1, "interval": 1.0, "initial": 1},
            id="a policy override replaces the local policy and an app override changes only its keys",
        ),
    ],
)
def test_overrides_replace_the_policy_and_merge_into_the_app(
    autoscaler: dict[str, Any] | None, app: dict[str, Any] | None, expected: dict[str, float]
) -> None:
    settings = loaded(config_for(PREFIX, autoscaler, app))
    policy = settings.autoscaler.policy
    assert {
        "min": policy.min_replicas,
        "max": policy.max_replicas,
        "interval": policy.interval_s,
        "initial": settings.app.initial_replicas,
    } == expected
    local = loaded(stack_config("local"))
    assert settings.app.memory_mb == local.app.memory_mb
    assert settings.host.name_prefix == PREFIX


def _app_env(config: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = (
        record_program(config, "test-0123abcd")
        .resources["app-service"]
        .inputs["taskSpec"]["containerSpec"]["env"]
    )
    return env


@pytest.mark.parametrize(
    ("served_by_header", "expected"),
    [
        pytest.param(False, "false", id="replicas send no X-Served-By unless a test asks"),
        pytest.param(True, "true", id="a test that counts replicas turns X-Served-By on"),
    ],
)
def test_served_by_header_is_off_unless_the_test_turns_it_on(served_by_header: bool, expected: str) -> None:
    assert _app_env(config_for(PREFIX, served_by_header=served_by_header))["SERVED_BY_HEADER"] == expected
