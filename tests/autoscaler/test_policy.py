"""load_policy(): a valid policy loads with its defaults; each invalid one fails naming the key and value."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.policy import PolicyError, load_policy

SESSIONS = {"name": "sessions", "metric": "sessions_per_replica", "target": 10}


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


INVALID = [
    pytest.param(
        raw(replicas={"min": 5, "max": 3}),
        "hostscale:autoscaler.replicas.min is 5 but hostscale:autoscaler.replicas.max is 3",
        id="min above max",
    ),
    pytest.param(raw(replicas={"max": 3}), "hostscale:autoscaler.replicas.min is required", id="min missing"),
    pytest.param(
        raw(replicas={"min": -1, "max": 3}),
        "hostscale:autoscaler.replicas.min must be at least 0, got -1",
        id="negative min",
    ),
    pytest.param(
        raw(replicas={"min": 1, "max": "ten"}),
        "hostscale:autoscaler.replicas.max must be an integer, got 'ten'",
        id="max not an integer",
    ),
    pytest.param(
        raw(replicas={"min": 1.5, "max": 3}),
        "hostscale:autoscaler.replicas.min must be an integer, got 1.5",
        id="fractional min",
    ),
    pytest.param(
        raw(interval_seconds=0.2),
        "hostscale:autoscaler.interval_seconds is 0.2 but must be at least 0.5",
        id="interval too short",
    ),
    pytest.param(
        raw(targets=[{"name": "x", "metric": "cpu", "target": 1}]),
        "hostscale:autoscaler.targets[0].metric is 'cpu', not a known metric (queued_requests, requests_per_second_per_replica, response_time_ms, sessions_per_replica)",
        id="unknown metric",
    ),
    pytest.param(
        raw(targets=[{"name": "x", "metric": "sessions_per_replica", "target": 0}]),
        "hostscale:autoscaler.targets[0].target must be positive, got 0",
        id="zero target",
    ),
    pytest.param(
        raw(targets=[{"name": "x", "metric": "sessions_per_replica", "target": 5, "taget": 1}]),
        "hostscale:autoscaler.targets[0].taget is not a known setting",
        id="misspelt key in a rule",
    ),
    pytest.param(
        raw(maximum=3), "hostscale:autoscaler.maximum is not a known setting", id="unknown top-level key"
    ),
    pytest.param(
        raw(targets=[], steps=[]),
        "hostscale:autoscaler.targets and hostscale:autoscaler.steps are both empty: nothing to scale on",
        id="no rules",
    ),
    pytest.param(
        raw(steps=[{"name": "s", "metric": "queued_requests", "above": 0, "below": 9, "add": 1}]),
        "hostscale:autoscaler.steps[0] needs exactly one of above or below, got {'name': 's', 'metric': 'queued_requests', 'above': 0, 'below': 9, 'add': 1}",
        id="step with above and below",
    ),
    pytest.param(
        raw(steps=[{"name": "s", "metric": "queued_requests", "above": 0}]),
        "hostscale:autoscaler.steps[0] needs exactly one of add or remove, got {'name': 's', 'metric': 'queued_requests', 'above': 0}",
        id="step without a change",
    ),
    pytest.param(
        raw(steps=[{"name": "s", "metric": "queued_requests", "above": 0, "add": 0}]),
        "hostscale:autoscaler.steps[0].add must be at least 1, got 0",
        id="step adding zero",
    ),
    pytest.param(
        raw(steps=[{"name": "sessions", "metric": "queued_requests", "above": 0, "add": 1}]),
        "hostscale:autoscaler.targets/hostscale:autoscaler.steps: rule name 'sessions' is used twice",
        id="duplicate rule name",
    ),
    pytest.param(
        raw(tolerance=1.5),
        "hostscale:autoscaler.tolerance is 1.5 but must be below 1",
        id="tolerance of 150 percent",
    ),
    pytest.param(
        raw(dry_run="yes"),
        "hostscale:autoscaler.dry_run must be true or false, got 'yes'",
        id="dry run not a boolean",
    ),
    pytest.param(
        raw(metrics_max_age_seconds=1),
        "hostscale:autoscaler.metrics_max_age_seconds is 1 but hostscale:autoscaler.interval_seconds is 2: every observation would be stale",
        id="max age shorter than interval",
    ),
    pytest.param(
        raw(scale_down={"cooldown_seconds": -5}),
        "hostscale:autoscaler.scale_down.cooldown_seconds must be at least 0.0, got -5",
        id="negative cooldown",
    ),
    pytest.param(
        raw(scale_up={"max_step": 0}),
        "hostscale:autoscaler.scale_up.max_step must be at least 1, got 0",
        id="zero max step",
    ),
    pytest.param(
        raw(scale_up=[1]),
        "hostscale:autoscaler.scale_up must be a mapping, got [1]",
        id="direction not a mapping",
    ),
    pytest.param(
        ["not", "a", "mapping"],
        "hostscale:autoscaler must be a mapping, got ['not', 'a', 'mapping']",
        id="policy not a mapping",
    ),
]


@pytest.mark.parametrize(("policy", "message"), INVALID)
def test_load_policy_rejects_invalid_policy_naming_key_and_value(policy: Any, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(policy, prefix="hostscale:autoscaler")
    assert str(error.value) == message


def test_load_policy_without_prefix_names_bare_keys() -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(raw(replicas={"min": 5, "max": 3}))
    assert str(error.value) == "replicas.min is 5 but replicas.max is 3"
