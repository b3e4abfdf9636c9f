"""The operator's scaling policy: one typed model, validated in one place.

The same loader checks `hostscale:autoscaler` in the stack config at `pulumi preview` (keys prefixed with
`hostscale:autoscaler.`) and the policy file the running autoscaler reads (no prefix), so a policy that
previews is a policy that runs. Every error names the key and the value.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Metrics read from HAProxy's backend; "per replica" ones are divided by the replicas HAProxy reports UP.
METRICS: dict[str, str] = {
    "sessions_per_replica": "concurrent sessions per ready replica",
    "requests_per_second_per_replica": "requests per second per ready replica",
    "response_time_ms": "average response time of the backend, in milliseconds",
    "queued_requests": "requests waiting in HAProxy's queues for a free replica slot",
}
MIN_INTERVAL_S = 0.5


class PolicyError(ValueError):
    """An invalid policy; the message names the key and the value."""


@dataclass(frozen=True)
class DirectionPolicy:
    """How fast the replica count may move in one direction."""

    stabilization_s: float  # look back this long and take the most cautious recommendation
    max_step: int | None  # at most this many replicas per decision
    max_step_percent: float | None  # at most this share of the current count per decision
    cooldown_s: float  # wait this long after a scaling action before the next one in this direction


@dataclass(frozen=True)
class TargetRule:
    """Target tracking: keep `metric` near `target` by scaling proportionally (like Kubernetes' HPA)."""

    name: str
    metric: str
    target: float


@dataclass(frozen=True)
class StepRule:
    """The operator's explicit condition: when `metric` is above/below `threshold` for `for_s`, change by `change`."""

    name: str
    metric: str
    comparison: Literal["above", "below"]
    threshold: float
    for_s: float
    change: int  # positive adds replicas, negative removes them

    def holds(self, value: float) -> bool:
        return value > self.threshold if self.comparison == "above" else value < self.threshold


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    interval_s: float = 2.0
    tolerance: float = 0.1
    metrics_max_age_s: float = 10.0
    dry_run: bool = False
    scale_up: DirectionPolicy = field(default_factory=lambda: DirectionPolicy(0.0, 4, 100.0, 0.0))
    scale_down: DirectionPolicy = field(default_factory=lambda: DirectionPolicy(60.0, 1, None, 15.0))
    targets: tuple[TargetRule, ...] = ()
    steps: tuple[StepRule, ...] = ()

    @property
    def metrics(self) -> set[str]:
        return {rule.metric for rule in self.targets} | {rule.metric for rule in self.steps}

    @property
    def history_s(self) -> float:
        """How much history decisions can look at: the longest window any rule or direction uses."""
        windows = [self.scale_up.stabilization_s, self.scale_down.stabilization_s, self.scale_up.cooldown_s]
        windows += [self.scale_down.cooldown_s, *(rule.for_s for rule in self.steps)]
        return max(windows) + self.interval_s


class Reader:
    """Reads one mapping of raw config, naming every key by its full path in errors. The stack config's
    loader (components/config.py) uses it too, so every config error in the project reads the same way."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{path} must be a mapping, got {raw!r}")
        self.raw = raw
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path and not self.path.endswith(":") else f"{self.path}{name}"

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.raw.get(name, default)

    def number(
        self, name: str, default: float | None = None, *, low: float = 0.0, positive: bool = False
    ) -> float:
        value = self.get(name, default)
        if value is None:
            raise PolicyError(f"{self.key(name)} is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyError(f"{self.key(name)} must be a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan and .inf compare false with every bound below
            raise PolicyError(f"{self.key(name)} must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise PolicyError(f"{self.key(name)} must be positive, got {value!r}")
        if value < low:
            raise PolicyError(f"{self.key(name)} must be at least {low}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int | None = None, *, low: int = 0) -> int:
        value = self.get(name, default)
        if value is None:
            raise PolicyError(f"{self.key(name)} is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{self.key(name)} must be an integer, got {value!r}")
        if value < low:
            raise PolicyError(f"{self.key(name)} must be at least {low}, got {value!r}")
        return value

    def optional_number(self, name: str, default: float | None, *, positive: bool = True) -> float | None:
        if self.get(name, default) is None:
            return None
        return self.number(name, default, positive=positive)

    def optional_integer(self, name: str, default: int | None, *, low: int = 1) -> int | None:
        if self.get(name, default) is None:
            return None
        return self.integer(name, default, low=low)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise PolicyError(f"{self.key(name)} must be true or false, got {value!r}")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{self.key(name)} must be a non-empty string, got {value!r}")
        return value

    def listen(self, name: str, default: str | None = None) -> tuple[str, int]:
        """An IPv4 `ADDRESS:PORT` to serve on, as (address, port)."""
        value = self.string(name, default)
        host, _, port = value.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise PolicyError(f"{self.key(name)} must be ADDRESS:PORT, got {value!r}") from None
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise PolicyError(f"{self.key(name)} must be ADDRESS:PORT, got {value!r}")
        return host, int(port)

    def name(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(f"{self.key(name)} must be a non-empty string, got {value!r}")
        return value

    def metric(self, name: str) -> str:
        value = self.get(name)
        if value not in METRICS:
            known = ", ".join(sorted(METRICS))
            raise PolicyError(f"{self.key(name)} is {value!r}, not a known metric ({known})")
        return str(value)

    def child(self, name: str) -> Reader:
        return Reader(self.get(name, {}), self.key(name))

    def items(self, name: str) -> list[Reader]:
        value = self.get(name, [])
        if not isinstance(value, list):
            raise PolicyError(f"{self.key(name)} must be a list, got {value!r}")
        return [Reader(item, f"{self.key(name)}[{index}]") for index, item in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            # Every loader reads each of its keys before done(), so what was read is the set of valid keys.
            nearest = difflib.get_close_matches(str(unknown[0]), sorted(self.used), n=1)
            hint = f" (did you mean {self.key(nearest[0])}?)" if nearest else ""
            raise PolicyError(f"{self.key(unknown[0])} is not a known setting{hint}")


def _direction(reader: Reader, default: DirectionPolicy) -> DirectionPolicy:
    policy = DirectionPolicy(
        stabilization_s=reader.number("stabilization_seconds", default.stabilization_s),
        max_step=reader.optional_integer("max_step", default.max_step),
        max_step_percent=reader.optional_number("max_step_percent", default.max_step_percent),
        cooldown_s=reader.number("cooldown_seconds", default.cooldown_s),
    )
    reader.done()
    return policy


def _target(reader: Reader) -> TargetRule:
    rule = TargetRule(reader.name("name"), reader.metric("metric"), reader.number("target", positive=True))
    reader.done()
    return rule


def _step(reader: Reader) -> StepRule:
    name, metric = reader.name("name"), reader.metric("metric")
    if ("above" in reader.raw) == ("below" in reader.raw):
        raise PolicyError(f"{reader.path} needs exactly one of above or below, got {dict(reader.raw)!r}")
    comparison: Literal["above", "below"] = "above" if "above" in reader.raw else "below"
    threshold = reader.number(comparison)
    if ("add" in reader.raw) == ("remove" in reader.raw):
        raise PolicyError(f"{reader.path} needs exactly one of add or remove, got {dict(reader.raw)!r}")
    change = reader.integer("add", low=1) if "add" in reader.raw else -reader.integer("remove", low=1)
    rule = StepRule(name, metric, comparison, threshold, reader.number("for_seconds", 0.0), change)
    reader.done()
    return rule


def load_policy(raw: Any, prefix: str = "") -> Policy:
    """Validate a raw policy (parsed YAML or JSON). `prefix` names where it came from, e.g.
    "hostscale:autoscaler" for the stack config."""
    reader = Reader(raw, prefix)
    defaults = Policy(min_replicas=1, max_replicas=1)
    replicas = reader.child("replicas")
    min_replicas = replicas.integer("min", low=0)
    max_replicas = replicas.integer("max", low=1)
    replicas.done()
    if min_replicas > max_replicas:
        raise PolicyError(
            f"{replicas.key('min')} is {min_replicas} but {replicas.key('max')} is {max_replicas}"
        )
    interval = reader.number("interval_seconds", defaults.interval_s)
    if interval < MIN_INTERVAL_S:
        raise PolicyError(
            f"{reader.key('interval_seconds')} is {interval:g} but must be at least {MIN_INTERVAL_S}"
        )
    policy = Policy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        interval_s=interval,
        tolerance=reader.number("tolerance", defaults.tolerance),
        metrics_max_age_s=reader.number("metrics_max_age_seconds", defaults.metrics_max_age_s, positive=True),
        dry_run=reader.boolean("dry_run", defaults.dry_run),
        scale_up=_direction(reader.child("scale_up"), defaults.scale_up),
        scale_down=_direction(reader.child("scale_down"), defaults.scale_down),
        targets=tuple(_target(item) for item in reader.items("targets")),
        steps=tuple(_step(item) for item in reader.items("steps")),
    )
    reader.done()
    if policy.tolerance >= 1:
        raise PolicyError(f"{reader.key('tolerance')} is {policy.tolerance:g} but must be below 1")
    if policy.metrics_max_age_s < policy.interval_s:
        raise PolicyError(
            f"{reader.key('metrics_max_age_seconds')} is {policy.metrics_max_age_s:g} but "
            f"{reader.key('interval_seconds')} is {policy.interval_s:g}: every observation would be stale"
        )
    names = [rule.name for rule in policy.targets] + [rule.name for rule in policy.steps]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PolicyError(
            f"{reader.key('targets')}/{reader.key('steps')}: rule name {duplicates[0]!r} is used twice"
        )
    if not names:
        raise PolicyError(
            f"{reader.key('targets')} and {reader.key('steps')} are both empty: nothing to scale on"
        )
    return policy
