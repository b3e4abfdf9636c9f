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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from autoscaler.decide import Decision, History, Observation, decide, panic_state, record
from autoscaler.fleet import FleetPolicy, Step, VmState
from autoscaler.fleet import plan as plan_fleet
from autoscaler.forecast import PredictivePolicy, forecast, power_on_horizon, wanted_replicas
from autoscaler.haproxy_metrics import BackendSample
from autoscaler.policy import Policy
from autoscaler.schedule import ScheduleBook
from autoscaler.windows import Windows

if TYPE_CHECKING:
    from autoscaler.warm_pool import PowerOnRecord

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
    # Parts past their deadline (replicas never ready, a VM that never joins, a hypervisor that does not answer).
    stuck: tuple[str, ...] = ()
    # Predictive power-on (autoscaler/forecast.py), when on or forecast-only: the trend of demand and what it asks.
    forecast: str | None = None


class Fleet(Protocol):
    def take_errors(self) -> list[str]: ...

    def observe(self) -> list[VmState]: ...

    def busy(self, name: str) -> bool: ...

    def apply(self, step: Step) -> bool: ...

    def take_notes(self) -> list[str]: ...

    def progress(self) -> dict[str, str]: ...

    def extra_replicas(self) -> int: ...

    def power_on_records(self) -> list[PowerOnRecord]: ...


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
        predictive: PredictivePolicy | None = None,
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
        self._booting_since: dict[str, float] = {}
        self.predictive = predictive or PredictivePolicy()  # off
        self._demand: deque[tuple[float, float]] = deque()  # (loop time, replicas wanted) over the window
        self._powering_on: dict[str, float] = {}  # VM -> when its power-on was applied
        self.power_on_seconds: deque[float] = deque(maxlen=20)  # decision -> node ready, measured
        self._forecast_only_last: str | None = None
        # With policy.windows: fast reads go into the windows from the sampler thread (sample()), a burst wakes
        # the loop before its interval is up (wake), and each tick decides on the windows.
        self.windows = Windows(policy.windows) if policy.windows else None
        self.wake = threading.Event()
        self._sample_error: str | None = None
        self._desired: int | None = None
        self.sample_cpu_seconds: list[float] = []
        # The schedules read the wall clock (they are the operator's hours); the loop's own clock is monotonic.
        self.schedules = ScheduleBook(policy)

    def sample(self) -> None:
        """One fast read into the windows; wakes the loop when the panic window asks for more than was set."""
        assert self.windows is not None
        started_cpu = time.thread_time()
        try:
            sample = self.source.read()
        except Exception as exc:
            with self._lock:
                self._sample_error = f"metrics unreadable: {type(exc).__name__}: {exc}"
            return
        with self._lock:
            self._sample_error = None
            self.windows.add(sample)
            desired = self._desired
        if desired is not None:
            now = self.clock()
            with self._lock:
                view = self.windows.panic_view(now)
            if view.latest is not None:
                latest = view.latest
                burst = Observation(
                    latest.at, desired, latest.ready, latest.metrics, view.demand, {}, view.panic
                )
                history = self.history
                panic = panic_state(burst, history, self.policy, now)
                # An early tick only when it can change something: not for a count past max, and not while
                # the scale-up cooldown would hold it (each tick reads Swarm through the Docker API).
                wanted = min(panic.count, self.policy.max_replicas)
                last_up = history.last_scale_up_at
                cooling = last_up is not None and now - last_up < self.policy.scale_up.cooldown_s
                if panic.triggered and wanted > desired and not cooling:
                    self.wake.set()
        self.sample_cpu_seconds.append(time.thread_time() - started_cpu)
        del self.sample_cpu_seconds[:-1000]

    def sample_forever(self, stop: threading.Event) -> None:
        """The sampler thread: one read every sample_interval_s until `stop` is set."""
        assert self.policy.windows is not None
        interval = self.policy.windows.sample_interval_s
        while True:
            started = time.monotonic()
            self.sample()
            if stop.wait(max(0.0, interval - (time.monotonic() - started))):
                return

    def wait_for_tick(self, timeout_s: float) -> bool:
        """Sleep until the next tick is due, or a burst wakes the loop earlier (True)."""
        woken = self.wake.wait(timeout_s)
        self.wake.clear()
        return woken

    def _observe(self, current: int) -> tuple[Observation, str | None]:
        if self.windows is not None:
            with self._lock:
                view = self.windows.view(self.clock())
                error = self._sample_error
            if view.latest is None:
                return Observation(None, current, 0, {}), error
            self.last_sample = latest = view.latest
            return Observation(
                latest.at, current, latest.ready, latest.metrics, view.demand, view.stable, view.panic
            ), error
        try:
            self.last_sample = self.source.read()
            error = None
        except Exception as exc:  # any failure to read is "no fresh metrics", never a crash
            error = f"metrics unreadable: {type(exc).__name__}: {exc}"
        sample = self.last_sample
        if sample is None:
            return Observation(None, current, 0, {}), error
        # A failed read reuses the last sample with its old timestamp: decide() holds once it is too old.
        return Observation(sample.at, current, sample.ready, sample.metrics, sample.demand), error

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
        # A VM hand-over (autoscaler/warm_pool.py) raises the replicas for a while: its extra replicas are not
        # the loop's to remove, so the loop decides on the count without them and holds its own changes until
        # the hand-over ends. Asked before and after reading the count: one that starts in between holds too.
        fleet = self.fleet[0] if self.fleet else None
        handing_over = bool(fleet.progress()) if fleet else False
        current = self.replicas.get()  # Swarm unreachable: the tick fails and the loop logs it
        extra = fleet.extra_replicas() if fleet else 0
        handing_over = handing_over or (bool(fleet.progress()) if fleet else False)
        base = max(0, current - extra)
        observation, read_error = self._observe(base)
        held = self.schedules.at(datetime.fromtimestamp(self.wall_clock(), UTC))
        minimum = held.minimum if held.minimum.replicas > self.policy.min_replicas else None
        decision = decide(observation, self.history, self.policy, now, minimum)
        if handing_over:
            held_back = (
                f"a VM hand-over is in progress ({extra} extra replicas): replica changes wait for its end"
            )
            decision = replace(decision, count=base, direction="none", reasons=(*decision.reasons, held_back))
        acted, act_error = self._act(decision, base)
        if decision.direction != "none" and not acted and not self.policy.dry_run:
            decision = replace(decision, direction="none")  # nothing changed: no cooldown starts
        self.history = record(self.history, observation, decision, now, self.policy)
        self._desired = decision.count if acted or decision.count == base else base
        trend = self._trend(observation, now) if self.fleet and self.predictive.mode != "off" else None
        vms, vm_steps, fleet_error, vm_stuck = (
            self._plan_fleet(decision.count, now, trend, held.min_workers)
            if self.fleet
            else ({}, (), None, ())
        )
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
            stuck=decision.stuck + vm_stuck,
            forecast=trend[1] if trend else None,
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

    def _trend(self, observation: Observation, now: float) -> tuple[float | None, str]:
        """The demand the trend predicts once a VM powered on now would be ready, and why."""
        wanted = wanted_replicas(observation, self.policy)
        if wanted is not None:
            self._demand.append((now, wanted))
        while self._demand and self._demand[0][0] < now - self.predictive.window_s:
            self._demand.popleft()
        horizon = power_on_horizon(self.power_on_seconds, self.predictive)
        predicted = forecast(list(self._demand), horizon, self.predictive)
        return predicted.replicas, predicted.why

    def _measure_power_ons(self, states: list[VmState], now: float) -> None:
        for vm in states:
            if vm.name in self._powering_on and vm.powered and vm.ready:
                self.power_on_seconds.append(now - self._powering_on.pop(vm.name))

    def _plan_fleet(
        self,
        desired: int,
        now: float,
        trend: tuple[float | None, str] | None = None,
        scheduled_workers: int = 0,
    ) -> tuple[dict[str, str], tuple[str, ...], str | None, tuple[str, ...]]:
        """Power and drain worker VMs for the desired replicas. A VM whose hypervisor cannot be read is left
        alone (and blocks scale-in); one powered on that never becomes ready stops counting as on its way.
        `scheduled_workers`: an open schedule's min_workers, raising the planner's minimum (up to the pool)."""
        assert self.fleet is not None
        fleet, fleet_policy = self.fleet
        if scheduled_workers > fleet_policy.min_workers:
            workers = max(fleet_policy.min_workers, min(scheduled_workers, len(fleet_policy.vms)))
            fleet_policy = replace(fleet_policy, min_workers=workers)
        new_errors = fleet.take_errors()
        notes = tuple(fleet.take_notes())
        progress = fleet.progress()
        try:
            states = fleet.observe()
        except Exception as exc:  # Swarm's node list itself: nothing is known about any VM
            return {}, (), f"VMs unreadable, holding the fleet: {type(exc).__name__}: {exc}", ()
        deadline = self.policy.deadlines.vm_boot_s
        booting = {vm.name for vm in states if not vm.error and vm.powered and not vm.ready}
        self._booting_since = {name: self._booting_since.get(name, now) for name in booting}
        stuck_vms = {
            name: now - since for name, since in self._booting_since.items() if now - since >= deadline
        }
        stuck = tuple(
            f"{name} powered on {waited:.0f} s ago and not ready (deadline {deadline:g} s): not counted as booting"
            for name, waited in stuck_vms.items()
        ) + tuple(f"{vm.name} unreadable: {vm.error}" for vm in states if vm.error)
        labels = {
            vm.name: f"handing_over ({progress[vm.name]})"
            if vm.name in progress
            else _label(vm, vm.name in stuck_vms)
            for vm in states
        }
        self._measure_power_ons(states, now)
        hint = (trend[0], trend[1]) if trend is not None and trend[0] is not None else None
        acting = hint if self.predictive.mode == "on" else None
        plan = plan_fleet(
            desired, states, fleet_policy, self._surplus_since, now, frozenset(stuck_vms), acting
        )
        taken = []
        if self.predictive.mode == "forecast_only":
            # What the trend would have done, beside the plan that acts: recorded once per change of mind.
            shadow = plan_fleet(
                desired, states, fleet_policy, self._surplus_since, now, frozenset(stuck_vms), hint
            )
            would = next((f"{s.verb} {s.vm}: {s.reason}" for s in shadow.steps if s.predictive), None)
            if would is not None and would.split(":")[0] != (self._forecast_only_last or "").split(":")[0]:
                taken.append(f"forecast only, not taken: {would}")
            self._forecast_only_last = would
        self._surplus_since = plan.surplus_since
        for step in plan.steps:
            if self.policy.dry_run or fleet.busy(step.vm):
                continue
            if fleet.apply(step):
                taken.append(f"{step.verb} {step.vm}: {step.reason}")
                if step.verb == "power_on":
                    self._powering_on[step.vm] = now
        return labels, notes + tuple(taken), "; ".join(new_errors) or None, stuck

    def power_on_records(self) -> list[PowerOnRecord]:
        """Every power-on's phases, oldest first (stacks with VMs; empty otherwise)."""
        return self.fleet[0].power_on_records() if self.fleet else []

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


def _label(vm: VmState, stuck: bool) -> str:
    if vm.error:
        return "unreadable"
    if not vm.powered:
        return "off"
    if not vm.ready:
        return "stuck booting" if stuck else "booting"
    return f"active ({vm.tasks} tasks)" if vm.active else f"drained ({vm.tasks} tasks)"


def _log_line(event: Event, dry_run: bool) -> dict[str, Any]:
    line = asdict(event)
    line.pop("servers")
    line["dry_run"] = dry_run
    return line
