"""The reconcile loop: observe -> decide -> act -> record, one tick at a time.

Stateless across restarts by design: the replica count is read from Swarm at every tick, and the history
starts empty, so a restarted autoscaler holds (stabilization and rule durations start over) and never jumps.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from autoscaler.decide import Decision, History, Observation, decide, record
from autoscaler.fleet import FleetPolicy, Step, VmState
from autoscaler.fleet import plan as plan_fleet
from autoscaler.haproxy_metrics import BackendSample
from autoscaler.policy import Policy

log = logging.getLogger("hostscale.autoscaler")


class MetricSource(Protocol):
    def read(self) -> BackendSample: ...


class Replicas(Protocol):
    def get(self) -> int: ...

    def set(self, count: int) -> None: ...


@dataclass(frozen=True)
class Event:
    """One tick, as /events and the load-test timeline see it."""

    seq: int
    time: float  # unix time
    current: int
    desired: int
    ready: int
    direction: str
    reasons: tuple[str, ...]
    metrics: dict[str, float]
    acted: bool
    error: str | None = None
    servers: dict[str, str] = field(default_factory=dict)
    # The warm pool, when the stack has VMs: each VM's state, how many run, and the steps taken this tick.
    vms: dict[str, str] = field(default_factory=dict)
    vms_running: int | None = None
    vm_steps: tuple[str, ...] = ()


class Fleet(Protocol):
    def take_errors(self) -> list[str]: ...

    def observe(self) -> list[VmState]: ...

    def busy(self, name: str) -> bool: ...

    def apply(self, step: Step) -> bool: ...


class Controller:
    def __init__(
        self,
        policy: Policy,
        source: MetricSource,
        replicas: Replicas,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        keep_events: int = 5000,
        fleet: tuple[Fleet, FleetPolicy] | None = None,
    ) -> None:
        self.policy = policy
        self.source = source
        self.replicas = replicas
        self.clock = clock
        self.wall_clock = wall_clock
        self.history = History()
        # The loop appends from its thread while the status API reads from the event loop's: every read takes a
        # copy under this lock (iterating the deque while it grows raises "deque mutated during iteration").
        self._lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=keep_events)
        # Counted as they happen, not over the bounded buffer: a counter that fell once the buffer wrapped would
        # read as a restart to Prometheus.
        self._actions: Counter[str] = Counter()
        self.last_sample: BackendSample | None = None
        # Wall and CPU seconds of the last ticks: the loop's own overhead, for /metrics and the benchmarks.
        self.tick_seconds: list[float] = []
        self.tick_cpu_seconds: list[float] = []
        self._seq = 0
        self.fleet = fleet
        self._surplus_since: float | None = None

    def _observe(self, current: int) -> tuple[Observation, str | None]:
        try:
            self.last_sample = self.source.read()
            error = None
        except Exception as exc:  # any failure to read is "no fresh metrics", never a crash
            error = f"metrics unreadable: {type(exc).__name__}: {exc}"
        sample = self.last_sample
        if sample is None:
            return Observation(None, current, 0, {}), error
        # A failed read reuses the last sample with its old timestamp: decide() holds once it is too old.
        return Observation(sample.at, current, sample.ready, sample.metrics), error

    def _act(self, decision: Decision, current: int) -> tuple[bool, str | None]:
        if decision.count == current or self.policy.dry_run:
            return False, None
        try:
            self.replicas.set(decision.count)
        except Exception as exc:
            return False, f"scaling to {decision.count} failed: {type(exc).__name__}: {exc}"
        return True, None

    def tick(self) -> Event:
        started, started_cpu = time.perf_counter(), time.thread_time()
        now = self.clock()
        current = self.replicas.get()  # Swarm unreachable: the tick fails and the loop logs it
        observation, read_error = self._observe(current)
        decision = decide(observation, self.history, self.policy, now)
        acted, act_error = self._act(decision, current)
        if decision.direction != "none" and not acted and not self.policy.dry_run:
            decision = replace(decision, direction="none")  # nothing changed: no cooldown starts
        self.history = record(self.history, observation, decision, now, self.policy)
        vms, vm_steps, fleet_error = self._plan_fleet(decision.count, now) if self.fleet else ({}, (), None)
        self._seq += 1
        event = Event(
            seq=self._seq,
            time=self.wall_clock(),
            current=current,
            desired=decision.count,
            ready=observation.ready,
            direction=decision.direction,
            reasons=decision.reasons,
            metrics=dict(observation.metrics),
            acted=acted,
            error=act_error or read_error or fleet_error,
            servers=dict(self.last_sample.servers) if self.last_sample else {},
            vms=vms,
            vms_running=sum(1 for state in vms.values() if state != "off") if self.fleet else None,
            vm_steps=vm_steps,
        )
        with self._lock:
            self._events.append(event)
            if acted:
                self._actions[decision.direction] += 1
        self.tick_seconds.append(time.perf_counter() - started)
        self.tick_cpu_seconds.append(time.thread_time() - started_cpu)
        del self.tick_seconds[:-1000], self.tick_cpu_seconds[:-1000]
        if decision.count != current or event.error or vm_steps:
            log.info(json.dumps(_log_line(event, self.policy.dry_run)))
        return event

    def _plan_fleet(self, desired: int, now: float) -> tuple[dict[str, str], tuple[str, ...], str | None]:
        """Power and drain worker VMs for the desired replicas; a VM whose state cannot be read holds the fleet."""
        assert self.fleet is not None
        fleet, fleet_policy = self.fleet
        new_errors = fleet.take_errors()
        try:
            states = fleet.observe()
        except Exception as exc:
            return {}, (), f"VMs unreadable, holding the fleet: {type(exc).__name__}: {exc}"
        labels = {vm.name: _label(vm) for vm in states}
        plan = plan_fleet(desired, states, fleet_policy, self._surplus_since, now)
        self._surplus_since = plan.surplus_since
        taken = []
        for step in plan.steps:
            if self.policy.dry_run or fleet.busy(step.vm):
                continue
            if fleet.apply(step):
                taken.append(f"{step.verb} {step.vm}: {step.reason}")
        return labels, tuple(taken), "; ".join(new_errors) or None

    def recent_events(self) -> list[Event]:
        """The kept events, oldest first: a copy, safe to read while the loop ticks."""
        with self._lock:
            return list(self._events)

    def events_since(self, seq: int) -> list[Event]:
        return [event for event in self.recent_events() if event.seq > seq]

    def scaling_actions(self, direction: str) -> int:
        """Replica changes made in `direction` since the process started (never falls)."""
        with self._lock:
            return self._actions[direction]


def _label(vm: VmState) -> str:
    if not vm.powered:
        return "off"
    if not vm.ready:
        return "booting"
    return f"active ({vm.tasks} tasks)" if vm.active else f"drained ({vm.tasks} tasks)"


def _log_line(event: Event, dry_run: bool) -> dict[str, Any]:
    line = asdict(event)
    line.pop("servers")
    line["dry_run"] = dry_run
    return line
