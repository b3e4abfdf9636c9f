"""Predictive power-on: a least-squares trend of demand (in replicas) over a short window, extrapolated over the
measured power-on time; and the planner starting a warm VM for it before any replica is pending."""

from __future__ import annotations

import random

import pytest

from autoscaler.decide import Observation
from autoscaler.fleet import FleetPolicy, VmState, plan
from autoscaler.forecast import PredictivePolicy, fit, forecast, power_on_horizon, wanted_replicas
from autoscaler.policy import load_policy

POLICY = PredictivePolicy(mode="on", window_s=60, default_power_on_s=90)
FLEET = FleetPolicy(vms=("w0", "w1"), replicas_per_vm=2, scale_in_after_s=30)
ONE_RUNNING = [VmState("w0", True, True, True, 2), VmState("w1", False, False, False, 0, warm=True)]


def ramp(start: float, per_min: float, seconds: int = 60, every: int = 2) -> list[tuple[float, float]]:
    return [(1000.0 + t, start + per_min * t / 60) for t in range(0, seconds + 1, every)]


def noisy(mean: float, spread: float, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)  # noqa: S311 (seeded noise for a test, not a secret)
    return [(1000.0 + t, mean + rng.uniform(-spread, spread)) for t in range(0, 61, 2)]


def test_a_line_fits_exactly() -> None:
    trend = fit(ramp(1.0, 0.6))
    assert trend is not None
    assert (round(trend.slope_per_s * 60, 6), round(trend.level, 6), round(trend.r2, 6)) == (0.6, 1.6, 1.0)
    assert (trend.points, trend.span_s) == (31, 60.0)


@pytest.mark.parametrize(
    ("points", "expected_workers_steps", "why"),
    [
        pytest.param(
            ramp(1.0, 0.6),  # 1.6 replicas now, +0.6/min: 2.5 in 90 s, more than the one worker's 2
            [("power_on", "w1")],
            "demand 1.6 replicas rising +0.60/min (R² 1.00): 2.5 in 90 s",
            id="a ramp that crosses the running workers capacity within the power-on time powers on early",
        ),
        pytest.param(
            ramp(1.0, 0.2),  # 1.2 now: 1.5 in 90 s, within the one worker's 2
            [],
            "demand 1.2 replicas rising +0.20/min (R² 1.00): 1.5 in 90 s",
            id="a ramp that stays within capacity over the power-on time does not",
        ),
        pytest.param(
            ramp(1.8, 0.0),
            [],
            "demand not rising (+0.00 replicas/min)",
            id="a flat load does not",
        ),
        pytest.param(
            noisy(1.8, 0.6, seed=7),
            [],
            "trend too noisy to trust (R² 0.05 below 0.6)",
            id="a noisy load around a flat mean does not",
        ),
        pytest.param(
            ramp(1.0, 0.6, seconds=6),
            [],
            "4 points over the window: too few for a trend",
            id="a window just begun has no trend yet",
        ),
    ],
)
def test_the_trend_powers_on_a_warm_vm_before_replicas_are_pending(
    points: list[tuple[float, float]], expected_workers_steps: list[tuple[str, str]], why: str
) -> None:
    predicted = forecast(points, 90, POLICY)
    assert predicted.why == why
    hint = None if predicted.replicas is None else (predicted.replicas, predicted.why)
    # 2 replicas wanted now: one worker holds them, so without the trend nothing would start.
    result = plan(2, ONE_RUNNING, FLEET, None, now=1060, forecast=hint)
    assert [(s.verb, s.vm) for s in result.steps] == expected_workers_steps
    assert all(s.predictive for s in result.steps)


def test_a_noisy_load_does_not_flap_over_many_windows() -> None:
    powered = [
        seed
        for seed in range(200)
        if forecast(noisy(1.8, 0.6, seed), 90, POLICY).replicas is not None
        and forecast(noisy(1.8, 0.6, seed), 90, POLICY).replicas > 2  # type: ignore[operator]
    ]
    assert powered == []


def test_the_power_on_step_names_the_trend() -> None:
    predicted = forecast(ramp(1.0, 0.6), 90, POLICY)
    assert predicted.replicas is not None
    result = plan(2, ONE_RUNNING, FLEET, None, now=1060, forecast=(predicted.replicas, predicted.why))
    assert result.steps[0].reason == (
        "trend: demand 1.6 replicas rising +0.60/min (R² 1.00): 2.5 in 90 s, more than 1 workers hold"
    )


def test_a_vm_already_booting_counts_for_the_trend() -> None:
    booting = [VmState("w0", True, True, True, 2), VmState("w1", True, False, False, 0)]
    assert plan(2, booting, FLEET, None, now=1060, forecast=(3.0, "rising")).steps == ()


def test_a_rising_trend_holds_scale_in() -> None:
    two = [VmState("w0", True, True, True, 1), VmState("w1", True, True, True, 1)]
    result = plan(2, two, FLEET, surplus_since=0, now=1000, forecast=(3.5, "rising"))
    assert (result.steps, result.surplus_since) == ((), None)


@pytest.mark.parametrize(
    ("measured", "horizon"),
    [
        pytest.param([], 90, id="before any power-on: the default"),
        pytest.param([40.0], 40, id="one measured"),
        pytest.param([40.0, 100.0, 50.0], 50, id="the median, not the mean"),
        pytest.param([500.0, 500.0, 40.0, 41.0, 42.0, 43.0, 44.0], 42, id="the last five only"),
    ],
)
def test_the_horizon_is_the_median_of_the_last_power_ons(measured: list[float], horizon: float) -> None:
    assert power_on_horizon(measured, POLICY) == horizon


def test_demand_in_replicas_is_what_the_target_rules_ask_before_rounding() -> None:
    policy = load_policy(
        {
            "replicas": {"min": 1, "max": 8},
            "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 4}],
        }
    )
    obs = Observation(at=1.0, current=2, ready=2, metrics={"sessions_per_replica": 5.0})
    assert wanted_replicas(obs, policy) == 2.5
    assert wanted_replicas(Observation(at=1.0, current=2, ready=2, metrics={}), policy) is None
