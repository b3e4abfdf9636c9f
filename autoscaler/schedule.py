"""Schedules: which of the policy's windows are open at a moment, when each opens or closes next, and the
minimum they hold. Pure: the moment comes in as an aware datetime, so tests drive it with any clock.

A window opens at each time its `start` cron expression matches in the schedule's time zone (cronsim, which
follows Debian's cron through DST changes: a fixed time skipped by the spring change runs right after the gap,
one repeated by the autumn change runs once, at its first occurrence) and stays open for `duration_s` of elapsed
time. Windows of one schedule that overlap or touch are one open stretch: it closes when the last one does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim

from autoscaler.decide import Minimum
from autoscaler.policy import Policy, Schedule

# How far ahead the end of an open stretch is looked for: a start every minute with a window over a minute
# never closes, and a day of such starts is 1440 steps of cronsim.
LOOKAHEAD = timedelta(days=1)


@dataclass(frozen=True)
class ScheduleState:
    schedule: Schedule
    active: bool
    opened_at: datetime | None  # active: when the earliest of its windows still open began (UTC)
    # Active: when it closes (None: not within LOOKAHEAD); inactive: when it opens next. UTC.
    next_change: datetime | None

    @property
    def change(self) -> Literal["start", "end"]:
        return "end" if self.active else "start"


@dataclass(frozen=True)
class Held:
    """What the schedules hold at one moment."""

    at: datetime
    states: tuple[ScheduleState, ...]
    minimum: Minimum  # the effective minimum replicas (the policy's when no schedule raises it)
    min_workers: int  # the most worker VMs an open schedule keeps active (0: none)
    held_by: str | None = None  # the schedule that sets the minimum, when one raises it

    @property
    def next_change(self) -> ScheduleState | None:
        """The schedule that changes first from now on (opens or closes), if any changes within LOOKAHEAD."""
        changing = [state for state in self.states if state.next_change is not None]
        return min(changing, key=lambda state: state.next_change or self.at, default=None)

    @property
    def valid_until(self) -> datetime:
        """Nothing changes before this moment: the states can be reused until then."""
        change = self.next_change
        if change is None or change.next_change is None:
            return self.at + LOOKAHEAD / 2
        return change.next_change


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _starts(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """The schedule's start times after `after`, in UTC, in order."""
    for start in CronSim(schedule.start, after.astimezone(_zone(schedule.timezone))):
        yield start.astimezone(UTC)


def state_at(schedule: Schedule, now: datetime) -> ScheduleState:
    """Whether `schedule` is open at `now` (an aware datetime) and when that changes. Arithmetic is done in UTC:
    an aware datetime plus a timedelta is wall-clock arithmetic in its own zone, wrong across a DST change."""
    now = now.astimezone(UTC)
    duration = timedelta(seconds=schedule.duration_s)
    starts = _starts(schedule, now - duration)
    # cronsim reads fixed-time expressions on the local wall clock: after a time in the repeated hour it can
    # return that hour's first pass, before `after`; such a window has already closed.
    start = next(start for start in starts if start + duration > now)
    if start > now:
        return ScheduleState(schedule, False, None, start)
    closes: datetime | None = start + duration
    for following in starts:
        assert closes is not None
        if following > closes:
            break
        if following > now + LOOKAHEAD:
            closes = None
            break
        closes = max(closes, following + duration)
    return ScheduleState(schedule, True, start, closes)


def local(at: datetime, zone: str) -> str:
    """`at` on the zone's wall clock, with the zone's abbreviation (and its name when they differ)."""
    shown = at.astimezone(_zone(zone)).strftime("%Y-%m-%d %H:%M %Z")
    return shown if shown.endswith(f" {zone}") else f"{shown} ({zone})"


def held_at(policy: Policy, now: datetime) -> Held:
    states = tuple(state_at(schedule, now) for schedule in policy.schedules)
    raising = [s for s in states if s.active and s.schedule.min_replicas > policy.min_replicas]
    min_workers = max((s.schedule.min_workers for s in states if s.active), default=0)
    if not raising:
        return Held(now, states, Minimum(policy.min_replicas), min_workers)
    top = max(raising, key=lambda state: state.schedule.min_replicas)  # the first of equals, in policy order
    replicas = min(top.schedule.min_replicas, policy.max_replicas)
    until = (
        f"until {local(top.next_change, top.schedule.timezone)}"
        if top.next_change is not None
        else f"with no end before {local(now + LOOKAHEAD, top.schedule.timezone)}"
    )
    reason = f"schedule '{top.schedule.name}' holds the minimum at {replicas} {until}"
    return Held(now, states, Minimum(replicas, reason), min_workers, top.schedule.name)


class ScheduleBook:
    """held_at() for a running loop, recomputed only when a schedule opens or closes (each tick would otherwise
    walk cronsim again), or when the wall clock moved backwards."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._held: Held | None = None

    def at(self, now: datetime) -> Held:
        with self._lock:
            held = self._held
            if held is None or not held.at <= now < held.valid_until:
                held = self._held = held_at(self.policy, now)
            return held

    def last(self) -> Held | None:
        with self._lock:
            return self._held


def _moment(at: datetime | None, zone: str) -> dict[str, str] | None:
    if at is None:
        return None
    return {"at": at.astimezone(_zone(zone)).isoformat(), "at_utc": at.astimezone(UTC).isoformat()}


def status(held: Held | None) -> dict[str, Any]:
    """/status' `schedules`: the effective minimum, the next change, and each schedule's state."""
    if held is None:  # before the first tick
        return {
            "effective_min_replicas": None,
            "effective_min_workers": None,
            "held_by": None,
            "reason": None,
            "next_change": None,
            "states": [],
        }
    first = held.next_change
    return {
        "effective_min_replicas": held.minimum.replicas,
        "effective_min_workers": held.min_workers,
        "held_by": held.held_by,
        "reason": held.minimum.reason,
        "next_change": None
        if first is None
        else {
            "schedule": first.schedule.name,
            "change": first.change,
            **(_moment(first.next_change, first.schedule.timezone) or {}),
        },
        "states": [
            {
                "name": state.schedule.name,
                "active": state.active,
                "min_replicas": state.schedule.min_replicas,
                "min_workers": state.schedule.min_workers,
                "timezone": state.schedule.timezone,
                "opened_at": _moment(state.opened_at, state.schedule.timezone),
                "next_change": None
                if state.next_change is None
                else {"change": state.change, **(_moment(state.next_change, state.schedule.timezone) or {})},
            }
            for state in held.states
        ],
    }
