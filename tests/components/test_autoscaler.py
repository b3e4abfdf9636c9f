"""render_settings_file(): what the Autoscaler component uploads, rendered without Pulumi from each real stack
file, loads with the autoscaler's own loader and says what the stack config says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.forecast import PredictivePolicy
from autoscaler.settings import load_settings
from components.autoscaler import healthcheck, render_settings_file
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
    assert (settings.fleet.warm_pool_min, settings.fleet.warm_pool_max, settings.fleet.reuse_on_scale_in) == (
        config.vms.warm_pool_min,
        config.vms.warm_pool_max,
        config.vms.reuse_on_scale_in,
    ), f"{stack}: warm pool size"
    assert settings.fleet.predictive == PredictivePolicy(
        config.vms.predictive_power_on, config.vms.trend_window_seconds, config.vms.power_on_seconds
    ), f"{stack}: predictive power-on"
    assert settings.policy.max_replicas == raw["hostscale:autoscaler"]["replicas"]["max"], f"{stack}: policy"


def test_windows_deadlines_and_tolerances_reach_the_running_policy() -> None:
    raw = stack_config("local")
    raw["hostscale:autoscaler"] = {
        **raw["hostscale:autoscaler"],
        "replicas": {"min": 0, "max": 6},
        "windows": {"sample_interval_seconds": 0.5, "stable_seconds": 30, "panic_seconds": 3},
        "deadlines": {"not_ready_seconds": 90, "virsh_read_seconds": 5},
        "scale_down": {"stabilization_seconds": 30, "tolerance": 0.3},
    }
    raw["hostscale:app"] = {**raw["hostscale:app"], "initial_replicas": 0}
    config = load_stack_config(lambda name: raw.get(f"hostscale:{name}"))
    settings = load_settings(json.loads(render_settings_file(config.autoscaler, "hs-app", METRICS_URL)))
    assert settings.policy == config.autoscaler.policy, "the autoscaler runs the policy preview validated"
    assert settings.policy.windows is not None
    assert (settings.policy.min_replicas, settings.policy.windows.panic_s) == (0, 3.0)
    assert (settings.policy.deadlines.not_ready_s, settings.policy.deadlines.virsh_read_s) == (90.0, 5.0)
    assert (settings.policy.scale_up.tolerance, settings.policy.scale_down.tolerance) == (0.1, 0.3)


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9100", "http://127.0.0.1:9100/healthz"),
        ("0.0.0.0:9200", "http://127.0.0.1:9200/healthz"),
    ],
    ids=["a loopback listen is probed where it listens", "a wildcard listen is probed on loopback"],
)  # fmt: skip
def test_the_container_health_check_probes_healthz_where_the_api_listens(listen: str, url: str) -> None:
    raw = stack_config("local")
    raw["hostscale:autoscaler"] = {**raw["hostscale:autoscaler"], "listen": listen}
    config = load_stack_config(lambda name: raw.get(f"hostscale:{name}"))
    check = healthcheck(config.autoscaler)
    assert check.tests == [
        "CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=4)",
    ]  # fmt: skip
    assert (check.interval, check.timeout, check.start_period, check.retries) == ("10s", "5s", "30s", 3)
