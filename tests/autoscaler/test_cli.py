"""The operator's commands: check-policy validates as preview does (the same error for the same bad value),
status and explain ask a running status API and answer in words."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from autoscaler.status import create_status_app
from components.config import ConfigError, load_stack_config
from harness.program import stack_config
from testbed.ports import free_loopback_port
from testbed.waiting import wait_for
from tests.autoscaler.test_controller import controller
from tests.components.test_config import edited, getter

ROOT = Path(__file__).resolve().parents[2]


def autoscaler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def stack_file(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def test_check_policy_describes_a_valid_stack_config() -> None:
    result = autoscaler("check-policy", "stacks/Pulumi.local.yaml")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "stacks/Pulumi.local.yaml: valid policy",
        "  replicas 2 to 6, a decision every 2 s",
        "  target rule 'sessions': keep sessions_per_replica near 3",
        "  step rule 'queue': add 1 when queued_requests is above 0 for 4 s",
    ]


def test_check_policy_reads_a_policy_file_alone(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        '{"replicas": {"min": 0, "max": 3}, "targets": [{"name": "s", "metric": "queued_requests", "target": 4}]}'
    )
    result = autoscaler("check-policy", str(policy))
    assert result.returncode == 0
    assert result.stdout.splitlines()[1:] == [
        "  replicas 0 to 3, a decision every 2 s",
        "  target rule 's': keep queued_requests near 4",
    ]


# Each row: a bad value in the local stack's hostscale:autoscaler; check-policy must print preview's error.
BAD = [
    pytest.param("autoscaler.replicas.min", 9, id="min above max"),
    pytest.param("autoscaler.listen", "localhost:9100", id="listen not an IPv4 address"),
    pytest.param("autoscaler.scale_down.tolerance", 1.5, id="scale-in tolerance above 1"),
    pytest.param("autoscaler.windows", {"panic_seconds": 90}, id="panic window longer than the stable one"),
    pytest.param("autoscaler.targets.0.metrik", "x", id="a misspelt key"),
    pytest.param("autoscaler.interval_seconds", float("nan"), id="not a finite number"),
    pytest.param(
        "autoscaler.schedules",
        [{"name": "x", "start": "0 25 * * *", "duration_seconds": 60, "min_replicas": 2}],
        id="a schedule at hour 25",
    ),
    pytest.param("autoscaler.timezone", "Mars/Olympus", id="an unknown time zone"),
]


@pytest.mark.parametrize(("setting", "value"), BAD)
def test_check_policy_fails_with_the_error_preview_gives(tmp_path: Path, setting: str, value: Any) -> None:
    config = edited("local", setting, value)
    with pytest.raises(ConfigError) as preview:
        load_stack_config(getter(config))
    path = stack_file(tmp_path, config)
    result = autoscaler("check-policy", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"{path}: {preview.value}\n"


def test_check_policy_of_a_stack_without_a_policy_says_so(tmp_path: Path) -> None:
    config = {k: v for k, v in stack_config("local").items() if k != "hostscale:autoscaler"}
    result = autoscaler("check-policy", str(stack_file(tmp_path, config)))
    assert result.returncode == 2
    assert result.stderr.endswith(
        ": config.hostscale:autoscaler is missing: no autoscaler policy in this stack config\n"
    )


@pytest.fixture
def running() -> Iterator[str]:
    """A real status API on a free loopback port, over a controller that scaled out once."""
    loop, source, _, _ = controller()
    source.sessions_per_replica = 20
    loop.tick()
    port = free_loopback_port()
    server = uvicorn.Server(
        uvicorn.Config(create_status_app(loop), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("the status API", lambda: server.started, 10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_status_says_what_the_autoscaler_sees(running: str) -> None:
    result = autoscaler("status", "--url", running)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"autoscaler at {running}",
        "replicas: 2 asked of Swarm, 2 ready (UP in HAProxy), 4 desired",
        "metrics: sessions_per_replica 20",
        "stuck: nothing",
        "last decision: rule 'sessions': 20 vs target 10 asks for 4",
    ]


def test_explain_gives_each_change_and_its_reasons(running: str) -> None:
    result = autoscaler("explain", "--url", running)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "replicas: 2 asked of Swarm, 2 ready (UP in HAProxy), 4 desired"
    assert time.strptime(lines[1].split()[0], "%H:%M:%S")
    assert lines[1].split(" ", 1)[1] == "scaled out from 2 to 4, with 2 ready, because:"
    assert lines[2:] == ["  - rule 'sessions': 20 vs target 10 asks for 4"]


def test_status_of_an_autoscaler_that_does_not_answer_fails_saying_where() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    result = autoscaler("status", "--url", url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"autoscaler at {url} did not answer: ConnectError")


def test_the_service_still_starts_from_its_settings_file_only(tmp_path: Path) -> None:
    result = autoscaler("--settings", str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"autoscaler: invalid settings: settings file {tmp_path / 'missing.json'}:"
    )
