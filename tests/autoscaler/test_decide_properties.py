"""Properties of decide() over generated policies, observations and histories (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide import Decision, History, Observation, decide, panic_state, record
from autoscaler.policy import Policy, WindowPolicy, load_policy

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


# Realistic observations, as autoscaler/haproxy_metrics.py makes them: replicas are UP only some ticks after
# Swarm was asked for them (fewer ready than running), the per-replica metrics do not exist at zero ready
# replicas, and a burst can arrive and finish between two reads (the gauges read 0, only `demand` sees it).
Tick = tuple[int, int]  # (requests that arrived since the last read, sessions in flight at the read)


def realistic(
    policy: Policy, load: list[Tick], start: int, boot_ticks: int
) -> list[tuple[Observation, Decision]]:
    now, count, trace = NOW, start, []
    ready_at = [0] * start  # the tick at which each running replica is UP
    history = History()
    for tick, (arrived, in_flight) in enumerate(load):
        ready = sum(1 for at in ready_at if at <= tick)
        metrics = {"queued_requests": 0.0}
        if ready:
            metrics["sessions_per_replica"] = in_flight / ready
        observation = Observation(now, count, ready, metrics, demand=float(arrived + in_flight))
        decision = decide(observation, history, policy, now)
        trace.append((observation, decision))
        history = record(history, observation, decision, now, policy)
        if decision.count > count:
            ready_at += [tick + boot_ticks] * (decision.count - count)
        else:  # Swarm stops the newest tasks first
            ready_at = ready_at[: decision.count]
        count = decision.count
        now += policy.interval_s
    return trace


ticks = st.tuples(st.integers(0, 200), st.integers(0, 200))
# Most of the time nothing arrives, then a burst: the shape that leaves and re-enters zero.
bursty = st.lists(st.one_of(st.just((0, 0)), st.tuples(st.integers(1, 30), st.just(0)), ticks), max_size=60)


@settings(max_examples=200, deadline=None)
@given(policy=policies(), load=bursty, start=st.integers(0, 8), boot=st.integers(0, 4))
def test_requests_waiting_always_get_at_least_one_replica(
    policy: Policy, load: list[Tick], start: int, boot: int
) -> None:
    for observation, decision in realistic(policy, load, start, boot):
        if observation.demand > 0:
            assert decision.count >= 1, (observation, decision)


@settings(max_examples=200, deadline=None)
@given(policy=policies(), load=bursty, start=st.integers(0, 8), boot=st.integers(1, 4))
def test_no_scale_in_while_fewer_replicas_are_ready_than_running(
    policy: Policy, load: list[Tick], start: int, boot: int
) -> None:
    for observation, decision in realistic(policy, load, start, boot):
        if observation.ready < observation.current <= policy.max_replicas:
            assert decision.direction != "down", (observation, decision)


@settings(max_examples=150, deadline=None)
@given(policy=policies(), load=bursty, start=st.integers(0, 8), boot=st.integers(0, 4))
def test_an_idle_tier_returns_to_its_minimum_even_zero(
    policy: Policy, load: list[Tick], start: int, boot: int
) -> None:
    trace = realistic(policy, load + [(0, 0)] * 250, start, boot)
    assert trace[-1][1].count == policy.min_replicas, trace[-1]


@settings(max_examples=300)
@given(
    data=st.data(),
    policy=policies(),
    panic=st.floats(0, 1000, allow_nan=False),
    panicked_ago=st.one_of(st.none(), st.floats(0, 120)),
)
def test_never_scale_in_while_panicking(
    data: st.DataObject, policy: Policy, panic: float, panicked_ago: float | None
) -> None:
    policy = replace(policy, windows=WindowPolicy(0.25, 60.0, 6.0, 2.0))
    seen = data.draw(observations_to_act_on(policy))
    observation = replace(seen, stable_metrics=seen.metrics, panic_metrics={"sessions_per_replica": panic})
    history = History(last_panic_at=None if panicked_ago is None else NOW - panicked_ago)
    decision = decide(observation, history, policy, NOW)
    state = panic_state(observation, history, policy, NOW)
    if state.active:
        assert decision.count >= observation.current, (observation, decision)
    if state.triggered:
        assert decision.panic, decision  # recorded, so the next stable window stays in panic mode
