"""The loop with schedules, on a fake wall clock: an open window raises the replicas with no load, and the VM
minimum; a closed one changes nothing; /status, /metrics, status and explain say so."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient

from autoscaler.cli import describe_changes, describe_policy, describe_status
from autoscaler.controller import Controller
from autoscaler.fleet import FleetPolicy
from autoscaler.policy import load_policy
from autoscaler.status import create_status_app
from tests.autoscaler import LOOPBACK
from tests.autoscaler.test_controller import POLICY, Clock, FakeReplicas, FakeSource
from tests.autoscaler.test_controller_fleet import FakeFleet, two_vms

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 7 December 2026, 10:00 in Berlin: 'office' (weekdays 08:00-18:00) is open, 'evening' is not.
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN).timestamp()
SCHEDULES = [
    {
        "name": "office",
        "start": "0 8 * * MON-FRI",
        "duration_seconds": 36000,
        "min_replicas": 4,
        "min_workers": 2,
    },
    {
        "name": "evening",
        "start": "0 19 * * *",
        "duration_seconds": 7200,
        "min_replicas": 6,
        "timezone": "UTC",
    },
]
HOLDS = "schedule 'office' holds the minimum at 4 until 2026-12-07 18:00 CET (Europe/Berlin)"


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def loop(
    schedules: list[dict[str, Any]], wall: float = MONDAY_10, **kwargs: Any
) -> tuple[Controller, FakeReplicas]:
    clock = Clock()
    source = FakeSource(clock, sessions_per_replica=0.0, ready=2)
    swarm = FakeReplicas(2)
    policy = load_policy({**POLICY, "timezone": "Europe/Berlin", "schedules": schedules})
    return Controller(policy, source, swarm, clock, WallClock(wall), **kwargs), swarm


def test_an_open_window_raises_the_replicas_with_no_load() -> None:
    controller, swarm = loop(SCHEDULES)
    event = controller.tick()
    assert swarm.writes == [4]
    assert (event.desired, event.direction) == (4, "up")
    assert event.reasons[-1] == HOLDS


def test_a_closed_window_leaves_the_size_alone() -> None:
    controller, swarm = loop([SCHEDULES[1]])
    event = controller.tick()
    assert (swarm.writes, event.desired, event.direction) == ([], 2, "none")


def test_an_open_window_keeps_its_worker_vms_active() -> None:
    fleet = FakeFleet(two_vms())
    controller, _ = loop(SCHEDULES, fleet=(fleet, FleetPolicy(("w0", "w1"), 4, 30)))
    controller.tick()  # 4 replicas fit on one worker (4 per VM): only the schedule asks for the second
    assert [(step.verb, step.vm) for step in fleet.applied] == [("power_on", "w1")]


def test_status_shows_each_schedule_the_effective_minimum_and_the_next_change() -> None:
    controller, _ = loop(SCHEDULES)
    controller.tick()
    body = TestClient(create_status_app(controller), base_url=LOOPBACK).get("/status").json()
    assert body["schedules"] == {
        "effective_min_replicas": 4,
        "effective_min_workers": 2,
        "held_by": "office",
        "reason": HOLDS,
        "next_change": {
            "schedule": "office",
            "change": "end",
            "at": "2026-12-07T18:00:00+01:00",
            "at_utc": "2026-12-07T17:00:00+00:00",
        },
        "states": [
            {
                "name": "office",
                "active": True,
                "min_replicas": 4,
                "min_workers": 2,
                "timezone": "Europe/Berlin",
                "opened_at": {"at": "2026-12-07T08:00:00+01:00", "at_utc": "2026-12-07T07:00:00+00:00"},
                "next_change": {
                    "change": "end",
                    "at": "2026-12-07T18:00:00+01:00",
                    "at_utc": "2026-12-07T17:00:00+00:00",
                },
            },
            {
                "name": "evening",
                "active": False,
                "min_replicas": 6,
                "min_workers": 0,
                "timezone": "UTC",
                "opened_at": None,
                "next_change": {
                    "change": "start",
                    "at": "2026-12-07T19:00:00+00:00",
                    "at_utc": "2026-12-07T19:00:00+00:00",
                },
            },
        ],
    }
    assert body["policy"]["schedules"][0]["start"] == "0 8 * * MON-FRI"


def test_metrics_expose_each_schedule_and_the_effective_minimum() -> None:
    controller, _ = loop(SCHEDULES)
    controller.tick()
    text = TestClient(create_status_app(controller), base_url=LOOPBACK).get("/metrics").text
    samples = dict(
        line.rsplit(" ", 1)
        for line in text.splitlines()
        if ("schedule" in line or "effective" in line) and not line.startswith("#")
    )
    assert {name: float(value) for name, value in samples.items()} == {
        "hostscale_autoscaler_effective_min_replicas": 4.0,
        'hostscale_autoscaler_schedule_active{schedule="office"}': 1.0,
        'hostscale_autoscaler_schedule_active{schedule="evening"}': 0.0,
        'hostscale_autoscaler_schedule_min_replicas{schedule="office"}': 4.0,
        'hostscale_autoscaler_schedule_min_replicas{schedule="evening"}': 0.0,
        'hostscale_autoscaler_schedule_next_change_timestamp_seconds{change="end",schedule="office"}': datetime(
            2026, 12, 7, 17, 0, tzinfo=UTC
        ).timestamp(),
        'hostscale_autoscaler_schedule_next_change_timestamp_seconds{change="start",schedule="evening"}': datetime(
            2026, 12, 7, 19, 0, tzinfo=UTC
        ).timestamp(),
    }


def test_status_and_explain_say_which_schedule_holds_the_minimum_and_until_when() -> None:
    controller, _ = loop(SCHEDULES)
    controller.tick()
    body = TestClient(create_status_app(controller), base_url=LOOPBACK).get("/status").json()
    assert describe_status(body, "http://127.0.0.1:9100")[3:5] == [
        f"schedules: {HOLDS}; open: office",
        "next schedule change: 'office' closes at 2026-12-07T18:00:00+01:00 (2026-12-07T17:00:00+00:00)",
    ]
    assert describe_changes(body, 1)[-1] == f"  - {HOLDS}"


def test_check_policy_describes_each_schedule() -> None:
    policy = load_policy({**POLICY, "timezone": "Europe/Berlin", "schedules": SCHEDULES})
    assert describe_policy(policy)[-2:] == [
        "schedule 'office': at least 4 replicas and 2 worker VMs for 36000 s from each '0 8 * * MON-FRI' "
        "(Europe/Berlin)",
        "schedule 'evening': at least 6 replicas for 7200 s from each '0 19 * * *' (UTC)",
    ]
