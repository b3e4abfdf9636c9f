"""render_settings_file(): what the Autoscaler component uploads, rendered without Pulumi from each real stack
file, loads with the autoscaler's own loader and says what the stack config says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.settings import load_settings
from components.autoscaler import render_settings_file
from components.config import load_stack_config
from harness.program import stack_config

METRICS_URL = "http://127.0.0.1:8404/metrics"


def rendered(stack: str) -> tuple[dict[str, Any], str]:
    """The stack file's config, and the settings file the component renders from it."""
    raw = stack_config(stack)
    config = load_stack_config(lambda name: raw.get(f"hostscale:{name}"))
    names = [f"{config.host.name_prefix}-worker-{i}" for i in range(config.vms.count)] if config.vms else []
    return raw, render_settings_file(config.autoscaler, "hs-app", METRICS_URL, config.vms, names)


def test_the_local_stack_has_no_fleet() -> None:
    _, text = rendered("local")
    settings = load_settings(json.loads(text))
    assert settings.fleet is None
    assert (settings.service, settings.haproxy.metrics_url, settings.haproxy.backend) == (
        "hs-app",
        METRICS_URL,
        "app",
    )
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 9100)


@pytest.mark.parametrize("stack", ["lab", "lab-emulated", "multihost"])
def test_a_lab_stack_fleet_is_its_stack_configs_vms(stack: str) -> None:
    raw, text = rendered(stack)
    settings = load_settings(json.loads(text))
    vms = raw["hostscale:vms"]
    prefix = raw["hostscale:host"]["name_prefix"]
    config = load_stack_config(lambda name: raw.get(f"hostscale:{name}"))
    assert config.vms is not None
    hosts = [host["libvirt_uri"] for host in vms["hosts"]] if "hosts" in vms else [vms["libvirt_uri"]]
    assert settings.fleet is not None
    assert settings.fleet.uris == {
        f"{prefix}-worker-{i}": hosts[config.vms.placement[i]] for i in range(vms["count"])
    }, f"{stack}: each VM on the hypervisor the spread placed it on, in power-on order"
    assert settings.fleet.replicas_per_vm == vms["replicas_per_vm"], f"{stack}: capacity"
    assert settings.fleet.park == vms["warm_pool"], f"{stack}: park mode"
    assert settings.fleet.scale_in_after_s == vms["scale_in_after_seconds"], f"{stack}: scale-in delay"
    assert settings.policy.max_replicas == raw["hostscale:autoscaler"]["replicas"]["max"], f"{stack}: policy"
