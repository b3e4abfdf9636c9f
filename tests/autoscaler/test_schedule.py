"""Schedules at a moment: open or closed, the next change, DST, the effective minimum (fake clocks only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide import Minimum
from autoscaler.policy import Schedule, load_policy
from autoscaler.schedule import LOOKAHEAD, ScheduleBook, held_at, local, state_at, status

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def at(text: str, zone: str = BERLIN, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold)


def shown(moment: datetime | None, zone: str = BERLIN) -> str | None:
    return None if moment is None else local(moment, zone)


def case(
    id: str, start: str, hours: float, now: datetime, expected: tuple[Any, ...], zone: str = BERLIN
) -> Any:
    return pytest.param(Schedule("s", start, hours * 3600, 3, zone), now, expected, id=id)


# Rows: id, start, duration in hours, now, (open?, when the open window began, the next change), local times.
# 2026's DST changes: Europe on 29 March (02:00 CET -> 03:00 CEST) and 25 October (03:00 CEST -> 02:00 CET);
# the US on 8 March (02:00 EST -> 03:00 EDT) and 1 November (02:00 EDT -> 01:00 EST).
# fmt: off
STATES = [
    case("a weekday window is open on a Monday afternoon", "0 8 * * MON-FRI", 10, at("2026-12-07T15:00"),
         (True, "2026-12-07 08:00 CET (Europe/Berlin)", "2026-12-07 18:00 CET (Europe/Berlin)")),
    case("a weekday window closed on Saturday next opens on Monday", "0 8 * * MON-FRI", 10, at("2026-12-05T09:00"),
         (False, None, "2026-12-07 08:00 CET (Europe/Berlin)")),
    case("a window is open at its very start", "0 8 * * *", 1, at("2026-12-07T08:00"),
         (True, "2026-12-07 08:00 CET (Europe/Berlin)", "2026-12-07 09:00 CET (Europe/Berlin)")),
    case("a window is closed at its very end", "0 8 * * *", 1, at("2026-12-07T09:00"),
         (False, None, "2026-12-08 08:00 CET (Europe/Berlin)")),
    case("a window that crosses midnight is open after it", "0 22 * * *", 4, at("2026-12-08T01:00"),
         (True, "2026-12-07 22:00 CET (Europe/Berlin)", "2026-12-08 02:00 CET (Europe/Berlin)")),
    case("windows that overlap are one stretch closing with the last", "0 */2 * * *", 3, at("2026-12-07T10:30"),
         (True, "2026-12-07 08:00 CET (Europe/Berlin)", None)),
    case("windows that touch are one stretch", "0 8,9 * * *", 1, at("2026-12-07T08:30"),
         (True, "2026-12-07 08:00 CET (Europe/Berlin)", "2026-12-07 10:00 CET (Europe/Berlin)")),
    case("a start skipped by the spring change opens right after the gap", "30 2 * * *", 1, at("2026-03-29T01:00"),
         (False, None, "2026-03-29 03:00 CEST (Europe/Berlin)")),
    case("the window skipped by the spring change is open after the gap", "30 2 * * *", 1, at("2026-03-29T03:30"),
         (True, "2026-03-29 03:00 CEST (Europe/Berlin)", "2026-03-29 04:00 CEST (Europe/Berlin)")),
    case("a window across the spring change lasts its elapsed duration", "0 1 * * *", 3, at("2026-03-29T03:30"),
         (True, "2026-03-29 01:00 CET (Europe/Berlin)", "2026-03-29 05:00 CEST (Europe/Berlin)")),
    case("a start in the repeated hour opens at its first pass", "30 2 * * *", 1, at("2026-10-25T02:45"),
         (True, "2026-10-25 02:30 CEST (Europe/Berlin)", "2026-10-25 02:30 CET (Europe/Berlin)")),
    case("a start in the repeated hour does not open again at its second pass", "30 2 * * *", 1,
         at("2026-10-25T02:45", fold=1),
         (False, None, "2026-10-26 02:30 CET (Europe/Berlin)")),
    case("after the repeated hour a window opened in its first pass is closed", "30 2 * * *", 1, at("2026-10-25T03:15"),
         (False, None, "2026-10-26 02:30 CET (Europe/Berlin)")),
    case("a window across the autumn change lasts its elapsed duration", "0 1 * * *", 3, at("2026-10-25T02:30", fold=1),
         (True, "2026-10-25 01:00 CEST (Europe/Berlin)", "2026-10-25 03:00 CET (Europe/Berlin)")),
    case("a start skipped in New York opens right after the gap", "30 2 * * *", 1, at("2026-03-08T01:00", NEW_YORK),
         (False, None, "2026-03-08 03:00 EDT (America/New_York)"), zone=NEW_YORK),
    case("a start repeated in New York opens once", "30 1 * * *", 1, at("2026-11-01T01:10", NEW_YORK, fold=1),
         (True, "2026-11-01 01:30 EDT (America/New_York)", "2026-11-01 01:30 EST (America/New_York)"), zone=NEW_YORK),
    case("a window in UTC shows UTC once", "0 12 * * *", 1, at("2026-12-07T12:30", "UTC"),
         (True, "2026-12-07 12:00 UTC", "2026-12-07 13:00 UTC"), zone="UTC"),
]
# fmt: on


@pytest.mark.parametrize(("schedule", "now", "expected"), STATES)
def test_state_at(schedule: Schedule, now: datetime, expected: tuple[Any, ...]) -> None:
    state = state_at(schedule, now)
    zone = schedule.timezone
    assert (state.active, shown(state.opened_at, zone), shown(state.next_change, zone)) == expected


def test_a_start_every_minute_with_longer_windows_never_closes_within_the_look_ahead() -> None:
    state = state_at(Schedule("always", "* * * * *", 120, 2, "UTC"), at("2026-12-07T12:00:30", "UTC"))
    assert (state.active, state.next_change) == (True, None)


EXPRESSIONS = ["0 8 * * MON-FRI", "30 2 * * *", "0 1 * * *", "*/20 * * * *", "15 */3 * * *", "0 0 1 * *"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(EXPRESSIONS),
    st.sampled_from([60, 600, 3600, 3 * 3600, 10 * 3600, 86400]),
    st.sampled_from([BERLIN, NEW_YORK, "UTC", "Australia/Lord_Howe"]),
    # 2026 through both DST changes of every zone above, to the second.
    st.integers(
        int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()), int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    ),
    st.floats(0, 1),
)
def test_a_schedule_keeps_its_state_until_its_next_change_and_then_flips(
    start: str, duration: int, zone: str, unix: int, fraction: float
) -> None:
    schedule = Schedule("s", start, duration, 2, zone)
    now = datetime.fromtimestamp(unix, UTC)
    state = state_at(schedule, now)
    if state.active:
        assert state.opened_at is not None
        assert state.opened_at <= now
        assert state.opened_at + timedelta(seconds=duration) > now
    if state.next_change is None:
        assert state.active
        return
    assert state.next_change > now
    between = now + (state.next_change - now) * fraction
    if between < state.next_change:
        assert state_at(schedule, between).active == state.active
    assert state_at(schedule, state.next_change).active != state.active


def policy(**overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "replicas": {"min": 1, "max": 6},
        "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 10}],
        "timezone": BERLIN,
        "schedules": [
            {"name": "office", "start": "0 8 * * MON-FRI", "duration_seconds": 36000, "min_replicas": 3},
            {
                "name": "launch",
                "start": "0 11 7 12 *",
                "duration_seconds": 7200,
                "min_replicas": 5,
                "min_workers": 2,
                "timezone": NEW_YORK,
            },
            {"name": "nightly", "start": "0 2 * * *", "duration_seconds": 3600, "min_replicas": 0},
        ],
    }
    raw.update(overrides)
    return load_policy(raw)


# Rows: id, now, (effective minimum and its reason, min_workers, held by).
# fmt: off
HELD = [
    pytest.param(at("2026-12-05T10:00"), (Minimum(1), 0, None), id="no window open: the policy's minimum"),
    pytest.param(at("2026-12-07T10:00"),
                 (Minimum(3, "schedule 'office' holds the minimum at 3 until 2026-12-07 18:00 CET (Europe/Berlin)"), 0, "office"),
                 id="one window open: its minimum, until it closes in its zone"),
    pytest.param(at("2026-12-07T11:30", NEW_YORK),
                 (Minimum(5, "schedule 'launch' holds the minimum at 5 until 2026-12-07 13:00 EST (America/New_York)"), 2, "launch"),
                 id="two windows open: the higher minimum, and the VM minimum"),
    pytest.param(at("2026-12-08T02:30"), (Minimum(1), 0, None),
                 id="a window open with a minimum below the policy's changes nothing"),
]
# fmt: on


@pytest.mark.parametrize(("now", "expected"), HELD)
def test_held_at(now: datetime, expected: tuple[Any, ...]) -> None:
    held = held_at(policy(), now)
    assert (held.minimum, held.min_workers, held.held_by) == expected


def test_the_next_change_is_the_first_of_any_schedule_in_its_own_zone_and_in_utc() -> None:
    body = status(held_at(policy(), at("2026-12-07T10:00")))
    assert body["next_change"] == {
        "schedule": "launch",
        "change": "start",
        "at": "2026-12-07T11:00:00-05:00",
        "at_utc": "2026-12-07T16:00:00+00:00",
    }
    assert [(s["name"], s["active"], s["next_change"]["change"]) for s in body["states"]] == [
        ("office", True, "end"),
        ("launch", False, "start"),
        ("nightly", False, "start"),
    ]
    assert (body["effective_min_replicas"], body["held_by"]) == (3, "office")


def test_the_book_recomputes_only_when_a_schedule_changes_or_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import autoscaler.schedule as module

    calls: list[datetime] = []
    real = module.held_at

    def counted(policy: Any, now: datetime) -> Any:
        calls.append(now)
        return real(policy, now)

    monkeypatch.setattr(module, "held_at", counted)
    book = ScheduleBook(policy())
    start = at("2026-12-07T10:00")
    assert book.at(start).minimum.replicas == 3
    assert book.at(start + timedelta(minutes=30)).minimum.replicas == 3  # nothing changed: reused
    assert len(calls) == 1
    assert book.at(at("2026-12-07T11:00", NEW_YORK)).minimum.replicas == 5  # 'launch' opened
    assert book.at(start - timedelta(hours=3)).minimum.replicas == 1  # the wall clock went back
    assert len(calls) == 3


def test_the_look_ahead_covers_the_longest_window() -> None:
    assert timedelta(days=1) <= LOOKAHEAD
