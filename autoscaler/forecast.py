"""Predictive power-on: the trend of demand over a short window, extrapolated over the time a VM takes to power
on, so a warm VM starts before replicas are pending rather than after. Pure: points go in, a forecast comes out.

Demand is counted in replicas (`wanted_replicas`: what the target rules would ask for before rounding, bounds
and stabilization), so the forecast compares directly with what the running workers hold. The trend is a
least-squares line over the window; it is trusted only when it rises, spans enough of the window, and fits (its
R² at least `min_r2`): a flat load has no slope, and a noisy one around a flat mean fits badly, so neither
powers anything on.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from autoscaler.decide import Observation
from autoscaler.policy import Policy

PredictiveMode = Literal["off", "forecast_only", "on"]
PREDICTIVE_MODES: tuple[PredictiveMode, ...] = get_args(PredictiveMode)
# Power-ons measured (decision -> node ready) whose median is the horizon; fewer measured: the default.
POWER_ON_SAMPLES = 5


@dataclass(frozen=True)
class PredictivePolicy:
    mode: PredictiveMode = "off"
    window_s: float = 60.0  # the trend's window
    default_power_on_s: float = 90.0  # the horizon before any power-on was measured
    min_points: int = 5
    min_span_s: float = 10.0  # the points must cover at least this much of the window
    min_r2: float = 0.6


@dataclass(frozen=True)
class Trend:
    slope_per_s: float
    level: float  # the fitted line at the newest point
    r2: float
    points: int
    span_s: float


@dataclass(frozen=True)
class Forecast:
    replicas: float | None  # demand, in replicas, at the end of the horizon; None: no trend to trust
    horizon_s: float
    why: str


def wanted_replicas(obs: Observation, policy: Policy) -> float | None:
    """The most replicas any target rule asks for at this observation, unrounded; None without a metric."""
    values = []
    metrics = obs.metrics if obs.stable_metrics is None else obs.stable_metrics
    for rule in policy.targets:
        value = metrics.get(rule.metric)
        if value is not None:
            values.append(obs.ready * value / rule.target)
    return max(values) if values else None


def fit(points: Sequence[tuple[float, float]]) -> Trend | None:
    """The least-squares line through (time, value) points; None for fewer than two distinct times."""
    n = len(points)
    if n < 2:
        return None
    times = [t for t, _ in points]
    values = [v for _, v in points]
    mean_t, mean_v = sum(times) / n, sum(values) / n
    var_t = sum((t - mean_t) ** 2 for t in times)
    if var_t == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var_t
    total = sum((v - mean_v) ** 2 for v in values)
    residual = sum((v - (mean_v + slope * (t - mean_t))) ** 2 for t, v in points)
    r2 = 1.0 - residual / total if total > 0 else 0.0
    newest = max(times)
    return Trend(slope, mean_v + slope * (newest - mean_t), r2, n, newest - min(times))


def power_on_horizon(measured_s: Sequence[float], policy: PredictivePolicy) -> float:
    """The median of the last power-ons measured, or the default before any."""
    recent = list(measured_s)[-POWER_ON_SAMPLES:]
    return statistics.median(recent) if recent else policy.default_power_on_s


def forecast(points: Sequence[tuple[float, float]], horizon_s: float, policy: PredictivePolicy) -> Forecast:
    trend = fit(points)
    if trend is None or trend.points < policy.min_points or trend.span_s < policy.min_span_s:
        count = 0 if trend is None else trend.points
        return Forecast(None, horizon_s, f"{count} points over the window: too few for a trend")
    if trend.slope_per_s <= 0:
        return Forecast(None, horizon_s, f"demand not rising ({trend.slope_per_s * 60:+.2f} replicas/min)")
    if trend.r2 < policy.min_r2:
        return Forecast(
            None, horizon_s, f"trend too noisy to trust (R² {trend.r2:.2f} below {policy.min_r2:g})"
        )
    predicted = trend.level + trend.slope_per_s * horizon_s
    return Forecast(
        predicted,
        horizon_s,
        f"demand {trend.level:.1f} replicas rising {trend.slope_per_s * 60:+.2f}/min (R² {trend.r2:.2f}): "
        f"{predicted:.1f} in {horizon_s:.0f} s",
    )
