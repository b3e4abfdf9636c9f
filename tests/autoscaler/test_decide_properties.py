"""Properties of decide() over generated policies, observations and histories (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide import History, Observation, decide, record
from autoscaler.policy import Policy, load_policy

NOW = 10_000.0


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    low = draw(st.integers(0, 5))

    def direction() -> dict[str, Any]:
        return {
            "stabilization_seconds": draw(st.sampled_from([0, 5, 30, 60])),
            "cooldown_seconds": draw(st.sampled_from([0, 2, 10])),
            "max_step": draw(st.one_of(st.none(), st.integers(1, 5))),
            "max_step_percent": draw(st.one_of(st.none(), st.sampled_from([10, 50, 100, 200]))),
        }

    return load_policy(
        {
            "replicas": {"min": low, "max": draw(st.integers(max(low, 1), 20))},
            "tolerance": draw(st.sampled_from([0.0, 0.05, 0.1, 0.3])),
            "scale_up": direction(),
            "scale_down": direction(),
            "targets": [
                {"name": "sessions", "metric": "sessions_per_replica", "target": draw(st.integers(1, 50))}
            ],
            "steps": [{"name": "queue", "metric": "queued_requests", "above": 0, "for_seconds": 4, "add": 1}],
        }
    )


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    """Any observation: counts inside and outside a policy's bounds, metrics fresh, stale, partial or absent."""
    count = draw(st.integers(0, 25))
    metrics = draw(
        st.dictionaries(
            st.sampled_from(["sessions_per_replica", "queued_requests"]), st.floats(0, 1000, allow_nan=False)
        )
    )
    age = draw(st.one_of(st.none(), st.floats(0, 20)))
    return Observation(None if age is None else NOW - age, count, draw(st.integers(0, count)), metrics)


@st.composite
def observations_to_act_on(draw: st.DrawFn, policy: Policy) -> Observation:
    """An observation decide() scales on: a count inside the policy's bounds, fresh metrics, a replica ready.
    Drawn from `observations()` alone, most examples are out of bounds or held and never take a step."""
    count = draw(st.integers(max(policy.min_replicas, 1), policy.max_replicas))
    metrics = {"sessions_per_replica": draw(st.floats(0, 1000, allow_nan=False))}
    if draw(st.booleans()):
        metrics["queued_requests"] = draw(st.floats(0, 1000, allow_nan=False))
    age = draw(st.floats(0, policy.metrics_max_age_s))
    return Observation(NOW - age, count, draw(st.integers(1, count)), metrics)


@st.composite
def histories(draw: st.DrawFn) -> History:
    recommendations = draw(st.lists(st.tuples(st.floats(NOW - 100, NOW), st.integers(0, 30)), max_size=10))
    last_up = draw(st.one_of(st.none(), st.floats(NOW - 100, NOW)))
    last_down = draw(st.one_of(st.none(), st.floats(NOW - 100, NOW)))
    return History((), tuple(sorted(recommendations)), last_up, last_down)


def step_limit(policy: Policy, current: int, up: bool) -> int | None:
    """The limit on one step as the policy documents it (each configured limit permits a step, the most
    permissive wins, a percent limit permits at least one replica), in exact integer arithmetic: the percents
    drawn are whole numbers, so rounding up needs no float as decide() uses."""
    direction = policy.scale_up if up else policy.scale_down
    limits = [direction.max_step] if direction.max_step is not None else []
    if direction.max_step_percent is not None:
        limits.append(max(1, -(-current * int(direction.max_step_percent) // 100)))
    return max(limits) if limits else None


@settings(max_examples=400)
@given(policy=policies(), observation=observations(), history=histories())
def test_count_always_stays_within_min_and_max(
    policy: Policy, observation: Observation, history: History
) -> None:
    decision = decide(observation, history, policy, NOW)
    assert policy.min_replicas <= decision.count <= policy.max_replicas, decision


@settings(max_examples=400)
@given(data=st.data(), policy=policies(), history=histories())
def test_one_step_never_exceeds_the_max_step(data: st.DataObject, policy: Policy, history: History) -> None:
    observation = data.draw(st.one_of(observations(), observations_to_act_on(policy)))
    current = observation.current
    if not policy.min_replicas <= current <= policy.max_replicas:
        return  # bringing an out-of-bounds count back within bounds is not a step
    decision = decide(observation, history, policy, NOW)
    limit = step_limit(policy, current, up=decision.count > current)
    if limit is not None:
        assert abs(decision.count - current) <= limit, decision


def simulate(policy: Policy, load: list[float], start: int) -> list[tuple[int, History, Any]]:
    """The reconcile loop with instant replicas: `load` is total sessions per tick, spread over the replicas."""
    now, count, history, trace = NOW, start, History(), []
    for sessions in load:
        observation = Observation(
            now, count, count, {"sessions_per_replica": sessions / max(count, 1), "queued_requests": 0}
        )
        decision = decide(observation, history, policy, now)
        trace.append((count, history, decision))
        history = record(history, observation, decision, now, policy)
        count = decision.count
        now += policy.interval_s
    return trace


@settings(max_examples=150, deadline=None)
@given(policy=policies(), total=st.floats(0, 400), start=st.integers(0, 20))
def test_constant_load_converges_without_oscillating(policy: Policy, total: float, start: int) -> None:
    trace = simulate(policy, [total] * 200, start)
    tail = [decision.count for _, _, decision in trace[-30:]]
    assert len(set(tail)) == 1, f"still moving after 170 ticks: {tail}"


@settings(max_examples=150, deadline=None)
@given(policy=policies(), load=st.lists(st.floats(0, 400), min_size=5, max_size=80), start=st.integers(0, 20))
def test_no_scale_in_below_a_recommendation_inside_the_window(
    policy: Policy, load: list[float], start: int
) -> None:
    now = NOW
    for current, history, decision in simulate(policy, load, start):
        window = [r for at, r in history.recommendations if at > now - policy.scale_down.stabilization_s]
        if decision.direction == "down":
            # Recommendations above max are clamped like the count is.
            assert all(decision.count >= min(r, policy.max_replicas) for r in window), (
                current,
                decision,
                window,
            )
        now += policy.interval_s
