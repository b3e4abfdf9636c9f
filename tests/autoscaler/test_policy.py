"""load_policy(): a valid policy loads with its defaults; each invalid one fails naming the key and value."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.policy import PolicyError, load_policy

SESSIONS = {"name": "sessions", "metric": "sessions_per_replica", "target": 10}
STEP_S = {"name": "s", "metric": "queued_requests"}  # the malformed step rules below start alike


def raw(**overrides: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {"replicas": {"min": 2, "max": 10}, "targets": [SESSIONS]}
    policy.update(overrides)
    return policy


def test_load_policy_applies_defaults() -> None:
    policy = load_policy(raw())
    assert (policy.min_replicas, policy.max_replicas, policy.interval_s, policy.tolerance) == (
        2,
        10,
        2.0,
        0.1,
    )
    assert policy.scale_down.stabilization_s == 60.0
    assert policy.metrics == {"sessions_per_replica"}


def test_each_direction_takes_the_top_level_tolerance_unless_it_sets_its_own() -> None:
    policy = load_policy(raw(tolerance=0.2, scale_down={"tolerance": 0.4}))
    assert (policy.scale_up.tolerance, policy.scale_down.tolerance) == (0.2, 0.4)


def test_windows_default_to_knatives_kpa_and_sample_four_times_a_second() -> None:
    assert load_policy(raw()).windows is None
    windows = load_policy(raw(windows={})).windows
    assert windows is not None
    assert (windows.sample_interval_s, windows.stable_s, windows.panic_s, windows.panic_threshold) == (
        0.25,
        60.0,
        6.0,
        2.0,
    )


def test_a_policy_may_idle_at_zero_replicas() -> None:
    assert load_policy(raw(replicas={"min": 0, "max": 3})).min_replicas == 0


def test_load_policy_reads_step_rules_both_ways() -> None:
    policy = load_policy(
        raw(
            steps=[
                {"name": "slow", "metric": "response_time_ms", "above": 300, "for_seconds": 15, "add": 2},
                {
                    "name": "idle",
                    "metric": "requests_per_second_per_replica",
                    "below": 5,
                    "for_seconds": 120,
                    "remove": 1,
                },
            ]
        )
    )
    assert [(s.comparison, s.threshold, s.for_s, s.change) for s in policy.steps] == [
        ("above", 300.0, 15.0, 2),
        ("below", 5.0, 120.0, -1),
    ]


def invalid(id: str, policy: Any, message: str) -> Any:
    return pytest.param(policy, message, id=id)


# Rows: id, the policy (read with the prefix hostscale:autoscaler), the exact error.
# fmt: off
INVALID = [
    invalid("min above max", raw(replicas={"min": 5, "max": 3}),
            "hostscale:autoscaler.replicas.min is 5 but hostscale:autoscaler.replicas.max is 3"),
    invalid("min missing", raw(replicas={"max": 3}),
            "hostscale:autoscaler.replicas.min is required"),
    invalid("negative min", raw(replicas={"min": -1, "max": 3}),
            "hostscale:autoscaler.replicas.min must be at least 0, got -1"),
    invalid("max not an integer", raw(replicas={"min": 1, "max": "ten"}),
            "hostscale:autoscaler.replicas.max must be an integer, got 'ten'"),
    invalid("fractional min", raw(replicas={"min": 1.5, "max": 3}),
            "hostscale:autoscaler.replicas.min must be an integer, got 1.5"),
    invalid("interval too short", raw(interval_seconds=0.2),
            "hostscale:autoscaler.interval_seconds is 0.2 but must be at least 0.5"),
    invalid("unknown metric", raw(targets=[{"name": "x", "metric": "cpu", "target": 1}]),
            "hostscale:autoscaler.targets[0].metric is 'cpu', not a known metric (queued_requests, requests_per_second_per_replica, response_time_ms, sessions_per_replica)"),
    invalid("zero target", raw(targets=[{"name": "x", "metric": "sessions_per_replica", "target": 0}]),
            "hostscale:autoscaler.targets[0].target must be positive, got 0"),
    invalid("misspelt key in a rule", raw(targets=[{"name": "x", "metric": "sessions_per_replica", "target": 5, "taget": 1}]),
            "hostscale:autoscaler.targets[0].taget is not a known setting (did you mean hostscale:autoscaler.targets[0].target?)"),
    invalid("unknown top-level key", raw(maximum=3),
            "hostscale:autoscaler.maximum is not a known setting"),
    invalid("no rules", raw(targets=[], steps=[]),
            "hostscale:autoscaler.targets and hostscale:autoscaler.steps are both empty: nothing to scale on"),
    invalid("step with above and below", raw(steps=[{**STEP_S, "above": 0, "below": 9, "add": 1}]),
            "hostscale:autoscaler.steps[0] needs exactly one of above or below, got {'name': 's', 'metric': 'queued_requests', 'above': 0, 'below': 9, 'add': 1}"),
    invalid("step without a change", raw(steps=[{**STEP_S, "above": 0}]),
            "hostscale:autoscaler.steps[0] needs exactly one of add or remove, got {'name': 's', 'metric': 'queued_requests', 'above': 0}"),
    invalid("step adding zero", raw(steps=[{**STEP_S, "above": 0, "add": 0}]),
            "hostscale:autoscaler.steps[0].add must be at least 1, got 0"),
    invalid("duplicate rule name", raw(steps=[{"name": "sessions", "metric": "queued_requests", "above": 0, "add": 1}]),
            "hostscale:autoscaler.targets/hostscale:autoscaler.steps: rule name 'sessions' is used twice"),
    invalid("tolerance of 150 percent", raw(tolerance=1.5),
            "hostscale:autoscaler.tolerance is 1.5 but must be below 1"),
    invalid("scale-in tolerance of 100 percent", raw(scale_down={"tolerance": 1}),
            "hostscale:autoscaler.scale_down.tolerance is 1 but must be below 1"),
    invalid("negative scale-out tolerance", raw(scale_up={"tolerance": -0.1}),
            "hostscale:autoscaler.scale_up.tolerance must be at least 0.0, got -0.1"),
    invalid("scale-out tolerance not a number", raw(scale_up={"tolerance": "10%"}),
            "hostscale:autoscaler.scale_up.tolerance must be a number, got '10%'"),
    invalid("samples slower than decisions", raw(windows={"sample_interval_seconds": 3}),
            "hostscale:autoscaler.windows.sample_interval_seconds is 3 but must be between 0.1 and the interval_seconds (2)"),
    invalid("panic window longer than the stable one", raw(windows={"stable_seconds": 6, "panic_seconds": 10}),
            "hostscale:autoscaler.windows.panic_seconds is 10 but must be between the sample_interval_seconds (0.25) and the stable_seconds (6)"),
    invalid("stable window shorter than a decision", raw(windows={"stable_seconds": 1, "panic_seconds": 0.5}),
            "hostscale:autoscaler.windows.stable_seconds is 1 but must be at least the interval_seconds (2)"),
    invalid("panic threshold of 1", raw(windows={"panic_threshold": 1}),
            "hostscale:autoscaler.windows.panic_threshold is 1 but must be above 1"),
    invalid("unknown window key", raw(windows={"panic_window": 6}),
            "hostscale:autoscaler.windows.panic_window is not a known setting (did you mean hostscale:autoscaler.windows.panic_seconds?)"),
    invalid("dry run not a boolean", raw(dry_run="yes"),
            "hostscale:autoscaler.dry_run must be true or false, got 'yes'"),
    invalid("max age shorter than interval", raw(metrics_max_age_seconds=1),
            "hostscale:autoscaler.metrics_max_age_seconds is 1 but hostscale:autoscaler.interval_seconds is 2: every observation would be stale"),
    invalid("negative cooldown", raw(scale_down={"cooldown_seconds": -5}),
            "hostscale:autoscaler.scale_down.cooldown_seconds must be at least 0.0, got -5"),
    invalid("zero max step", raw(scale_up={"max_step": 0}),
            "hostscale:autoscaler.scale_up.max_step must be at least 1, got 0"),
    invalid("direction not a mapping", raw(scale_up=[1]),
            "hostscale:autoscaler.scale_up must be a mapping, got [1]"),
    invalid("a billion replicas", raw(replicas={"min": 1, "max": 10**9}),
            "hostscale:autoscaler.replicas.max must be at most 1000, got 1000000000"),
    invalid("a cooldown of a year", raw(scale_down={"cooldown_seconds": 31536000}),
            "hostscale:autoscaler.scale_down.cooldown_seconds must be at most 86400, got 31536000"),
    invalid("a step adding a million", raw(steps=[{**STEP_S, "above": 0, "add": 10**6}]),
            "hostscale:autoscaler.steps[0].add must be at most 1000, got 1000000"),
    invalid("a target beyond any metric", raw(targets=[{"name": "x", "metric": "sessions_per_replica", "target": 1e9}]),
            "hostscale:autoscaler.targets[0].target must be at most 1e+06, got 1000000000.0"),
    invalid("a step threshold beyond any metric", raw(steps=[{**STEP_S, "above": 1e12, "add": 1}]),
            "hostscale:autoscaler.steps[0].above must be at most 1e+06, got 1000000000000.0"),
    invalid("a scale-out step of 10,000 percent", raw(scale_up={"max_step_percent": 10000}),
            "hostscale:autoscaler.scale_up.max_step_percent must be at most 1000, got 10000"),
    invalid("a panic threshold of 1,000", raw(windows={"panic_threshold": 1000}),
            "hostscale:autoscaler.windows.panic_threshold must be at most 100, got 1000"),
    invalid("a deadline of a week", raw(deadlines={"vm_boot_seconds": 604800}),
            "hostscale:autoscaler.deadlines.vm_boot_seconds must be at most 86400, got 604800"),
    invalid("policy not a mapping", ["not", "a", "mapping"],
            "hostscale:autoscaler must be a mapping, got ['not', 'a', 'mapping']"),
]
# fmt: on


@pytest.mark.parametrize(("policy", "message"), INVALID)
def test_load_policy_rejects_invalid_policy_naming_key_and_value(policy: Any, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(policy, prefix="hostscale:autoscaler")
    assert str(error.value) == message


def test_load_policy_without_prefix_names_bare_keys() -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(raw(replicas={"min": 5, "max": 3}))
    assert str(error.value) == "replicas.min is 5 but replicas.max is 3"
