"""The scaling decision: a pure function of an observation, the recent history, the policy and the time.

No I/O and no clock of its own, so every case is a table row in the tests. The reconcile loop observes,
calls `decide`, acts on Swarm, then `record`s what happened into the history for the next call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Decision:
    count: int
    direction: Direction
    reasons: tuple[str, ...]
    # What the rules asked for before stabilization, step limits and bounds: history keeps it.
    recommendation: int


@dataclass(frozen=True)
class History:
    observations: tuple[Observation, ...] = ()
    recommendations: tuple[tuple[float, int], ...] = ()
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None


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
    )


def _fmt(metric: str, value: float) -> str:
    return f"{value:.4g}{_UNITS.get(metric, '')}"


def _target_vote(rule: TargetRule, obs: Observation, tolerance: float) -> tuple[int, str]:
    value = obs.metrics.get(rule.metric)
    if value is None:
        return obs.current, f"rule '{rule.name}': {rule.metric} missing: holding"
    ratio = value / rule.target
    if abs(ratio - 1) <= tolerance + 1e-9:  # 11/10 - 1 is 0.10000000000000009 in floating point
        return (
            obs.current,
            f"rule '{rule.name}': {_fmt(rule.metric, value)} is within tolerance of {_fmt(rule.metric, rule.target)}",
        )
    # Proportional to the replicas that actually serve: the load they carry is what the new count must hold.
    desired = math.ceil(obs.ready * ratio)
    return (
        desired,
        f"rule '{rule.name}': {_fmt(rule.metric, value)} vs target {_fmt(rule.metric, rule.target)} asks for {desired}",
    )


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


def _clamp(count: int, policy: Policy) -> tuple[int, str | None]:
    if count > policy.max_replicas:
        return policy.max_replicas, f"clamped to max ({policy.max_replicas})"
    if count < policy.min_replicas:
        return policy.min_replicas, f"clamped to min ({policy.min_replicas})"
    return count, None


def _direction(count: int, current: int) -> Direction:
    return "up" if count > current else "down" if count < current else "none"


def _hold(current: int, policy: Policy, reason: str) -> Decision:
    # Bounds are the operator's, not the metrics': they apply even when nothing can be measured.
    count, clamp = _clamp(current, policy)
    reasons = (reason,) + ((clamp,) if clamp else ())
    return Decision(count, _direction(count, current), reasons, recommendation=current)


def decide(obs: Observation, history: History, policy: Policy, now: float) -> Decision:
    """The replica count to run now, and why."""
    current = obs.current
    if obs.at is None:
        return _hold(current, policy, "held: no metrics")
    age = now - obs.at
    if age > policy.metrics_max_age_s:
        return _hold(current, policy, f"held: metrics stale for {age:.0f} s")
    if obs.ready == 0 and current > 0:
        return _hold(current, policy, "held: no replica is ready")

    votes: list[int] = []
    reasons: list[str] = []
    for target in policy.targets:
        vote, why = _target_vote(target, obs, policy.tolerance)
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
    if count < current:
        missing = sorted(m for m in policy.metrics if m not in obs.metrics)
        if missing:
            count = current
            reasons.append(f"held: {', '.join(missing)} missing, never scale in on missing data")
        elif obs.ready < current:
            count = current
            reasons.append(f"held: {current - obs.ready} replica(s) not ready, no scale-in while they start")
    recommendation = count
    # Each limit applies to what the previous one left: stabilization, then step and cooldown, then bounds.
    count, stabilized = _stabilize(count, current, history, policy, now)
    count, stepped = _limit_step(count, current, history, policy, now)
    count, clamped = _clamp(count, policy)
    reasons.extend(why for why in (stabilized, stepped, clamped) if why)
    return Decision(count, _direction(count, current), tuple(reasons), recommendation)
