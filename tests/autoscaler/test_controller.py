"""The reconcile loop with its adapters replaced by recording fakes: what it writes, when it holds, what it
records. (The real adapters are exercised in tests/e2e/test_autoscaler_on_stack.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.controller import Controller
from autoscaler.haproxy_metrics import BackendSample
from autoscaler.policy import Policy, load_policy

POLICY = {
    "replicas": {"min": 2, "max": 10},
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 10}],
    "scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0},
}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSource:
    clock: Clock
    sessions_per_replica: float = 10.0
    ready: int = 2
    broken: bool = False

    def read(self) -> BackendSample:
        if self.broken:
            raise ConnectionRefusedError("haproxy is down")
        return BackendSample(
            self.clock(), self.ready, {"sessions_per_replica": self.sessions_per_replica}, {}
        )


@dataclass
class FakeReplicas:
    count: int = 2
    writes: list[int] = field(default_factory=list)
    refuse: bool = False

    def get(self) -> int:
        return self.count

    def set(self, count: int) -> None:
        if self.refuse:
            raise RuntimeError("update out of sequence")
        self.writes.append(count)
        self.count = count


def controller(
    policy: Policy | None = None, replicas: int = 2
) -> tuple[Controller, FakeSource, FakeReplicas, Clock]:
    clock = Clock()
    source, swarm = FakeSource(clock, ready=replicas), FakeReplicas(replicas)
    return (
        Controller(policy or load_policy(POLICY), source, swarm, clock=clock, wall_clock=clock),
        source,
        swarm,
        clock,
    )


def test_tick_writes_the_new_count_to_swarm_and_records_it() -> None:
    loop, source, swarm, _ = controller()
    source.sessions_per_replica = 20
    event = loop.tick()
    assert swarm.writes == [4]
    assert (event.current, event.desired, event.direction, event.acted) == (2, 4, "up", True)
    assert event.reasons == ("rule 'sessions': 20 vs target 10 asks for 4",)


def test_tick_in_dry_run_decides_but_never_writes() -> None:
    loop, source, swarm, _ = controller(load_policy({**POLICY, "dry_run": True}))
    source.sessions_per_replica = 20
    event = loop.tick()
    assert swarm.writes == []
    assert (event.desired, event.acted) == (4, False)


def test_tick_with_unreadable_metrics_holds_and_records_why() -> None:
    loop, source, swarm, _ = controller()
    source.broken = True
    event = loop.tick()
    assert swarm.writes == []
    assert event.reasons == ("held: no metrics",)
    assert event.error == "metrics unreadable: ConnectionRefusedError: haproxy is down"


def test_tick_after_metrics_went_away_holds_once_they_are_stale() -> None:
    loop, source, swarm, clock = controller()
    loop.tick()
    source.broken, source.sessions_per_replica = True, 50
    clock.now += 11
    event = loop.tick()
    assert swarm.writes == []
    assert event.reasons == ("held: metrics stale for 11 s",)


def test_failed_write_starts_no_cooldown() -> None:
    loop, source, swarm, _ = controller(load_policy({**POLICY, "scale_up": {"cooldown_seconds": 30}}))
    source.sessions_per_replica = 20
    swarm.refuse = True
    event = loop.tick()
    assert (event.acted, event.direction) == (False, "none")
    assert event.error is not None
    assert event.error.startswith("scaling to 4 failed: RuntimeError")
    swarm.refuse = False
    assert loop.tick().acted, "the next tick must retry at once, not wait out a cooldown"


def test_restarted_controller_resumes_from_swarm_without_a_jump() -> None:
    loop, source, swarm, _ = controller(replicas=6)
    source.sessions_per_replica = 10
    event = loop.tick()
    assert (event.current, event.desired) == (6, 6)
    assert swarm.writes == []


def test_events_since_returns_only_newer_events() -> None:
    loop, *_ = controller()
    for _ in range(3):
        loop.tick()
    assert [e.seq for e in loop.events_since(1)] == [2, 3]
