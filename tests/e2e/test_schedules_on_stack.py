"""Schedules on a deployed stack (testbed/stack.py): a window open now, read in Asia/Kolkata inside the autoscaler
image, raises the app's replicas to its minimum with no load, and /status, /metrics and explain show it; a
window that is not open (in America/New_York) leaves the size alone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import docker
import httpx
import pytest

from testbed.stack import TestStack, stand_up
from testbed.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
KOLKATA, NEW_YORK = ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
# A window that opened two minutes ago (Kolkata is UTC+05:30: a half-hour zone, so a database-less UTC
# fallback could not pass) and one that opens in six hours.
OPENED = (datetime.now(UTC) - timedelta(minutes=2)).astimezone(KOLKATA).replace(second=0, microsecond=0)
CLOSES = OPENED + timedelta(hours=1)
LATER = (datetime.now(UTC) + timedelta(hours=6)).astimezone(NEW_YORK).replace(second=0, microsecond=0)
POLICY = {
    "replicas": {"min": 1, "max": 4},
    "interval_seconds": 1,
    "metrics_max_age_seconds": 5,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
    "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 0},
    "scale_down": {"stabilization_seconds": 4, "cooldown_seconds": 2, "max_step": 1},
    "timezone": "Asia/Kolkata",
    "schedules": [
        {
            "name": "now",
            "start": f"{OPENED.minute} {OPENED.hour} * * *",
            "duration_seconds": 3600,
            "min_replicas": 3,
        },
        {
            "name": "later",
            "start": f"{LATER.minute} {LATER.hour} * * *",
            "duration_seconds": 60,
            "min_replicas": 4,
            "timezone": "America/New_York",
        },
    ],
}
HOLDS = f"schedule 'now' holds the minimum at 3 until {CLOSES:%Y-%m-%d %H:%M} IST (Asia/Kolkata)"


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[TestStack]:
    with stand_up(docker_client, autoscaler=POLICY) as deployed:
        yield deployed


def status(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(f"{url}/status", timeout=2)
    except httpx.HTTPError:
        return {}
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return body


@pytest.fixture(scope="module")
def raised(stack: TestStack) -> dict[str, Any]:
    """/status once the open window's minimum runs and is UP in HAProxy, with no load at all."""
    url = stack.autoscaler_url
    wait_for("3 replicas running and UP", lambda: (status(url).get("ready"), stack.replicas()) == (3, 3), 120)
    return status(url)


def test_an_open_window_raises_the_replicas_with_no_load(stack: TestStack, raised: dict[str, Any]) -> None:
    assert (raised["current"], raised["ready"]) == (3, 3)
    assert len(stack.running_tasks()) == 3
    assert HOLDS in raised["reasons"]


def test_status_shows_both_schedules_and_the_next_change(raised: dict[str, Any]) -> None:
    schedules = raised["schedules"]
    assert (schedules["effective_min_replicas"], schedules["held_by"]) == (3, "now")
    now, later = schedules["states"]
    assert (now["active"], now["opened_at"]["at"], now["next_change"]) == (
        True,
        OPENED.isoformat(),
        {"change": "end", "at": CLOSES.isoformat(), "at_utc": CLOSES.astimezone(UTC).isoformat()},
    )
    assert (later["active"], later["next_change"]["change"], later["next_change"]["at"]) == (
        False,
        "start",
        LATER.isoformat(),
    )
    assert schedules["next_change"]["schedule"] == "now"


def test_a_window_not_open_leaves_the_size_alone(stack: TestStack, raised: dict[str, Any]) -> None:
    # 'later' asks for 4: a closed window applied by mistake would show within a few 1 s ticks.
    seen = set()
    for _ in range(5):
        time.sleep(1.0)
        seen.add(status(stack.autoscaler_url).get("desired"))
    assert seen == {3}
    assert stack.replicas() == 3


def test_metrics_and_explain_name_the_schedule(stack: TestStack, raised: dict[str, Any]) -> None:
    metrics = httpx.get(f"{stack.autoscaler_url}/metrics", timeout=5).text.splitlines()
    assert 'hostscale_autoscaler_schedule_min_replicas{schedule="now"} 3.0' in metrics
    assert 'hostscale_autoscaler_schedule_min_replicas{schedule="later"} 0.0' in metrics
    assert "hostscale_autoscaler_effective_min_replicas 3.0" in metrics
    explain = subprocess.run(
        [sys.executable, "-m", "autoscaler", "explain", "--url", stack.autoscaler_url, "--last", "20"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert explain.returncode == 0, explain.stderr
    assert f"  - {HOLDS}" in explain.stdout.splitlines()
