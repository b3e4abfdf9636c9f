"""decide() with a scheduled minimum (autoscaler/schedule.py's Minimum): a table of single decisions, then
properties over generated policies: the bounds always hold, and a minimum that ends steps down by the
scale_down rules (stabilization window, step, cooldown) instead of dropping at once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide import Decision, History, Minimum, Observation, decide, record
from autoscaler.policy import Policy, load_policy
from tests.autoscaler.test_decide_properties import histories, observations, policies, step_limit

NOW = 10_000.0
HOLDS = "schedule 'office' holds the minimum at 4 until 2026-12-07 18:00 CET (Europe/Berlin)"
OFFICE = Minimum(4, HOLDS)


def make_policy(**overrides: Any) -> Policy:
    raw: dict[str, Any] = {
        "replicas": {"min": 1, "max": 10},
        "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 10}],
    }
    raw.update(overrides)
    return load_policy(raw)


DEFAULT = make_policy()


def obs(
    current: int, sessions: float | None = 0.0, age: float | None = 0.0, ready: int | None = None
) -> Observation:
    metrics = {} if sessions is None else {"sessions_per_replica": sessions}
    return Observation(
        None if age is None else NOW - age, current, current if ready is None else ready, metrics
    )


def row(
    id: str,
    observation: Observation,
    minimum: Minimum | None,
    expected: tuple[Any, ...],
    policy: Policy = DEFAULT,
) -> Any:
    return pytest.param(policy, observation, minimum, expected, id=id)


# Rows: id, observation, the minimum passed, (count, direction, reasons, recommendation).
# fmt: off
DECISIONS = [
    row("a schedule raising the minimum scales out with no load", obs(1), OFFICE,
        (4, "up", ("rule 'sessions': 0 vs target 10 asks for 0", HOLDS), 4)),
    row("a scheduled minimum holds when nothing can be measured", obs(1, age=None), OFFICE,
        (4, "up", ("held: no metrics", HOLDS), 1)),
    row("a scheduled minimum holds while no replica is ready", obs(2, ready=0), OFFICE,
        (4, "up", ("held: no replica is ready", HOLDS), 2)),
    row("a scheduled minimum scales a tier at zero out", obs(0, sessions=None), OFFICE,
        (4, "up", ("rule 'sessions': sessions_per_replica missing: holding", HOLDS), 4),
        make_policy(replicas={"min": 0, "max": 10})),
    row("load above the scheduled minimum still decides", obs(4, sessions=30), OFFICE,
        (8, "up", ("rule 'sessions': 30 vs target 10 asks for 12", "limited by max step up (4)"), 12)),
    row("a count at the scheduled minimum is kept", obs(4), OFFICE,
        (4, "none", ("rule 'sessions': 0 vs target 10 asks for 0", HOLDS), 4)),
    row("a scheduled minimum above max is held at max", obs(9), Minimum(20, "schedule 'x' holds the minimum at 20 until then"),
        (10, "up", ("rule 'sessions': 0 vs target 10 asks for 0", "schedule 'x' holds the minimum at 20 until then"), 10)),
    row("a scheduled minimum below the policy's never lowers it", obs(1), Minimum(0),
        (2, "up", ("rule 'sessions': 0 vs target 10 asks for 0", "clamped to min (2)"), 0),
        make_policy(replicas={"min": 2, "max": 10})),
    row("no scheduled minimum: the policy's", obs(3), None,
        (2, "down", ("rule 'sessions': 0 vs target 10 asks for 0", "limited by max step down (1)"), 0),
        make_policy(replicas={"min": 2, "max": 10}, scale_down={"stabilization_seconds": 0, "cooldown_seconds": 0})),
]
# fmt: on


@pytest.mark.parametrize(("policy", "observation", "minimum", "expected"), DECISIONS)
def test_decide_with_a_scheduled_minimum(
    policy: Policy, observation: Observation, minimum: Minimum | None, expected: tuple[Any, ...]
) -> None:
    # A scale-up just now puts the scale-down cooldown in force where a row needs it.
    history = History(last_scale_up_at=NOW) if "cooldown" in str(expected) else History()
    decision = decide(observation, history, policy, NOW, minimum)
    assert (decision.count, decision.direction, decision.reasons, decision.recommendation) == expected


@settings(max_examples=400)
@given(policy=policies(), observation=observations(), history=histories(), floor=st.integers(0, 30))
def test_count_stays_between_the_effective_minimum_and_max(
    policy: Policy, observation: Observation, history: History, floor: int
) -> None:
    decision = decide(observation, history, policy, NOW, Minimum(floor, "a schedule"))
    low = min(max(policy.min_replicas, floor), policy.max_replicas)
    assert low <= decision.count <= policy.max_replicas, decision


def run(policy: Policy, minimum: Minimum, held_ticks: int, ticks: int) -> list[tuple[float, Decision]]:
    """The loop with instant replicas and no load: the minimum holds for `held_ticks`, then ends."""
    now, count, history, trace = NOW, policy.min_replicas, History(), []
    for tick in range(ticks):
        observation = Observation(now, count, count, {"sessions_per_replica": 0.0, "queued_requests": 0.0})
        decision = decide(observation, history, policy, now, minimum if tick < held_ticks else None)
        trace.append((now, decision))
        history = record(history, observation, decision, now, policy)
        count = decision.count
        now += policy.interval_s
    return trace


@settings(max_examples=150, deadline=None)
@given(policy=policies(), floor=st.integers(1, 20), held=st.integers(1, 40))
def test_when_a_schedule_ends_the_tier_steps_down_by_the_scale_down_rules(
    policy: Policy, floor: int, held: int
) -> None:
    trace = run(policy, Minimum(floor, "a schedule"), held, held + 150)
    low = min(max(policy.min_replicas, floor), policy.max_replicas)
    last_held = trace[held - 1][0]
    assert trace[held - 1][1].count >= low  # the schedule's minimum was reached while it held
    previous = trace[held - 1][1].count
    for now, decision in trace[held:]:
        if now < last_held + policy.scale_down.stabilization_s:
            assert decision.count == previous, "scale-in inside the stabilization window after the schedule"
        if decision.count < previous:
            limit = step_limit(policy, previous, up=False)
            assert limit is None or previous - decision.count <= limit, (previous, decision)
        previous = decision.count
    assert previous == policy.min_replicas  # and it gets back to the policy's minimum


def test_a_schedule_ending_keeps_its_minimum_for_the_window_then_steps_down_one_by_one() -> None:
    policy = make_policy(scale_down={"stabilization_seconds": 60, "max_step": 1, "cooldown_seconds": 15})
    trace = run(policy, OFFICE, held_ticks=10, ticks=70)
    changes = [(now - trace[9][0], d.count) for now, d in trace[10:] if d.direction != "none"]
    # The last held recommendation was at t=0: 60 s later the window lets go, then one replica per 16 s
    # (a 15 s cooldown on a 2 s tick).
    assert changes == [(60.0, 3), (76.0, 2), (92.0, 1)]
