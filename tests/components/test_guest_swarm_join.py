"""The worker VM's Swarm join (components/guest_swarm_join.py), against a stand-in Engine API on a unix socket:
the token goes from its file into the request body, an engine already in a Swarm is left alone, a refused
join is retried and then fails. The script runs as the VM runs it: the file cloud-init writes, under python3."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import guest_swarm_join
from components.cloud_init import JOIN_SCRIPT, WorkerSettings, render_user_data

TOKEN = "SWMTKN-1-made-up-for-this-test"  # noqa: S105


@dataclass
class FakeEngine:
    """Answers GET /info with the node's Swarm state and POST /swarm/join with `join_status`."""

    socket_path: str
    state: str = "inactive"
    join_status: int = 200
    requests: list[tuple[str, str, Any]] = field(default_factory=list)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeEngine]:
    fake = FakeEngine(str(tmp_path / "docker.sock"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append(("GET", self.path, None))
            self.answer(200, {"Swarm": {"LocalNodeState": fake.state}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(("POST", self.path, body))
            if fake.join_status == 200:
                fake.state = "active"
                self.answer(200, None)
            else:
                self.answer(
                    fake.join_status, {"message": "A valid join token is necessary to join this cluster"}
                )

        def answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def address_string(self) -> str:  # a unix socket has no client address to log
            return "unix"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = socketserver.ThreadingUnixStreamServer(fake.socket_path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "swarm-join-token"
    path.write_text(TOKEN + "\n")
    return path


def test_the_vms_script_joins_with_the_token_from_its_file_in_the_request_body(
    engine: FakeEngine, token_file: Path, tmp_path: Path
) -> None:
    doc = yaml.safe_load(
        render_user_data(WorkerSettings("hs-worker-0", "ssh-ed25519 AAAA op", "10.77.0.1", TOKEN))
    )
    script = tmp_path / "swarm-join.py"
    script.write_text(next(f["content"] for f in doc["write_files"] if f["path"] == JOIN_SCRIPT))
    argv = [sys.executable, str(script), "10.77.0.1:2377", str(token_file), engine.socket_path]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert engine.requests == [
        ("GET", "/info", None),
        (
            "POST",
            "/swarm/join",
            {"ListenAddr": "0.0.0.0:2377", "RemoteAddrs": ["10.77.0.1:2377"], "JoinToken": TOKEN},
        ),
    ]
    assert TOKEN not in " ".join(argv)


def test_an_engine_already_in_the_swarm_is_left_alone(engine: FakeEngine, token_file: Path) -> None:
    engine.state = "active"
    assert (
        guest_swarm_join.join("10.77.0.1:2377", str(token_file), engine.socket_path, attempts=3, pause_s=0)
        == 0
    )
    assert engine.requests == [("GET", "/info", None)]


def test_a_refused_join_is_retried_then_fails_without_printing_the_token(
    engine: FakeEngine, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.join_status = 400
    assert (
        guest_swarm_join.join("10.77.0.1:2377", str(token_file), engine.socket_path, attempts=2, pause_s=0)
        == 1
    )
    assert [r[:2] for r in engine.requests] == [("GET", "/info"), ("POST", "/swarm/join")] * 2
    err = capsys.readouterr().err
    assert "swarm join, attempt 2: 400" in err
    assert "A valid join token is necessary" in err
    assert TOKEN not in err


def test_an_engine_not_started_yet_is_waited_for(tmp_path: Path, token_file: Path) -> None:
    missing = str(tmp_path / "no-engine.sock")
    assert guest_swarm_join.join("10.77.0.1:2377", str(token_file), missing, attempts=2, pause_s=0) == 1
