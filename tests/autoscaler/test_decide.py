"""decide(): every rule kind, tolerance, stabilization, step limits, cooldowns, clamps, stale or missing
metrics and unready replicas, as one table whose ids read as sentences. Each row is one call of decide() and
states the exact count, direction and reasons it must return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from autoscaler.decide import Decision, Direction, History, Observation, decide, record
from autoscaler.policy import Policy, load_policy

NOW = 1000.0
SESSIONS = {"name": "sessions", "metric": "sessions_per_replica", "target": 10}
P95_HIGH = {"name": "p95-high", "metric": "response_time_ms", "above": 300, "for_seconds": 15, "add": 2}
QUEUE = {"name": "queue", "metric": "queued_requests", "above": 0, "for_seconds": 10, "add": 1}
IDLE = {
    "name": "idle",
    "metric": "requests_per_second_per_replica",
    "below": 5,
    "for_seconds": 120,
    "remove": 1,
}


def make_policy(**overrides: Any) -> Policy:
    raw: dict[str, Any] = {
        "replicas": {"min": 2, "max": 10},
        "targets": [SESSIONS],
        "scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0},
    }
    raw.update(overrides)
    return load_policy(raw)


DEFAULT = make_policy()
STEPS_ONLY = make_policy(targets=[], steps=[P95_HIGH, QUEUE, IDLE])
WITH_P95_HIGH = make_policy(steps=[P95_HIGH])
SCALE_DOWN_WINDOW_60 = make_policy(scale_down={"stabilization_seconds": 60, "cooldown_seconds": 0})
UP_TO_40 = {"min": 2, "max": 40}
FROM_ZERO = make_policy(replicas={"min": 0, "max": 4})
ASYMMETRIC = make_policy(
    scale_up={"tolerance": 0.05}, scale_down={"tolerance": 0.3, "stabilization_seconds": 0}
)
NO_HISTORY = History()


def obs(
    current: int, ready: int | None = None, age: float | None = 0.0, demand: float = 0.0, **metrics: float
) -> Observation:
    return Observation(
        at=None if age is None else NOW - age,
        current=current,
        ready=current if ready is None else ready,
        metrics=metrics,
        demand=demand,
    )


def seen(*samples: tuple[float, Mapping[str, float]], current: int = 4) -> History:
    """A history of past observations: (seconds ago, metrics)."""
    return History(observations=tuple(Observation(NOW - ago, current, current, m) for ago, m in samples))


def recommended(ago: float, count: int) -> History:
    """A history holding one recommendation of `count`, made `ago` seconds ago."""
    return History(recommendations=((NOW - ago, count),))


@dataclass(frozen=True)
class Case:
    observation: Observation
    count: int
    direction: Direction
    reasons: tuple[str, ...]
    policy: Policy
    history: History


def case(
    id: str,
    observation: Observation,
    count: int,
    direction: Direction,
    *reasons: str,
    policy: Policy = DEFAULT,
    history: History = NO_HISTORY,
) -> Any:
    return pytest.param(Case(observation, count, direction, reasons, policy, history), id=id)


# Rows: id, the observation, then what decide() must return: count, direction and every reason in order.
# fmt: off
CASES = [
    # One target rule: proportional to the ready replicas, within tolerance, limited and clamped.
    case("within tolerance: hold", obs(4, sessions_per_replica=10.5),
         4, "none", "rule 'sessions': 10.5 is within tolerance of 10"),
    case("exactly at the tolerance edge: hold", obs(4, sessions_per_replica=11),
         4, "none", "rule 'sessions': 11 is within tolerance of 10"),
    case("double the target: double the replicas", obs(4, sessions_per_replica=20),
         8, "up", "rule 'sessions': 20 vs target 10 asks for 8"),
    case("scale up limited by max step up", obs(2, sessions_per_replica=100),
         6, "up", "rule 'sessions': 100 vs target 10 asks for 20", "limited by max step up (4)"),
    case("scale up clamped to max", obs(8, sessions_per_replica=20),
         10, "up", "rule 'sessions': 20 vs target 10 asks for 16", "clamped to max (10)"),
    case("scale down limited by max step down", obs(6, sessions_per_replica=2),
         5, "down", "rule 'sessions': 2 vs target 10 asks for 2", "limited by max step down (1)"),
    case("scale down clamped to min", obs(3, sessions_per_replica=1),
         2, "down", "rule 'sessions': 1 vs target 10 asks for 1", "clamped to min (2)",
         policy=make_policy(scale_down={"stabilization_seconds": 0, "cooldown_seconds": 0, "max_step": None})),
    case("response time target scales proportionally", obs(3, response_time_ms=600),
         6, "up", "rule 'latency': 600 ms vs target 300 ms asks for 6",
         policy=make_policy(targets=[{"name": "latency", "metric": "response_time_ms", "target": 300}])),
    case("requests per second target", obs(2, requests_per_second_per_replica=150),
         3, "up", "rule 'rps': 150 vs target 100 asks for 3",
         policy=make_policy(targets=[{"name": "rps", "metric": "requests_per_second_per_replica", "target": 100}])),
    case("percent step limit", obs(8, sessions_per_replica=40),
         12, "up", "rule 'sessions': 40 vs target 10 asks for 32", "limited by max step up (4)",
         policy=make_policy(replicas=UP_TO_40, scale_up={"max_step": None, "max_step_percent": 50})),
    case("a percent step limit rounds up", obs(3, sessions_per_replica=40),
         5, "up", "rule 'sessions': 40 vs target 10 asks for 12", "limited by max step up (2)",
         policy=make_policy(replicas=UP_TO_40, scale_up={"max_step": None, "max_step_percent": 50})),
    case("the most permissive step limit applies", obs(6, sessions_per_replica=40),
         12, "up", "rule 'sessions': 40 vs target 10 asks for 24", "limited by max step up (6)",
         policy=make_policy(replicas=UP_TO_40, scale_up={"max_step": 2, "max_step_percent": 100})),
    case("below min with nothing to do: raised to min", obs(1, sessions_per_replica=10),
         2, "up", "rule 'sessions': 10 is within tolerance of 10", "clamped to min (2)"),

    # What cannot be measured, or is not capacity yet, never shrinks the tier.
    case("no metrics: hold", obs(4, age=None),
         4, "none", "held: no metrics"),
    case("stale metrics: hold and say how stale", obs(4, age=12, sessions_per_replica=50),
         4, "none", "held: metrics stale for 12 s"),
    case("stale metrics still bring an out-of-bounds count to max", obs(12, age=None),
         10, "down", "held: no metrics", "clamped to max (10)"),
    case("no replica ready: hold", obs(4, ready=0, sessions_per_replica=50),
         4, "none", "held: no replica is ready"),
    case("missing metric of a target rule: hold", obs(4, requests_per_second_per_replica=3),
         4, "none", "rule 'sessions': sessions_per_replica missing: holding"),
    case("missing metric of another rule blocks a scale-in", obs(5, requests_per_second_per_replica=1),
         5, "none", "rule 'idle' fired: 1 < 5 for 120 s",
         "held: queued_requests, response_time_ms missing, never scale in on missing data",
         policy=STEPS_ONLY, history=seen((121, {"requests_per_second_per_replica": 1}), current=5)),
    case("starting replicas are not counted as capacity", obs(6, ready=2, sessions_per_replica=30),
         6, "none", "rule 'sessions': 30 vs target 10 asks for 6"),
    case("no scale-in while replicas start", obs(6, ready=4, sessions_per_replica=1),
         6, "none", "rule 'sessions': 1 vs target 10 asks for 1",
         "held: 2 replica(s) not ready, no scale-in while they start"),
    case("a replica not ready past the deadline no longer holds scale-in back", obs(6, ready=4, sessions_per_replica=1),
         5, "down", "rule 'sessions': 1 vs target 10 asks for 1",
         "2 replica(s) not ready for 121 s, past the 120 s deadline: scale-in no longer held back",
         "limited by max step down (1)", history=History(not_ready_since=NOW - 121)),
    case("a replica not ready within the deadline still holds scale-in back", obs(6, ready=4, sessions_per_replica=1),
         6, "none", "rule 'sessions': 1 vs target 10 asks for 1",
         "held: 2 replica(s) not ready, no scale-in while they start", history=History(not_ready_since=NOW - 119)),

    # Step rules fire only when their condition held in every observation of their whole duration.
    case("step rule fires after its condition held for its duration",
         obs(4, response_time_ms=412, queued_requests=0, requests_per_second_per_replica=50),
         6, "up", "rule 'p95-high' fired: 412 ms > 300 ms for 15 s",
         policy=STEPS_ONLY, history=seen(*((ago, {"response_time_ms": 350}) for ago in (16, 10, 5)))),
    case("step rule does not fire before its duration is covered",
         obs(4, response_time_ms=412, queued_requests=0, requests_per_second_per_replica=50),
         4, "none", "no rule fired: holding",
         policy=STEPS_ONLY, history=seen(*((ago, {"response_time_ms": 350}) for ago in (10, 5)))),
    case("step rule does not fire when one sample broke the condition",
         obs(4, response_time_ms=412, queued_requests=0, requests_per_second_per_replica=50),
         4, "none", "no rule fired: holding",
         policy=STEPS_ONLY, history=seen((16, {"response_time_ms": 350}), (8, {"response_time_ms": 250}))),
    case("queue step rule adds one",
         obs(4, response_time_ms=100, queued_requests=3, requests_per_second_per_replica=50),
         5, "up", "rule 'queue' fired: 3 > 0 for 10 s",
         policy=STEPS_ONLY, history=seen((11, {"queued_requests": 1}), (5, {"queued_requests": 2}))),
    case("idle step rule removes one",
         obs(5, response_time_ms=20, queued_requests=0, requests_per_second_per_replica=2),
         4, "down", "rule 'idle' fired: 2 < 5 for 120 s",
         policy=STEPS_ONLY, history=seen((121, {"requests_per_second_per_replica": 1}), current=5)),
    case("scale from zero on a queue",
         obs(0, response_time_ms=0, queued_requests=4, requests_per_second_per_replica=0),
         1, "up", "rule 'queue' fired: 4 > 0 for 10 s",
         policy=make_policy(replicas={"min": 0, "max": 4}, targets=[], steps=[P95_HIGH, QUEUE, IDLE]),
         history=seen((11, {"queued_requests": 2}), current=0)),
    case("from zero a percent step limit still allows one replica",
         obs(0, queued_requests=4),
         1, "up", "rule 'queue' fired: 4 > 0 for 10 s", "limited by max step up (1)",
         policy=make_policy(replicas={"min": 0, "max": 4}, targets=[], steps=[{**QUEUE, "add": 2}],
                            scale_up={"max_step": None, "max_step_percent": 50}),
         history=seen((11, {"queued_requests": 2}), current=0)),

    # Scale from zero: at zero ready replicas the per-replica metrics do not exist; the demand asks for one.
    case("a target rule at zero replicas with requests waiting asks for one", obs(0, demand=3, queued_requests=3),
         1, "up", "rule 'sessions': 3 requests waiting with no replica ready asks for 1", policy=FROM_ZERO),
    case("a target rule at zero replicas with no demand holds at zero", obs(0, queued_requests=0),
         0, "none", "rule 'sessions': sessions_per_replica missing: holding", policy=FROM_ZERO),
    case("scale from zero is not held by the scale-up stabilization window", obs(0, demand=1),
         1, "up", "rule 'sessions': 1 requests waiting with no replica ready asks for 1",
         "scale from zero: not held by stabilization or cooldown",
         policy=make_policy(replicas={"min": 0, "max": 4}, scale_up={"stabilization_seconds": 30}),
         history=recommended(10, 0)),
    case("scale from zero is not held by the scale-up cooldown", obs(0, demand=2),
         1, "up", "rule 'sessions': 2 requests waiting with no replica ready asks for 1",
         "scale from zero: not held by stabilization or cooldown",
         policy=make_policy(replicas={"min": 0, "max": 4}, scale_up={"cooldown_seconds": 60}),
         history=History(last_scale_up_at=NOW - 5)),
    case("a burst between two idle reads keeps the last replica", obs(1, demand=2, sessions_per_replica=0),
         1, "none", "rule 'sessions': 0 vs target 10 asks for 0, but 2 requests arrived: 1", policy=FROM_ZERO),
    case("an idle tier goes to zero", obs(1, sessions_per_replica=0),
         0, "down", "rule 'sessions': 0 vs target 10 asks for 0", policy=FROM_ZERO),

    # Tolerance per direction: here +5 % already scales out, -30 % is still within tolerance.
    case("above the scale-out tolerance: scale out", obs(10, sessions_per_replica=10.6),
         11, "up", "rule 'sessions': 10.6 vs target 10 asks for 11", policy=make_policy(
             replicas={"min": 2, "max": 20}, scale_up={"tolerance": 0.05})),
    case("within the scale-in tolerance: hold", obs(10, sessions_per_replica=7.5),
         10, "none", "rule 'sessions': 7.5 is within tolerance of 10", policy=ASYMMETRIC),
    case("beyond the scale-in tolerance: scale in", obs(10, sessions_per_replica=6.5),
         9, "down", "rule 'sessions': 6.5 vs target 10 asks for 7", "limited by max step down (1)", policy=ASYMMETRIC),

    # Several rules: every rule votes, the largest count wins.
    case("several rules: the largest count wins", obs(4, sessions_per_replica=20, response_time_ms=400),
         8, "up", "rule 'sessions': 20 vs target 10 asks for 8", "rule 'p95-high' fired: 400 ms > 300 ms for 15 s",
         policy=WITH_P95_HIGH, history=seen((16, {"response_time_ms": 400}))),
    case("a firing add rule overrides a target rule's scale-in", obs(4, sessions_per_replica=2, response_time_ms=400),
         6, "up", "rule 'sessions': 2 vs target 10 asks for 1", "rule 'p95-high' fired: 400 ms > 300 ms for 15 s",
         policy=WITH_P95_HIGH, history=seen((16, {"response_time_ms": 400}))),

    # Stabilization windows and cooldowns look back on earlier recommendations and scaling actions.
    case("scale-in held by the stabilization window", obs(6, sessions_per_replica=5),
         6, "none", "rule 'sessions': 5 vs target 10 asks for 3",
         "scale-down held by stabilization: 6 recommended within the last 60 s",
         policy=SCALE_DOWN_WINDOW_60, history=recommended(30, 6)),
    case("scale-in only down to the window's highest recommendation", obs(6, sessions_per_replica=5),
         5, "down", "rule 'sessions': 5 vs target 10 asks for 3",
         "scale-down held by stabilization: 5 recommended within the last 60 s",
         policy=SCALE_DOWN_WINDOW_60, history=recommended(30, 5)),
    case("scale-in allowed once the window has passed", obs(6, sessions_per_replica=5),
         5, "down", "rule 'sessions': 5 vs target 10 asks for 3", "limited by max step down (1)",
         policy=SCALE_DOWN_WINDOW_60, history=recommended(61, 6)),
    case("scale-up held by its stabilization window", obs(4, sessions_per_replica=20),
         4, "none", "rule 'sessions': 20 vs target 10 asks for 8",
         "scale-up held by stabilization: 4 recommended within the last 30 s",
         policy=make_policy(scale_up={"stabilization_seconds": 30}), history=recommended(10, 4)),
    case("scale-up in cooldown", obs(4, sessions_per_replica=20),
         4, "none", "rule 'sessions': 20 vs target 10 asks for 8", "scale-up in cooldown for 3.0 s more",
         policy=make_policy(scale_up={"cooldown_seconds": 5}), history=History(last_scale_up_at=NOW - 2)),
    case("scale-down in cooldown after a scale-up", obs(6, sessions_per_replica=2),
         6, "none", "rule 'sessions': 2 vs target 10 asks for 2", "scale-down in cooldown for 10.0 s more",
         policy=make_policy(scale_down={"stabilization_seconds": 0, "cooldown_seconds": 15}),
         history=History(last_scale_up_at=NOW - 5)),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
def test_decide(case: Case) -> None:
    decision = decide(case.observation, case.history, case.policy, NOW)
    returned = (decision.count, decision.direction, decision.reasons)
    assert returned == (case.count, case.direction, case.reasons)


def test_decide_records_the_recommendation_before_limits() -> None:
    decision = decide(obs(2, sessions_per_replica=100), History(), DEFAULT, NOW)
    assert decision == Decision(
        6,
        "up",
        ("rule 'sessions': 100 vs target 10 asks for 20", "limited by max step up (4)"),
        recommendation=20,
    )


def test_replicas_not_ready_past_the_deadline_are_reported_stuck() -> None:
    policy = make_policy(deadlines={"not_ready_seconds": 30})
    decision = decide(
        obs(6, ready=4, sessions_per_replica=10), History(not_ready_since=NOW - 31), policy, NOW
    )
    assert decision.stuck == (
        "2 of 6 replicas not ready for 31 s (deadline 30 s): stuck pending or crash-looping",
    )


def test_the_not_ready_clock_starts_at_the_first_short_observation_and_stops_when_all_are_ready() -> None:
    policy, decision = DEFAULT, Decision(6, "none", (), 6)
    history = record(History(), obs(6, ready=4, sessions_per_replica=10), decision, NOW, policy)
    history = record(history, obs(6, ready=5, sessions_per_replica=10), decision, NOW + 2, policy)
    assert history.not_ready_since == NOW
    assert record(history, obs(6, sessions_per_replica=10), decision, NOW + 4, policy).not_ready_since is None
