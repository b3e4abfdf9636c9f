"""The status API: /status, /events?since=, /metrics, and bad settings refusing to start."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from autoscaler.controller import Controller
from autoscaler.policy import load_policy
from autoscaler.service import build_app
from autoscaler.status import create_status_app
from testbed.waiting import wait_for
from tests.autoscaler import LOOPBACK
from tests.autoscaler.test_controller import POLICY, Clock, FakeReplicas, FakeSource, controller
from tests.autoscaler.test_controller_fleet import FakeFleet, two_vms
from tests.autoscaler.test_controller_fleet import loop as fleet_loop
from tests.autoscaler.test_settings import valid


def test_status_reports_counts_reasons_and_policy() -> None:
    loop, source, _, _ = controller()
    source.sessions_per_replica = 20
    loop.tick()
    body = TestClient(create_status_app(loop), base_url=LOOPBACK).get("/status").json()
    assert (body["current"], body["desired"], body["ready"]) == (2, 4, 2)
    assert body["reasons"] == ["rule 'sessions': 20 vs target 10 asks for 4"]
    assert body["policy"]["max_replicas"] == 10
    assert [change["desired"] for change in body["last_changes"]] == [4]


def test_status_reports_what_is_stuck() -> None:
    loop, source, _, clock = controller(
        load_policy({**POLICY, "deadlines": {"not_ready_seconds": 5}}), replicas=3
    )
    source.ready = 2  # one replica never becomes ready
    loop.tick()
    clock.now += 6
    loop.tick()
    body = TestClient(create_status_app(loop), base_url=LOOPBACK).get("/status").json()
    assert body["stuck"] == [
        "1 of 3 replicas not ready for 6 s (deadline 5 s): stuck pending or crash-looping"
    ]


def test_events_since_and_its_validation() -> None:
    loop, *_ = controller()
    loop.tick()
    loop.tick()
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
    assert [e["seq"] for e in client.get("/events", params={"since": 1}).json()["events"]] == [2]
    response = client.get("/events", params={"since": "-1"})
    assert response.status_code == 422
    assert response.json() == {"error": "since must be a non-negative integer, got '-1'"}


def test_metrics_expose_replicas_and_loop_overhead() -> None:
    loop, source, _, _ = controller()
    source.sessions_per_replica = 20
    loop.tick()
    text = TestClient(create_status_app(loop), base_url=LOOPBACK).get("/metrics").text
    assert 'hostscale_autoscaler_replicas{kind="desired"} 4.0' in text
    assert 'hostscale_autoscaler_scaling_actions_total{direction="up"} 1.0' in text
    assert 'hostscale_autoscaler_tick_seconds_avg{clock="cpu"}' in text
    assert "hostscale_autoscaler_sample_cpu_seconds_avg 0.0" in text  # no windows: no fast reads


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
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
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
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
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


def test_the_service_samples_between_ticks_and_a_burst_ticks_before_the_interval() -> None:
    """build_app's lifespan runs the sampler thread next to the loop (policy.windows), on the real clock."""
    policy = load_policy(
        {
            **POLICY,
            "interval_seconds": 30,  # no regular tick during the test: only the first, and the burst's
            "metrics_max_age_seconds": 60,
            "windows": {"sample_interval_seconds": 0.1, "stable_seconds": 30, "panic_seconds": 0.5},
        }
    )
    source = FakeSource(time.monotonic, sessions_per_replica=10)  # type: ignore[arg-type]
    swarm = FakeReplicas(2)
    loop = Controller(policy, source, swarm)
    with TestClient(build_app(loop)) as client:
        wait_for("the first tick", lambda: bool(loop.recent_events()), 10)
        wait_for("samples in the windows", lambda: len(loop.sample_cpu_seconds) >= 5, 10)
        source.sessions_per_replica = 40  # 4x the target on both replicas
        # Long before the 30 s interval; the panic window fills read by read, so the first early tick may ask
        # for less than the burst's 8 and the next reads wake the loop again.
        wait_for("the burst's early tick", lambda: bool(swarm.writes), 10)
        text = client.get("/metrics").text
    assert "hostscale_autoscaler_sample_cpu_seconds_avg 0.0\n" not in text
    scaled = next(event for event in loop.recent_events() if event.acted)
    panic = [reason for reason in scaled.reasons if reason.startswith("panic: over the last 0.5 s")]
    assert panic, scaled.reasons


def test_metrics_expose_bounds_last_tick_vms_and_power_on_failures() -> None:
    """What the alerting rules of observability/ read: the tier's bounds (at its maximum), the last tick's time
    (stuck), the warm pool by state and the power-ons that failed, counted once per event."""
    fleet = FakeFleet(two_vms())
    loop, source = fleet_loop(fleet)
    source.sessions_per_replica = 20
    fleet.errors = ["power_on w1 failed: CalledProcessError: virsh start w1", "drain w0 failed: APIError"]
    loop.tick()
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
    text = client.get("/metrics").text
    assert 'hostscale_autoscaler_replicas{kind="min"} 2.0' in text
    assert 'hostscale_autoscaler_replicas{kind="max"} 10.0' in text
    assert "hostscale_autoscaler_last_tick_timestamp_seconds 100.0" in text
    assert 'hostscale_autoscaler_vms{state="active"} 1.0' in text
    assert 'hostscale_autoscaler_vms{state="off"} 1.0' in text
    assert "hostscale_autoscaler_vm_power_on_failures_total 1.0" in text
    loop.tick()  # no new failure: the counter holds, a second scrape does not count the first event again
    assert "hostscale_autoscaler_vm_power_on_failures_total 1.0" in client.get("/metrics").text


def test_a_stack_without_vms_exposes_no_vm_states() -> None:
    loop, *_ = controller()
    loop.tick()
    text = TestClient(create_status_app(loop), base_url=LOOPBACK).get("/metrics").text
    assert "hostscale_autoscaler_vms{" not in text
    assert "hostscale_autoscaler_vm_power_on_failures_total 0.0" in text


def test_healthz_answers_by_the_age_of_the_last_tick() -> None:
    """Docker's health check: 503 before the first tick, 200 while the loop ticks, 503 once it has not
    finished a tick for five intervals (at least 15 s)."""
    loop, _, _, clock = controller()
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
    starting = client.get("/healthz")
    assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
    loop.tick()
    clock.now += 15
    ok = client.get("/healthz")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok", "last_tick_age_seconds": 15.0})
    clock.now += 0.5
    stuck = client.get("/healthz")
    assert (stuck.status_code, stuck.json()) == (
        503,
        {"status": "stuck", "last_tick_age_seconds": 15.5, "limit_seconds": 15.0},
    )


def test_events_last_keeps_the_newest_and_status_gives_the_last_seq() -> None:
    """The status page's first read: the last minutes of events, not all that are kept; and the seq by which
    it sees a restarted autoscaler."""
    loop, *_ = controller()
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
    assert client.get("/status").json()["seq"] == 0
    for _ in range(5):
        loop.tick()
    assert client.get("/status").json()["seq"] == 5
    assert [e["seq"] for e in client.get("/events", params={"since": 0, "last": 2}).json()["events"]] == [
        4,
        5,
    ]
    assert [e["seq"] for e in client.get("/events", params={"since": 4, "last": 3}).json()["events"]] == [5]


@pytest.mark.parametrize(
    "last", ["0", "-1", "two", "1" * 19], ids=["zero", "a negative number", "a word", "more than 18 digits"]
)
def test_events_last_must_be_a_positive_integer(last: str) -> None:
    loop, *_ = controller()
    response = TestClient(create_status_app(loop), base_url=LOOPBACK).get("/events", params={"last": last})
    assert response.status_code == 422
    assert response.json() == {"error": f"last must be a positive integer, got {last!r}"}


ALLOWED_HOSTS = [
    "127.0.0.1:9100",
    "127.0.0.1",
    "localhost:9100",
    "LOCALHOST",
    "[::1]:9100",
    "[::1]",
    "10.0.0.5:9100",
]
REFUSED_HOSTS = [
    "attacker.example:9100",
    "attacker.example",
    "localhost.attacker.example",
    "127.0.0.1.nip.io",
    "127.0.0.1:notaport",
    "[::1]x",
    "testserver",
]


@pytest.mark.parametrize("host", ALLOWED_HOSTS)
def test_the_listener_answers_a_request_addressed_to_an_ip_or_localhost(host: str) -> None:
    loop, *_ = controller()
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
    for path in ["/status", "/events", "/metrics", "/"]:
        assert client.get(path, headers={"host": host}).status_code == 200, (host, path)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_a_request_addressed_to_another_name_is_refused_as_dns_rebinding(host: str) -> None:
    # A page on attacker.example that resolved its name to 127.0.0.1 sends this Host: it must read nothing.
    loop, *_ = controller()
    client = TestClient(create_status_app(loop), base_url=LOOPBACK)
    for path in ["/status", "/events", "/metrics", "/", "/page/status.js", "/healthz"]:
        response = client.get(path, headers={"host": host})
        assert response.status_code == 421, (host, path)
        assert "DNS rebinding" in response.json()["error"]
        assert "policy" not in response.text
