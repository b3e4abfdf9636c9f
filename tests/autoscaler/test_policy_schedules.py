"""load_policy()'s `schedules` and `timezone`: what loads, and each invalid one failing with the key and value."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.policy import PolicyError, Schedule, load_policy

P = "hostscale:autoscaler"
BUSY = {"name": "busy", "start": "0 8 * * MON-FRI", "duration_seconds": 36000, "min_replicas": 4}


def raw(**overrides: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "replicas": {"min": 1, "max": 10},
        "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 10}],
    }
    policy.update(overrides)
    return policy


def test_a_policy_without_schedules_has_none_and_reads_utc() -> None:
    policy = load_policy(raw())
    assert (policy.schedules, policy.timezone) == ((), "UTC")


def test_each_schedule_reads_the_policy_zone_unless_it_names_its_own() -> None:
    policy = load_policy(
        raw(
            timezone="Europe/Berlin",
            schedules=[BUSY, {**BUSY, "name": "ny", "timezone": "America/New_York", "min_workers": 2}],
        )
    )
    assert policy.schedules == (
        Schedule("busy", "0 8 * * MON-FRI", 36000.0, 4, "Europe/Berlin", 0),
        Schedule("ny", "0 8 * * MON-FRI", 36000.0, 4, "America/New_York", 2),
    )


def test_a_schedule_may_raise_the_minimum_to_the_max_exactly() -> None:
    assert load_policy(raw(schedules=[{**BUSY, "min_replicas": 10}])).schedules[0].min_replicas == 10


def schedule(**overrides: Any) -> dict[str, Any]:
    return raw(schedules=[{**BUSY, **overrides}])


def invalid(id: str, policy: Any, message: str) -> Any:
    return pytest.param(policy, message, id=id)


S = f"{P}.schedules[0]"
# Rows: id, the policy (read with the prefix hostscale:autoscaler), the exact error.
# fmt: off
INVALID = [
    invalid("an hour of 25", schedule(start="0 25 * * *"),
            f"{S}.start is '0 25 * * *', not a cron expression: bad hour (minute hour day-of-month month day-of-week)"),
    invalid("a weekday that does not exist", schedule(start="0 8 * * FUNDAY"),
            f"{S}.start is '0 8 * * FUNDAY', not a cron expression: bad day-of-week (minute hour day-of-month month day-of-week)"),
    invalid("the 31st of February", schedule(start="0 8 31 2 *"),
            f"{S}.start is '0 8 31 2 *', not a cron expression: bad day-of-month (minute hour day-of-month month day-of-week)"),
    invalid("a cron expression with a seconds field", schedule(start="0 0 8 * * *"),
            f"{S}.start is '0 0 8 * * *', not a cron expression: it needs 5 fields (minute hour day-of-month month day-of-week), got 6"),
    invalid("a cron expression of 4 fields", schedule(start="0 8 * *"),
            f"{S}.start is '0 8 * *', not a cron expression: it needs 5 fields (minute hour day-of-month month day-of-week), got 4"),
    invalid("a start that is not a string", schedule(start=8),
            f"{S}.start must be a non-empty string, got 8"),
    invalid("a start missing", raw(schedules=[{k: v for k, v in BUSY.items() if k != "start"}]),
            f"{S}.start must be a non-empty string, got None"),
    invalid("an unknown time zone in a schedule", schedule(timezone="Europe/Atlantis"),
            f"{S}.timezone is 'Europe/Atlantis', not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"),
    invalid("a path for a time zone", schedule(timezone="../../etc/passwd"),
            f"{S}.timezone is '../../etc/passwd', not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"),
    invalid("an unknown policy time zone", raw(timezone="CEST+2"),
            f"{P}.timezone is 'CEST+2', not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"),
    invalid("a minimum above the max", schedule(min_replicas=12),
            f"{S}.min_replicas is 12 but {P}.replicas.max is 10"),
    invalid("a negative minimum", schedule(min_replicas=-1),
            f"{S}.min_replicas must be at least 0, got -1"),
    invalid("a minimum missing", raw(schedules=[{k: v for k, v in BUSY.items() if k != "min_replicas"}]),
            f"{S}.min_replicas is required"),
    invalid("a duration of 0", schedule(duration_seconds=0),
            f"{S}.duration_seconds must be positive, got 0"),
    invalid("a duration of a week", schedule(duration_seconds=604800),
            f"{S}.duration_seconds must be at most 86400, got 604800"),
    invalid("a duration as text", schedule(duration_seconds="10h"),
            f"{S}.duration_seconds must be a number, got '10h'"),
    invalid("a negative worker minimum", schedule(min_workers=-2),
            f"{S}.min_workers must be at least 0, got -2"),
    invalid("a name used twice", raw(schedules=[BUSY, {**BUSY, "start": "0 20 * * *"}]),
            f"{P}.schedules: schedule name 'busy' is used twice"),
    invalid("a schedule without a name", raw(schedules=[{k: v for k, v in BUSY.items() if k != "name"}]),
            f"{S}.name must be a non-empty string, got None"),
    invalid("an end cron instead of a duration", schedule(end="0 18 * * *"),
            f"{S}.end is not a known setting"),
    invalid("schedules not a list", raw(schedules={"busy": BUSY}),
            f"{P}.schedules must be a list, got {{'busy': {BUSY!r}}}"),
]
# fmt: on


@pytest.mark.parametrize(("policy", "message"), INVALID)
def test_load_policy_rejects_an_invalid_schedule_naming_key_and_value(policy: Any, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(policy, prefix=P)
    assert str(error.value) == message


def test_an_unknown_zone_on_a_python_without_a_zone_database_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import zoneinfo

    monkeypatch.setattr(zoneinfo, "available_timezones", set)
    with pytest.raises(PolicyError) as error:
        load_policy(raw(timezone="Europe/Atlantis"), prefix=P)
    assert str(error.value) == (
        f"{P}.timezone is 'Europe/Atlantis', not an IANA time zone name (e.g. Europe/Berlin, America/New_York, "
        "UTC); this Python finds no time zone database (install tzdata)"
    )
