"""The autoscaler's one settings file: what it scales, where it reads HAProxy, where it serves its API, the
policy, and the warm-pool VMs. One typed model, validated in one place; every error names the key and the value.

components/autoscaler.py renders the file from the validated stack config, and the stack config
(components/config.py) is where every default lives: here every key is required, so no default is stated twice.
The policy is checked by the policy module's own loader, prefixed `policy.`.

    {
      "service": "hostscale-app",
      "haproxy": {"metrics_url": "http://127.0.0.1:8404/metrics", "backend": "app"},
      "listen": "127.0.0.1:9100",
      "policy": {...},
      "fleet": null | {
        "vms": [{"name": "hslab-worker-0", "libvirt_uri": "qemu:///system"}, ...],  # in power-on order
        "replicas_per_vm": 4,
        "park": "suspended" | "stopped",
        "scale_in_after_seconds": 120,
        "warm_pool": {"min": 0, "max": null | 2, "reuse_on_scale_in": true},   # fleet.py's warm pool
        "predictive": {"mode": "off" | "forecast_only" | "on", "window_seconds": 60,
                       "default_power_on_seconds": 90}                        # forecast.py
      }
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.fleet import PARK_MODES, FleetPolicy, ParkMode
from autoscaler.forecast import PREDICTIVE_MODES, PredictivePolicy
from autoscaler.policy import Policy, PolicyError, Reader, load_policy

SettingsError = PolicyError


@dataclass(frozen=True)
class HAProxySettings:
    metrics_url: str  # HAProxy's Prometheus endpoint
    backend: str  # the backend that serves the scaled service


@dataclass(frozen=True)
class VmSettings:
    name: str  # the libvirt domain name, which is also its Swarm node's hostname
    libvirt_uri: str  # its hypervisor


@dataclass(frozen=True)
class FleetSettings:
    vms: tuple[VmSettings, ...]  # in power-on order
    replicas_per_vm: int
    park: ParkMode
    scale_in_after_s: float
    warm_pool_min: int
    warm_pool_max: int | None
    reuse_on_scale_in: bool
    predictive: PredictivePolicy

    @property
    def uris(self) -> dict[str, str]:
        """Each VM, in power-on order, to its hypervisor's libvirt URI."""
        return {vm.name: vm.libvirt_uri for vm in self.vms}

    @property
    def policy(self) -> FleetPolicy:
        return FleetPolicy(
            tuple(self.uris),
            self.replicas_per_vm,
            self.scale_in_after_s,
            park=self.park,
            warm_pool_min=self.warm_pool_min,
            warm_pool_max=self.warm_pool_max,
            reuse_on_scale_in=self.reuse_on_scale_in,
        )


@dataclass(frozen=True)
class Settings:
    service: str  # the Swarm service whose replicas it scales
    haproxy: HAProxySettings
    listen_host: str  # the status API's address
    listen_port: int
    policy: Policy
    fleet: FleetSettings | None  # None: a stack without worker VMs


class _Settings(Reader):
    def present(self, name: str) -> Any:
        """A required key's raw value: nothing here has a default."""
        if name not in self.raw:
            raise SettingsError(f"{self.key(name)} is required")
        return self.get(name)

    def section(self, name: str) -> _Settings:
        return _Settings(self.present(name), self.key(name))

    def sections(self, name: str) -> list[_Settings]:
        value = self.present(name)
        if not isinstance(value, list) or not value:
            raise SettingsError(f"{self.key(name)} must be a non-empty list, got {value!r}")
        return [_Settings(item, f"{self.key(name)}[{index}]") for index, item in enumerate(value)]

    def text(self, name: str) -> str:
        self.present(name)
        return self.string(name)

    def park(self, name: str) -> ParkMode:
        value = self.text(name)
        for mode in PARK_MODES:
            if value == mode:
                return mode
        raise SettingsError(f"{self.key(name)} must be one of {', '.join(PARK_MODES)}, got {value!r}")


def _haproxy(reader: _Settings) -> HAProxySettings:
    settings = HAProxySettings(reader.text("metrics_url"), reader.text("backend"))
    reader.done()
    return settings


def _vm(reader: _Settings) -> VmSettings:
    vm = VmSettings(reader.text("name"), reader.text("libvirt_uri"))
    reader.done()
    return vm


def _fleet(reader: _Settings) -> FleetSettings:
    vms = [_vm(item) for item in reader.sections("vms")]
    names = [vm.name for vm in vms]
    for index, name in enumerate(names):
        if name in names[:index]:
            first = names.index(name)
            raise SettingsError(
                f"{reader.key('vms')}[{index}].name is {name!r}, the same as {reader.key('vms')}[{first}].name"
            )
    reader.present("replicas_per_vm")
    reader.present("scale_in_after_seconds")
    pool = reader.section("warm_pool")
    for key in ("min", "max", "reuse_on_scale_in"):
        pool.present(key)
    warm_min = pool.integer("min", high=len(vms))
    warm_max = pool.optional_integer("max", None, low=0, high=len(vms))
    if warm_max is not None and warm_max < warm_min:
        raise SettingsError(f"{pool.key('max')} is {warm_max} but {pool.key('min')} is {warm_min}")
    fleet = FleetSettings(
        vms=tuple(vms),
        replicas_per_vm=reader.integer("replicas_per_vm", low=1),
        park=reader.park("park"),
        scale_in_after_s=reader.number("scale_in_after_seconds"),
        warm_pool_min=warm_min,
        warm_pool_max=warm_max,
        reuse_on_scale_in=pool.boolean("reuse_on_scale_in", True),
        predictive=_predictive(reader.section("predictive")),
    )
    pool.done()
    reader.done()
    return fleet


def _predictive(reader: _Settings) -> PredictivePolicy:
    for key in ("mode", "window_seconds", "default_power_on_seconds"):
        reader.present(key)
    mode = reader.text("mode")
    chosen = next((m for m in PREDICTIVE_MODES if m == mode), None)
    if chosen is None:
        raise SettingsError(
            f"{reader.key('mode')} must be one of {', '.join(PREDICTIVE_MODES)}, got {mode!r}"
        )
    policy = PredictivePolicy(
        mode=chosen,
        window_s=reader.number("window_seconds", positive=True, high=3600),
        default_power_on_s=reader.number("default_power_on_seconds", positive=True, high=3600),
    )
    reader.done()
    return policy


def load_settings(raw: Any) -> Settings:
    """Validate a parsed settings document."""
    if not isinstance(raw, Mapping):
        raise SettingsError(f"the settings must be a mapping, got {raw!r}")
    reader = _Settings(raw, "")
    service = reader.text("service")
    haproxy = _haproxy(reader.section("haproxy"))
    reader.present("listen")
    host, port = reader.listen("listen")
    policy = load_policy(reader.present("policy"), prefix=reader.key("policy"))
    fleet = None if reader.present("fleet") is None else _fleet(reader.section("fleet"))
    reader.done()
    return Settings(service, haproxy, host, port, policy, fleet)


def read_settings(path: Path) -> Settings:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"settings file {path}: {exc}") from exc
    return load_settings(raw)
