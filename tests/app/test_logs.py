"""The app's log: one JSON object per line, uvicorn's own lines included."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from app.logs import JsonFormatter
from testbed.ports import free_loopback_port


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.LogRecord("hostscale.app", logging.WARNING, __file__, 1, message, args, exc_info)
    made.created, made.msecs = 1_796_163_490.25, 250.0
    return made


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (
            record("503 for %s %s: %s", "GET", "/api/items", "timeout"),
            {"time": "2026-12-01T22:18:10.250Z", "level": "WARNING", "logger": "hostscale.app",
             "message": "503 for GET /api/items: timeout"},
        ),
        (
            record('{"desired": 4, "reasons": ["sessions"]}'),
            {"time": "2026-12-01T22:18:10.250Z", "level": "WARNING", "logger": "hostscale.app",
             "message": "event", "event": {"desired": 4, "reasons": ["sessions"]}},
        ),
        (
            record("{not json"),
            {"time": "2026-12-01T22:18:10.250Z", "level": "WARNING", "logger": "hostscale.app",
             "message": "{not json"},
        ),
    ],
    ids=["a message is formatted with its arguments", "a JSON object message is embedded as the event",
         "a message that only looks like JSON stays a message"],
)  # fmt: skip
def test_each_record_is_one_json_object(made: logging.LogRecord, expected: dict[str, object]) -> None:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    assert json.loads(line) == expected


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise ConnectionRefusedError("postgres")
    except ConnectionRefusedError as exc:
        line = JsonFormatter().format(record("tick failed", exc=exc))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "tick failed"
    assert parsed["exception"].splitlines()[-1] == "ConnectionRefusedError: postgres"


def test_the_server_logs_only_json_lines_uvicorns_included(tmp_path: object) -> None:
    """The real server, with a database that is not there: its start-up, its retries and uvicorn's lines."""
    password = os.path.join(str(tmp_path), "db_password")
    with open(password, "w") as handle:
        handle.write("unused\n")
    env = {
        **os.environ,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(free_loopback_port()),  # nothing listens there
        "DB_PASSWORD_FILE": password,
        "PORT": str(free_loopback_port()),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(3)
    process.send_signal(signal.SIGTERM)  # as Docker stops it: the drain, then uvicorn's shutdown
    out, err = process.communicate(timeout=30)
    lines = [line for line in (out + err).splitlines() if line]
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], not_json
    parsed = [json.loads(line) for line in lines]
    loggers = {line["logger"] for line in parsed}
    assert {"hostscale.app", "uvicorn.error"} <= loggers, lines
    assert any(line["message"].startswith("migrations waiting for the database") for line in parsed), lines


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
