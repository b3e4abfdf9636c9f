"""The scaling decision: a pure function of an observation, the recent history, the policy and the time.

No I/O and no clock of its own, so every case is a table row in the tests. The reconcile loop observes,
calls `decide`, acts on Swarm, then `record`s what happened into the history for the next call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from autoscaler.policy import DirectionPolicy, Policy, StepRule, TargetRule

Direction = Literal["up", "down", "none"]

_UNITS = {"response_time_ms": " ms"}


@dataclass(frozen=True)
class Observation:
    """What the loop saw: Swarm's count, and the load balancer's view read at `at` (None: unreadable)."""

    at: float | None  # seconds on the loop's clock
    current: int  # replicas Swarm is asked to run now
    ready: int  # replicas the load balancer reports UP: starting replicas are not capacity yet
    metrics: Mapping[str, float] = field(default_factory=dict)
    # Requests in flight, queued, or arrived since the previous read: above 0 someone wants service, even
    # when no replica is ready (the per-replica metrics are then missing) or a burst ended between two reads.
    demand: float = 0.0
    # With policy.windows, target rules decide on the stable window's averages (`metrics` stays the newest read,
    # which step rules and the missing-data guard use) and panic on the panic window's.
    stable_metrics: Mapping[str, float] | None = None
    panic_metrics: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Minimum:
    """The fewest replicas to run now: the policy's minimum, or more while a schedule holds it
    (autoscaler/schedule.py builds it from the wall clock, so decide() stays a function of its inputs)."""

    replicas: int
    reason: str | None = (
        None  # why it is above the policy's, e.g. "schedule 'x' holds the minimum at 4 until ..."
    )


@dataclass(frozen=True)
class Decision:
    count: int
    direction: Direction
    reasons: tuple[str, ...]
    # What the rules and a scheduled minimum asked for before stabilization, step limits and bounds: history
    # keeps it.
    recommendation: int
    panic: bool = False  # the panic window triggered panic mode at this decision
    stuck: tuple[str, ...] = ()  # parts past their deadline, for /status


@dataclass(frozen=True)
class History:
    observations: tuple[Observation, ...] = ()
    recommendations: tuple[tuple[float, int], ...] = ()
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    last_panic_at: float | None = None
    not_ready_since: float | None = None  # since when fewer replicas are UP than run, without a break


def record(
    history: History, observation: Observation, decision: Decision, now: float, policy: Policy
) -> History:
    """The history after acting on `decision` at `now`, trimmed to what the policy can look back on."""
    horizon = now - policy.history_s
    observations, recommendations = history.observations, history.recommendations
    if observation.at is not None:  # a decision held for lack of metrics is not a recommendation
        observations += (observation,)
        recommendations += ((now, decision.recommendation),)
    return History(
        observations=tuple(o for o in observations if o.at is not None and o.at >= horizon),
        recommendations=tuple(r for r in recommendations if r[0] >= horizon),
        last_scale_up_at=now if decision.direction == "up" else history.last_scale_up_at,
        last_scale_down_at=now if decision.direction == "down" else history.last_scale_down_at,
        last_panic_at=now if decision.panic else history.last_panic_at,
        not_ready_since=_not_ready_since(history, observation, now),
    )


def _not_ready_since(history: History, observation: Observation, now: float) -> float | None:
    if observation.at is None:  # nothing was seen: the last known state goes on
        return history.not_ready_since
    if observation.ready >= observation.current:
        return None
    return now if history.not_ready_since is None else history.not_ready_since


def _not_ready_for(obs: Observation, history: History, now: float) -> float:
    """How long fewer replicas have been UP than run, this observation included."""
    if obs.ready >= obs.current:
        return 0.0
    return 0.0 if history.not_ready_since is None else now - history.not_ready_since


def _fmt(metric: str, value: float) -> str:
    return f"{value:.4g}{_UNITS.get(metric, '')}"


def _target_vote(
    rule: TargetRule, obs: Observation, policy: Policy, metrics: Mapping[str, float]
) -> tuple[int, str]:
    value = metrics.get(rule.metric)
    if obs.ready == 0 and obs.demand > 0:
        # ceil(0 x ratio) is 0 whatever the load, and per-replica metrics do not exist at zero replicas:
        # the demand itself asks for the first replica (Knative's activator does the same).
        return 1, f"rule '{rule.name}': {obs.demand:.4g} requests waiting with no replica ready asks for 1"
    if value is None:
        return obs.current, f"rule '{rule.name}': {rule.metric} missing: holding"
    ratio = value / rule.target
    tolerance = policy.scale_up.tolerance if ratio > 1 else policy.scale_down.tolerance
    if abs(ratio - 1) <= tolerance + 1e-9:  # 11/10 - 1 is 0.10000000000000009 in floating point
        return (
            obs.current,
            f"rule '{rule.name}': {_fmt(rule.metric, value)} is within tolerance of {_fmt(rule.metric, rule.target)}",
        )
    # Proportional to the replicas that actually serve: the load they carry is what the new count must hold.
    desired = math.ceil(obs.ready * ratio)
    if desired == 0 and obs.demand > 0:
        # A request between two idle-looking reads still needs a replica: every request resets the idle timer
        # (the scale-down stabilization window), so the tier reaches zero only after a quiet window.
        return (
            1,
            f"rule '{rule.name}': {_fmt(rule.metric, value)} vs target {_fmt(rule.metric, rule.target)} asks "
            f"for 0, but {obs.demand:.4g} requests arrived: 1",
        )
    return (
        desired,
        f"rule '{rule.name}': {_fmt(rule.metric, value)} vs target {_fmt(rule.metric, rule.target)} asks for {desired}",
    )


@dataclass(frozen=True)
class Panic:
    triggered: bool  # the panic window asks for panic_threshold x the ready replicas now
    active: bool  # triggered now or within the last stable window
    count: int  # what the panic window asks for (0 when not triggered)
    reason: str | None


def panic_state(obs: Observation, history: History, policy: Policy, now: float) -> Panic:
    """Knative KPA's panic mode: a burst the stable average would take a whole window to see."""
    windows = policy.windows
    if windows is None or obs.panic_metrics is None:
        return Panic(False, False, 0, None)
    votes = [(_target_vote(rule, obs, policy, obs.panic_metrics)[0], rule.name) for rule in policy.targets]
    count, name = max(votes, default=(0, ""))
    if obs.ready > 0 and count >= windows.panic_threshold * obs.ready:
        return Panic(
            True,
            True,
            count,
            f"panic: over the last {windows.panic_s:g} s rule '{name}' asks for {count}, "
            f"{count / obs.ready:.3g}x the {obs.ready} ready",
        )
    last = history.last_panic_at
    if last is not None and now - last < windows.stable_s:
        return Panic(
            False, True, 0, f"panic mode for {windows.stable_s - (now - last):.1f} s more: no scale-in"
        )
    return Panic(False, False, 0, None)


def _step_fired(rule: StepRule, obs: Observation, history: History, now: float) -> str | None:
    """The reason the rule fires, or None: the condition must hold in every observation of the last for_s,
    and the history must reach back that far."""
    start = now - rule.for_s
    window = [o for o in history.observations if o.at is not None and o.at >= start] + [obs]
    values = [o.metrics.get(rule.metric) for o in window]
    if any(v is None or not rule.holds(v) for v in values):
        return None
    covered = not rule.for_s or any(o.at is not None and o.at <= start for o in history.observations)
    if not covered:
        return None
    sign = ">" if rule.comparison == "above" else "<"
    value = obs.metrics[rule.metric]
    return f"rule '{rule.name}' fired: {_fmt(rule.metric, value)} {sign} {_fmt(rule.metric, rule.threshold)} for {rule.for_s:g} s"


def _max_step(direction: DirectionPolicy, current: int) -> int | None:
    """Like HPA's default selectPolicy (Max): each configured limit permits a step; the most permissive wins."""
    limits = []
    if direction.max_step is not None:
        limits.append(direction.max_step)
    if direction.max_step_percent is not None:
        limits.append(max(1, math.ceil(current * direction.max_step_percent / 100)))
    return max(limits) if limits else None


def _stabilize(
    raw: int, current: int, history: History, policy: Policy, now: float
) -> tuple[int, str | None]:
    """Kubernetes' stabilization: scale up only to the lowest recommendation of the up window, down only to
    the highest of the down window, so a brief dip never shrinks the tier and a brief spike never grows it."""
    up, down = raw, raw
    for at, recommended in history.recommendations:
        if at > now - policy.scale_up.stabilization_s:
            up = min(up, recommended)
        if at > now - policy.scale_down.stabilization_s:
            down = max(down, recommended)
    result = min(max(current, up), down)
    if raw < current and result > raw:
        return (
            result,
            f"scale-down held by stabilization: {down} recommended within the last {policy.scale_down.stabilization_s:g} s",
        )
    if raw > current and result < raw:
        return (
            result,
            f"scale-up held by stabilization: {up} recommended within the last {policy.scale_up.stabilization_s:g} s",
        )
    return result, None


def _limit_step(
    count: int, current: int, history: History, policy: Policy, now: float
) -> tuple[int, str | None]:
    if count > current:
        last = history.last_scale_up_at
        if last is not None and now - last < policy.scale_up.cooldown_s:
            return current, f"scale-up in cooldown for {policy.scale_up.cooldown_s - (now - last):.1f} s more"
        step = _max_step(policy.scale_up, current)
        if step is not None and count - current > step:
            return current + step, f"limited by max step up ({step})"
    if count < current:
        last = max(
            (t for t in (history.last_scale_up_at, history.last_scale_down_at) if t is not None), default=None
        )
        if last is not None and now - last < policy.scale_down.cooldown_s:
            return (
                current,
                f"scale-down in cooldown for {policy.scale_down.cooldown_s - (now - last):.1f} s more",
            )
        step = _max_step(policy.scale_down, current)
        if step is not None and current - count > step:
            return current - step, f"limited by max step down ({step})"
    return count, None


def _low(policy: Policy, minimum: Minimum | None) -> tuple[int, str | None]:
    """The effective minimum: never below the policy's, never above its max."""
    if minimum is None or minimum.replicas <= policy.min_replicas:
        return policy.min_replicas, None
    return min(minimum.replicas, policy.max_replicas), minimum.reason


def _clamp(count: int, policy: Policy, minimum: Minimum | None) -> tuple[int, str | None]:
    if count > policy.max_replicas:
        return policy.max_replicas, f"clamped to max ({policy.max_replicas})"
    low, why = _low(policy, minimum)
    if count < low:
        return low, why or f"clamped to min ({low})"
    return count, None


def _direction(count: int, current: int) -> Direction:
    return "up" if count > current else "down" if count < current else "none"


def _hold(current: int, policy: Policy, reason: str, minimum: Minimum | None) -> Decision:
    # Bounds are the operator's, not the metrics': they apply even when nothing can be measured.
    count, clamp = _clamp(current, policy, minimum)
    reasons = (reason,) + ((clamp,) if clamp else ())
    return Decision(count, _direction(count, current), reasons, recommendation=current)


def decide(
    obs: Observation, history: History, policy: Policy, now: float, minimum: Minimum | None = None
) -> Decision:
    """The replica count to run now, and why. `minimum`: the effective minimum while a schedule raises it
    (None: the policy's)."""
    current = obs.current
    if obs.at is None:
        return _hold(current, policy, "held: no metrics", minimum)
    age = now - obs.at
    if age > policy.metrics_max_age_s:
        return _hold(current, policy, f"held: metrics stale for {age:.0f} s", minimum)
    waited = _not_ready_for(obs, history, now)
    deadline = policy.deadlines.not_ready_s
    stuck: tuple[str, ...] = ()
    if waited >= deadline:
        stuck = (
            f"{current - obs.ready} of {current} replicas not ready for {waited:.0f} s "
            f"(deadline {deadline:g} s): stuck pending or crash-looping",
        )
    if obs.ready == 0 and current > 0:
        return replace(_hold(current, policy, "held: no replica is ready", minimum), stuck=stuck)

    votes: list[int] = []
    reasons: list[str] = []
    for target in policy.targets:
        stable = obs.metrics if obs.stable_metrics is None else obs.stable_metrics
        vote, why = _target_vote(target, obs, policy, stable)
        votes.append(vote)
        reasons.append(why)
    for step in policy.steps:
        fired = _step_fired(step, obs, history, now)
        if fired is not None:  # an idle step rule abstains: it must not veto another rule's scale-in
            votes.append(current + step.change)
            reasons.append(fired)
    count = max(votes) if votes else current
    if not votes:
        reasons.append("no rule fired: holding")
    panic = panic_state(obs, history, policy, now)
    if panic.reason:
        reasons.append(panic.reason)
    if panic.active:  # never scale in while panicking
        count = max(count, panic.count, current)
    if count < current:
        missing = sorted(m for m in policy.metrics if m not in obs.metrics)
        if missing:
            count = current
            reasons.append(f"held: {', '.join(missing)} missing, never scale in on missing data")
        elif obs.ready < current and not stuck:
            count = current
            reasons.append(f"held: {current - obs.ready} replica(s) not ready, no scale-in while they start")
        elif obs.ready < current:
            reasons.append(
                f"{current - obs.ready} replica(s) not ready for {waited:.0f} s, past the {deadline:g} s "
                "deadline: scale-in no longer held back"
            )
    low, held_by_schedule = _low(policy, minimum)
    if held_by_schedule is not None and count < low:
        # A vote like any rule's: it is what history keeps, so once the schedule ends the scale-down
        # stabilization window still sees it and the tier steps down by the scale_down rules, not at once.
        count = low
        reasons.append(held_by_schedule)
    recommendation = count
    # Each limit applies to what the previous one left: stabilization, then step and cooldown, then bounds.
    count, stabilized = _stabilize(count, current, history, policy, now)
    count, stepped = _limit_step(count, current, history, policy, now)
    if current == 0 and recommendation > 0 and count == 0:
        # Requests wait (or fail) while the tier is at zero: nothing is gained by holding them back.
        count, stabilized, stepped = 1, None, "scale from zero: not held by stabilization or cooldown"
    count, clamped = _clamp(count, policy, minimum)
    reasons.extend(why for why in (stabilized, stepped, clamped) if why and why not in reasons)
    return Decision(count, _direction(count, current), tuple(reasons), recommendation, panic.triggered, stuck)
