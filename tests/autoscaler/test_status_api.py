"""The status API: /status, /events?since=, /metrics, and bad settings refusing to start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from starlette.testclient import TestClient

from autoscaler.status import create_status_app
from tests.autoscaler.test_controller import controller
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
