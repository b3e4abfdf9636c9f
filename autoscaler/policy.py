"""The operator's scaling policy: one typed model, validated in one place.

The same loader checks `hostscale:autoscaler` in the stack config at `pulumi preview` (keys prefixed with
`hostscale:autoscaler.`) and the policy file the running autoscaler reads (no prefix), so a policy that
previews is a policy that runs. Every error names the key and the value.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cronsim import CronSim, CronSimError

# Metrics read from HAProxy's backend; "per replica" ones are divided by the replicas HAProxy reports UP.
METRICS: dict[str, str] = {
    "sessions_per_replica": "concurrent sessions per ready replica",
    "requests_per_second_per_replica": "requests per second per ready replica",
    "response_time_ms": "average response time of the backend, in milliseconds",
    "queued_requests": "requests waiting in HAProxy's queues for a free replica slot",
}
MIN_INTERVAL_S = 0.5
# Upper bounds: a value past them is a typo, not a plan (10^9 replicas, a cooldown of a year).
MAX_SECONDS = 86400.0  # every duration: a day
MAX_REPLICAS = 1000  # every count of replicas (the stack config's own bound on the app's replicas)
MAX_METRIC_VALUE = 1e6  # a rule's target or threshold, in the metric's own unit
MAX_PERCENT = 1000.0
MAX_PANIC_THRESHOLD = 100.0


class PolicyError(ValueError):
    """An invalid policy; the message names the key and the value."""


@dataclass(frozen=True)
class DirectionPolicy:
    """How fast the replica count may move in one direction."""

    stabilization_s: float  # look back this long and take the most cautious recommendation
    max_step: int | None  # at most this many replicas per decision
    max_step_percent: float | None  # at most this share of the current count per decision
    cooldown_s: float  # wait this long after a scaling action before the next one in this direction
    # Target rules ignore a deviation from their target within this share in this direction (like HPA's
    # behavior.scaleUp/scaleDown.tolerance): e.g. react to +10 % quickly but only to -30 % for scale-in.
    tolerance: float = 0.1


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
class WindowPolicy:
    """Knative KPA's two windows over fast reads of HAProxy: target rules decide on the stable window's average;
    when the panic window's average asks for `panic_threshold` x the ready replicas, the loop acts at once and
    does not scale in until a whole stable window has passed without that."""

    sample_interval_s: float  # read HAProxy this often between decisions
    stable_s: float
    panic_s: float
    panic_threshold: float


@dataclass(frozen=True)
class Deadlines:
    """How long a part may stay stuck before the loop stops waiting for it (and reports it in /status)."""

    not_ready_s: float = 120.0  # fewer replicas UP than running: past this, scale-in is no longer held back
    vm_boot_s: float = 300.0  # a VM powered on whose node is not ready is no longer counted as on its way
    virsh_read_s: float = 10.0  # one hypervisor's state read (every tick)
    virsh_action_s: float = 600.0  # one power action (start, managedsave, shutdown), off the loop


CRON_FIELDS = "minute hour day-of-month month day-of-week"


@dataclass(frozen=True)
class Schedule:
    """A time window that raises the minimum: it opens at each time `start` (a 5-field cron expression, read in
    `timezone`) matches and stays open for `duration_s` of elapsed time. Plain strings, so /status can show the
    policy as JSON; autoscaler/schedule.py evaluates them."""

    name: str
    start: str
    duration_s: float
    min_replicas: int
    timezone: str  # an IANA zone name: the schedule's own, or the policy's `timezone`
    min_workers: int = 0  # worker VMs kept active (stacks with VMs): the fleet planner's minimum


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
    windows: WindowPolicy | None = None  # None: one read per decision, no panic mode
    deadlines: Deadlines = field(default_factory=Deadlines)
    timezone: str = "UTC"  # the operator's zone: what a schedule without its own `timezone` reads its cron in
    schedules: tuple[Schedule, ...] = ()

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
        self,
        name: str,
        default: float | None = None,
        *,
        low: float = 0.0,
        positive: bool = False,
        high: float | None = None,
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
        if high is not None and value > high:
            raise PolicyError(f"{self.key(name)} must be at most {high:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int | None = None, *, low: int = 0, high: int | None = None) -> int:
        value = self.get(name, default)
        if value is None:
            raise PolicyError(f"{self.key(name)} is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{self.key(name)} must be an integer, got {value!r}")
        if value < low:
            raise PolicyError(f"{self.key(name)} must be at least {low}, got {value!r}")
        if high is not None and value > high:
            raise PolicyError(f"{self.key(name)} must be at most {high}, got {value!r}")
        return value

    def optional_number(
        self, name: str, default: float | None, *, positive: bool = True, high: float | None = None
    ) -> float | None:
        if self.get(name, default) is None:
            return None
        return self.number(name, default, positive=positive, high=high)

    def optional_integer(
        self, name: str, default: int | None, *, low: int = 1, high: int | None = None
    ) -> int | None:
        if self.get(name, default) is None:
            return None
        return self.integer(name, default, low=low, high=high)

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


def _tolerance(reader: Reader, default: float) -> float:
    tolerance = reader.number("tolerance", default)
    if tolerance >= 1:
        raise PolicyError(f"{reader.key('tolerance')} is {tolerance:g} but must be below 1")
    return tolerance


def _direction(reader: Reader, default: DirectionPolicy, tolerance: float) -> DirectionPolicy:
    """One direction's limits; its tolerance defaults to the policy's top-level `tolerance`."""
    policy = DirectionPolicy(
        stabilization_s=reader.number("stabilization_seconds", default.stabilization_s, high=MAX_SECONDS),
        max_step=reader.optional_integer("max_step", default.max_step, high=MAX_REPLICAS),
        max_step_percent=reader.optional_number(
            "max_step_percent", default.max_step_percent, high=MAX_PERCENT
        ),
        cooldown_s=reader.number("cooldown_seconds", default.cooldown_s, high=MAX_SECONDS),
        tolerance=_tolerance(reader, tolerance),
    )
    reader.done()
    return policy


def _target(reader: Reader) -> TargetRule:
    rule = TargetRule(
        reader.name("name"),
        reader.metric("metric"),
        reader.number("target", positive=True, high=MAX_METRIC_VALUE),
    )
    reader.done()
    return rule


def _step(reader: Reader) -> StepRule:
    name, metric = reader.name("name"), reader.metric("metric")
    if ("above" in reader.raw) == ("below" in reader.raw):
        raise PolicyError(f"{reader.path} needs exactly one of above or below, got {dict(reader.raw)!r}")
    comparison: Literal["above", "below"] = "above" if "above" in reader.raw else "below"
    threshold = reader.number(comparison, high=MAX_METRIC_VALUE)
    if ("add" in reader.raw) == ("remove" in reader.raw):
        raise PolicyError(f"{reader.path} needs exactly one of add or remove, got {dict(reader.raw)!r}")
    change = (
        reader.integer("add", low=1, high=MAX_REPLICAS)
        if "add" in reader.raw
        else -reader.integer("remove", low=1, high=MAX_REPLICAS)
    )
    rule = StepRule(
        name, metric, comparison, threshold, reader.number("for_seconds", 0.0, high=MAX_SECONDS), change
    )
    reader.done()
    return rule


MIN_SAMPLE_INTERVAL_S = 0.1


def _deadlines(reader: Reader) -> Deadlines:
    default = Deadlines()
    deadlines = Deadlines(
        not_ready_s=reader.number("not_ready_seconds", default.not_ready_s, positive=True, high=MAX_SECONDS),
        vm_boot_s=reader.number("vm_boot_seconds", default.vm_boot_s, positive=True, high=MAX_SECONDS),
        virsh_read_s=reader.number(
            "virsh_read_seconds", default.virsh_read_s, positive=True, high=MAX_SECONDS
        ),
        virsh_action_s=reader.number(
            "virsh_action_seconds", default.virsh_action_s, positive=True, high=MAX_SECONDS
        ),
    )
    reader.done()
    return deadlines


def _windows(reader: Reader, interval_s: float) -> WindowPolicy:
    windows = WindowPolicy(
        sample_interval_s=reader.number("sample_interval_seconds", 0.25, positive=True, high=MAX_SECONDS),
        stable_s=reader.number("stable_seconds", 60.0, positive=True, high=MAX_SECONDS),
        panic_s=reader.number("panic_seconds", 6.0, positive=True, high=MAX_SECONDS),
        panic_threshold=reader.number("panic_threshold", 2.0, positive=True, high=MAX_PANIC_THRESHOLD),
    )
    reader.done()
    if not MIN_SAMPLE_INTERVAL_S <= windows.sample_interval_s <= interval_s:
        raise PolicyError(
            f"{reader.key('sample_interval_seconds')} is {windows.sample_interval_s:g} but must be between "
            f"{MIN_SAMPLE_INTERVAL_S:g} and the interval_seconds ({interval_s:g})"
        )
    if windows.stable_s < interval_s:
        raise PolicyError(
            f"{reader.key('stable_seconds')} is {windows.stable_s:g} but must be at least the interval_seconds "
            f"({interval_s:g})"
        )
    if not windows.sample_interval_s <= windows.panic_s <= windows.stable_s:
        raise PolicyError(
            f"{reader.key('panic_seconds')} is {windows.panic_s:g} but must be between the "
            f"sample_interval_seconds ({windows.sample_interval_s:g}) and the stable_seconds ({windows.stable_s:g})"
        )
    if windows.panic_threshold <= 1:
        raise PolicyError(
            f"{reader.key('panic_threshold')} is {windows.panic_threshold:g} but must be above 1"
        )
    return windows


def _timezone(reader: Reader, name: str, default: str) -> str:
    value = reader.string(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # ValueError: not a zone key at all ("../x", "/etc")
        # Without a time zone database every name is unknown: say so, or "Europe/Berlin" reads as a typo.
        hint = (
            ""
            if zoneinfo.available_timezones()
            else "; this Python finds no time zone database (install tzdata)"
        )
        raise PolicyError(
            f"{reader.key(name)} is {value!r}, not an IANA time zone name (e.g. Europe/Berlin, America/New_York, "
            f"UTC){hint}"
        ) from None
    return value


def _cron(reader: Reader, name: str, zone: str) -> str:
    value = reader.string(name)
    # cronsim also takes a 6th (seconds) field; a window is planned in minutes, like crontab(5).
    if len(value.split()) != 5:
        raise PolicyError(
            f"{reader.key(name)} is {value!r}, not a cron expression: it needs 5 fields ({CRON_FIELDS}), "
            f"got {len(value.split())}"
        )
    try:
        next(CronSim(value, datetime.now(UTC).astimezone(zoneinfo.ZoneInfo(zone))))
    except CronSimError as exc:
        raise PolicyError(
            f"{reader.key(name)} is {value!r}, not a cron expression: {str(exc).lower()} ({CRON_FIELDS})"
        ) from None
    except StopIteration:  # never raised by cronsim 2.8 for a parsed expression, but a window must open
        raise PolicyError(f"{reader.key(name)} is {value!r}, which never matches") from None
    return value


def _schedule(reader: Reader, default_zone: str, max_replicas: int, max_key: str) -> Schedule:
    name = reader.name("name")
    zone = _timezone(reader, "timezone", default_zone)
    schedule = Schedule(
        name=name,
        start=_cron(reader, "start", zone),
        duration_s=reader.number("duration_seconds", positive=True, high=MAX_SECONDS),
        min_replicas=reader.integer("min_replicas", low=0, high=MAX_REPLICAS),
        timezone=zone,
        min_workers=reader.integer("min_workers", 0, low=0, high=MAX_REPLICAS),
    )
    reader.done()
    if schedule.min_replicas > max_replicas:
        raise PolicyError(
            f"{reader.key('min_replicas')} is {schedule.min_replicas} but {max_key} is {max_replicas}"
        )
    return schedule


def _schedules(reader: Reader, default_zone: str, max_replicas: int, max_key: str) -> tuple[Schedule, ...]:
    schedules = tuple(
        _schedule(item, default_zone, max_replicas, max_key) for item in reader.items("schedules")
    )
    names = [schedule.name for schedule in schedules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PolicyError(f"{reader.key('schedules')}: schedule name {duplicates[0]!r} is used twice")
    return schedules


def load_policy(raw: Any, prefix: str = "") -> Policy:
    """Validate a raw policy (parsed YAML or JSON). `prefix` names where it came from, e.g.
    "hostscale:autoscaler" for the stack config."""
    reader = Reader(raw, prefix)
    defaults = Policy(min_replicas=1, max_replicas=1)
    replicas = reader.child("replicas")
    min_replicas = replicas.integer("min", low=0, high=MAX_REPLICAS)
    max_replicas = replicas.integer("max", low=1, high=MAX_REPLICAS)
    replicas.done()
    if min_replicas > max_replicas:
        raise PolicyError(
            f"{replicas.key('min')} is {min_replicas} but {replicas.key('max')} is {max_replicas}"
        )
    interval = reader.number("interval_seconds", defaults.interval_s, high=MAX_SECONDS)
    if interval < MIN_INTERVAL_S:
        raise PolicyError(
            f"{reader.key('interval_seconds')} is {interval:g} but must be at least {MIN_INTERVAL_S}"
        )
    tolerance = _tolerance(reader, defaults.tolerance)
    policy = Policy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        interval_s=interval,
        tolerance=tolerance,
        metrics_max_age_s=reader.number(
            "metrics_max_age_seconds", defaults.metrics_max_age_s, positive=True, high=MAX_SECONDS
        ),
        dry_run=reader.boolean("dry_run", defaults.dry_run),
        scale_up=_direction(reader.child("scale_up"), defaults.scale_up, tolerance),
        scale_down=_direction(reader.child("scale_down"), defaults.scale_down, tolerance),
        targets=tuple(_target(item) for item in reader.items("targets")),
        steps=tuple(_step(item) for item in reader.items("steps")),
        windows=None if reader.get("windows") is None else _windows(reader.child("windows"), interval),
        deadlines=_deadlines(reader.child("deadlines")),
        timezone=(zone := _timezone(reader, "timezone", defaults.timezone)),
        schedules=_schedules(reader, zone, max_replicas, replicas.key("max")),
    )
    reader.done()
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
