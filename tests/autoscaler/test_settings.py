"""load_settings(): the autoscaler's one settings file. A complete file loads as written; every key is required
(the stack config holds the defaults), and each invalid file fails naming the key and the value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from autoscaler.fleet import FleetPolicy
from autoscaler.forecast import PredictivePolicy
from autoscaler.settings import SettingsError, load_settings, read_settings

POLICY = {
    "replicas": {"min": 2, "max": 10},
    "targets": [{"name": "s", "metric": "sessions_per_replica", "target": 10}],
}
REMOTE = "qemu+ssh://u@h2/system"


def valid() -> dict[str, Any]:
    return {
        "service": "hs-app",
        "haproxy": {"metrics_url": "http://127.0.0.1:8404/metrics", "backend": "app"},
        "listen": "127.0.0.1:9100",
        "policy": copy.deepcopy(POLICY),
        "fleet": {
            "vms": [
                {"name": "a", "libvirt_uri": "qemu:///system"},
                {"name": "b", "libvirt_uri": REMOTE},
                {"name": "c", "libvirt_uri": "qemu:///system"},
            ],
            "replicas_per_vm": 4,
            "park": "stopped",
            "scale_in_after_seconds": 90,
            "warm_pool": {"min": 1, "max": 2, "reuse_on_scale_in": False},
            "predictive": {"mode": "forecast_only", "window_seconds": 45, "default_power_on_seconds": 80},
        },
    }


DELETE = object()  # edited(): remove the key instead of setting it


def edited(path: list[str | int], value: Any) -> dict[str, Any]:
    """valid() with the key at `path` (keys and list indexes) set to `value`, or deleted."""
    raw = valid()
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


def test_a_complete_file_loads_as_written() -> None:
    settings = load_settings(valid())
    assert (settings.service, settings.haproxy.metrics_url, settings.haproxy.backend) == (
        "hs-app",
        "http://127.0.0.1:8404/metrics",
        "app",
    )
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 9100)
    assert (settings.policy.min_replicas, settings.policy.max_replicas) == (2, 10)
    assert settings.fleet is not None
    assert (settings.fleet.park, settings.fleet.replicas_per_vm) == ("stopped", 4)
    assert settings.fleet.policy == FleetPolicy(
        vms=("a", "b", "c"),
        replicas_per_vm=4,
        scale_in_after_s=90.0,
        park="stopped",
        warm_pool_min=1,
        warm_pool_max=2,
        reuse_on_scale_in=False,
    )
    assert settings.fleet.predictive == PredictivePolicy("forecast_only", window_s=45, default_power_on_s=80)


def test_each_vm_keeps_its_own_hypervisor_in_power_on_order() -> None:
    fleet = load_settings(valid()).fleet
    assert fleet is not None
    assert list(fleet.uris.items()) == [("a", "qemu:///system"), ("b", REMOTE), ("c", "qemu:///system")]


def test_a_stack_without_vms_has_no_fleet() -> None:
    assert load_settings(edited(["fleet"], None)).fleet is None


INVALID = [
    pytest.param(["service"], DELETE, "service is required", id="the service is required"),
    pytest.param(
        ["service"], "", "service must be a non-empty string, got ''", id="the service is not empty"
    ),
    pytest.param(["haproxy"], DELETE, "haproxy is required", id="the haproxy section is required"),
    pytest.param(
        ["haproxy"],
        "http://x/metrics",
        "haproxy must be a mapping, got 'http://x/metrics'",
        id="haproxy is a mapping",
    ),
    pytest.param(
        ["haproxy", "backend"], DELETE, "haproxy.backend is required", id="the backend has no default here"
    ),
    pytest.param(
        ["haproxy", "metrics_url"],
        8404,
        "haproxy.metrics_url must be a non-empty string, got 8404",
        id="a URL is text",
    ),
    pytest.param(
        ["haproxy", "port"], 8404, "haproxy.port is not a known setting", id="an unknown haproxy key"
    ),
    pytest.param(["listen"], DELETE, "listen is required", id="the listen address has no default here"),
    pytest.param(["listen"], "9100", "listen must be ADDRESS:PORT, got '9100'", id="listen needs an address"),
    pytest.param(
        ["listen"],
        "127.0.0.1:0",
        "listen must be ADDRESS:PORT, got '127.0.0.1:0'",
        id="listen needs a real port",
    ),
    pytest.param(
        ["listen"],
        "localhost:9100",
        "listen must be ADDRESS:PORT, got 'localhost:9100'",
        id="listen is an IPv4 address",
    ),
    pytest.param(["policy"], DELETE, "policy is required", id="the policy is required"),
    pytest.param(
        ["policy", "replicas"],
        {"min": 5, "max": 3},
        "policy.replicas.min is 5 but policy.replicas.max is 3",
        id="a policy error names its key under policy",
    ),
    pytest.param(["fleet"], DELETE, "fleet is required", id="fleet is required, null without VMs"),
    pytest.param(["fleet", "vms"], [], "fleet.vms must be a non-empty list, got []", id="a fleet has VMs"),
    pytest.param(
        ["fleet", "vms", 2, "name"],
        "a",
        "fleet.vms[2].name is 'a', the same as fleet.vms[0].name",
        id="VM names are unique",
    ),
    pytest.param(
        ["fleet", "vms", 1, "libvirt_uri"],
        DELETE,
        "fleet.vms[1].libvirt_uri is required",
        id="every VM names its hypervisor",
    ),
    pytest.param(
        ["fleet", "vms", 1, "host"], "hv2", "fleet.vms[1].host is not a known setting", id="an unknown VM key"
    ),
    pytest.param(
        ["fleet", "replicas_per_vm"],
        DELETE,
        "fleet.replicas_per_vm is required",
        id="capacity has no default here",
    ),
    pytest.param(
        ["fleet", "replicas_per_vm"],
        0,
        "fleet.replicas_per_vm must be at least 1, got 0",
        id="a VM holds a replica",
    ),
    pytest.param(["fleet", "park"], DELETE, "fleet.park is required", id="the park mode has no default here"),
    pytest.param(
        ["fleet", "park"],
        "hibernate",
        "fleet.park must be one of suspended, stopped, got 'hibernate'",
        id="a known park mode",
    ),
    pytest.param(
        ["fleet", "warm_pool", "min"],
        DELETE,
        "fleet.warm_pool.min is required",
        id="the warm pool's minimum has no default here",
    ),
    pytest.param(
        ["fleet", "warm_pool", "max"],
        DELETE,
        "fleet.warm_pool.max is required",
        id="the warm pool's maximum has no default here, null for none",
    ),
    pytest.param(
        ["fleet", "warm_pool", "min"],
        4,
        "fleet.warm_pool.min must be at most 3, got 4",
        id="the warm pool's minimum is within the VMs",
    ),
    pytest.param(
        ["fleet", "warm_pool", "max"],
        0,
        "fleet.warm_pool.max is 0 but fleet.warm_pool.min is 1",
        id="the warm pool's maximum is not below its minimum",
    ),
    pytest.param(
        ["fleet", "warm_pool", "reuse_on_scale_in"],
        "yes",
        "fleet.warm_pool.reuse_on_scale_in must be true or false, got 'yes'",
        id="reuse on scale-in is a boolean",
    ),
    pytest.param(
        ["fleet", "warm_pool", "size"],
        2,
        "fleet.warm_pool.size is not a known setting",
        id="an unknown warm pool key",
    ),
    pytest.param(
        ["fleet", "predictive", "mode"],
        "always",
        "fleet.predictive.mode must be one of off, forecast_only, on, got 'always'",
        id="a known predictive mode",
    ),
    pytest.param(
        ["fleet", "predictive", "window_seconds"],
        DELETE,
        "fleet.predictive.window_seconds is required",
        id="the trend window has no default here",
    ),
    pytest.param(
        ["fleet", "predictive", "default_power_on_seconds"],
        0,
        "fleet.predictive.default_power_on_seconds must be positive, got 0",
        id="the default power-on time is positive",
    ),
    pytest.param(
        ["fleet", "scale_in_after_seconds"],
        DELETE,
        "fleet.scale_in_after_seconds is required",
        id="the scale-in delay has no default here",
    ),
    pytest.param(
        ["fleet", "scale_in_after_seconds"],
        -1,
        "fleet.scale_in_after_seconds must be at least 0.0, got -1",
        id="the scale-in delay is not negative",
    ),
    pytest.param(
        ["replicas_per_vm"], 4, "replicas_per_vm is not a known setting", id="an unknown top-level key"
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID)
def test_invalid_settings_name_the_key_and_the_value(path: list[str | int], value: Any, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(edited(path, value))
    assert str(caught.value) == message


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings([valid()])
    assert str(caught.value).startswith("the settings must be a mapping, got [{'service': 'hs-app'")


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "autoscaler.json"
    path.write_text("{not json")
    with pytest.raises(SettingsError) as caught:
        read_settings(path)
    assert (
        str(caught.value)
        == f"settings file {path}: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    assert read_settings(_written(tmp_path / "ok.json", valid())).service == "hs-app"


def _written(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(json.dumps(raw))
    return path
