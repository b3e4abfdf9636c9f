"""The reconcile loop: observe -> decide -> act -> record, one tick at a time.

Stateless across restarts by design: the replica count is read from Swarm at every tick, and the history
starts empty, so a restarted autoscaler holds (stabilization and rule durations start over) and never jumps.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from autoscaler.decide import Decision, History, Observation, decide, record
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


class Controller:
    def __init__(
        self,
        policy: Policy,
        source: MetricSource,
        replicas: Replicas,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        keep_events: int = 5000,
    ) -> None:
        self.policy = policy
        self.source = source
        self.replicas = replicas
        self.clock = clock
        self.wall_clock = wall_clock
        self.history = History()
        self.events: deque[Event] = deque(maxlen=keep_events)
        self.last_sample: BackendSample | None = None
        # Wall and CPU seconds of the last ticks: the loop's own overhead, for /metrics and the benchmarks.
        self.tick_seconds: list[float] = []
        self.tick_cpu_seconds: list[float] = []
        self._seq = 0

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
            error=act_error or read_error,
            servers=dict(self.last_sample.servers) if self.last_sample else {},
        )
        self.events.append(event)
        self.tick_seconds.append(time.perf_counter() - started)
        self.tick_cpu_seconds.append(time.thread_time() - started_cpu)
        del self.tick_seconds[:-1000], self.tick_cpu_seconds[:-1000]
        if decision.count != current or event.error:
            log.info(json.dumps(_log_line(event, self.policy.dry_run)))
        return event

    def events_since(self, seq: int) -> list[Event]:
        return [event for event in self.events if event.seq > seq]


def _log_line(event: Event, dry_run: bool) -> dict[str, Any]:
    line = asdict(event)
    line.pop("servers")
    line["dry_run"] = dry_run
    return line
