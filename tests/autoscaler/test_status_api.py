"""The status API: /status, /events?since=, /metrics, and bad settings refusing to start."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from starlette.testclient import TestClient

from autoscaler.controller import Controller
from autoscaler.policy import load_policy
from autoscaler.status import create_status_app
from tests.autoscaler.test_controller import POLICY, Clock, FakeReplicas, FakeSource, controller
from tests.autoscaler.test_settings import valid


def test_status_reports_counts_reasons_and_policy() -> None:
    loop, source, _, _ = controller()
    source.sessions_per_replica = 20
    loop.tick()
    body = TestClient(create_status_app(loop)).get("/status").json()
    assert (body["current"], body["desired"], body["ready"]) == (2, 4, 2)
    assert body["reasons"] == ["rule 'sessions': 20 vs target 10 asks for 4"]
    assert body["policy"]["max_replicas"] == 10
    assert [change["desired"] for change in body["last_changes"]] == [4]


def test_events_since_and_its_validation() -> None:
    loop, *_ = controller()
    loop.tick()
    loop.tick()
    client = TestClient(create_status_app(loop))
    assert [e["seq"] for e in client.get("/events", params={"since": 1}).json()["events"]] == [2]
    response = client.get("/events", params={"since": "-1"})
    assert response.status_code == 422
    assert response.json() == {"error": "since must be a non-negative integer, got '-1'"}


def test_metrics_expose_replicas_and_loop_overhead() -> None:
    loop, source, _, _ = controller()
    source.sessions_per_replica = 20
    loop.tick()
    text = TestClient(create_status_app(loop)).get("/metrics").text
    assert 'hostscale_autoscaler_replicas{kind="desired"} 4.0' in text
    assert 'hostscale_autoscaler_scaling_actions_total{direction="up"} 1.0' in text
    assert 'hostscale_autoscaler_tick_seconds_avg{clock="cpu"}' in text


def test_bad_settings_refuse_to_start_naming_the_key(tmp_path: Path) -> None:
    raw = valid()
    raw["policy"] = {"replicas": {"min": 5, "max": 3}, "targets": []}
    settings = tmp_path / "autoscaler.json"
    settings.write_text(json.dumps(raw))
    result = subprocess.run(
        [sys.executable, "-m", "autoscaler", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "autoscaler: invalid settings: policy.replicas.min is 5 but policy.replicas.max is 3"
    )


def test_scaling_actions_total_keeps_counting_after_the_event_buffer_wraps() -> None:
    """Prometheus reads a counter that falls as a restart: the count must not be taken over the kept events."""
    clock = Clock()
    source, swarm = FakeSource(clock), FakeReplicas(2)
    loop = Controller(load_policy(POLICY), source, swarm, clock=clock, wall_clock=clock, keep_events=3)
    client = TestClient(create_status_app(loop))
    acted = {"up": 0, "down": 0}
    for load in (20, 1, 20, 1, 20, 1, 20, 1):  # each tick swings the count up to 4, then back to 2
        clock.now += 600  # past every window and cooldown
        source.ready, source.sessions_per_replica = swarm.count, load
        event = loop.tick()
        assert event.acted, event
        acted[event.direction] += 1
    assert acted == {"up": 4, "down": 4}
    text = client.get("/metrics").text
    assert 'hostscale_autoscaler_scaling_actions_total{direction="up"} 4.0' in text
    assert 'hostscale_autoscaler_scaling_actions_total{direction="down"} 4.0' in text
    assert [e["seq"] for e in client.get("/events").json()["events"]] == [6, 7, 8]


def test_status_events_and_metrics_answer_while_the_loop_ticks() -> None:
    """The loop appends from its own thread while the API reads: no read may see the buffer change under it
    ("deque mutated during iteration" was a 500)."""
    loop, *_ = controller()
    for _ in range(2000):  # a full buffer makes every read iterate for a while
        loop.tick()
    client = TestClient(create_status_app(loop))
    stop = threading.Event()

    def tick_until_stopped() -> None:
        while not stop.is_set():
            loop.tick()

    ticker = threading.Thread(target=tick_until_stopped)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so a read meets the loop's appends
    ticker.start()
    try:
        codes = [
            client.get(path).status_code for _ in range(40) for path in ("/metrics", "/events", "/status")
        ]
    finally:
        stop.set()
        ticker.join(timeout=10)
        sys.setswitchinterval(previous)
    assert codes == [200] * 120


def test_the_log_keeps_decisions_and_drops_a_line_per_metrics_read() -> None:
    # In a fresh interpreter, as the process starts: pytest's own logging set-up would hide what it does.
    probe = (
        "import logging; from autoscaler.service import configure_logging; configure_logging(); "
        "print(logging.getLogger('hostscale.autoscaler').isEnabledFor(logging.INFO), "
        "logging.getLogger('httpx').isEnabledFor(logging.INFO))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.split() == ["True", "False"], "decisions logged, httpx's line per metrics read not"
