"""The readiness step's verdicts, from HAProxy's own CSV stats export.

data/haproxy_stats.csv is a real export of HAProxy 2.6 (the project's image) with a backend `app` holding a
server that passes its check (up-1), one whose check gets 503 (bad-1), one whose port is closed (closed-1)
and two server-template slots no DNS name filled (app-1, app-2). The tables below rewrite the state columns of
those real rows.
"""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

import pytest

from components import readiness
from components.readiness import Target, Verdict, backend_verdict, check, tcp_connect, wait_ready
from harness.program import stack_config
from harness.recording import record_program
from testbed.ports import free_loopback_port

CAPTURED = (Path(__file__).parent / "data" / "haproxy_stats.csv").read_text()
HEADER = CAPTURED.splitlines()[0].removeprefix("# ").split(",")


def _row(svname: str) -> dict[str, str]:
    rows = csv.DictReader(CAPTURED.splitlines()[1:], fieldnames=HEADER)
    return next(r for r in rows if r["pxname"] == "app" and r["svname"] == svname)


def stats(*servers: tuple[str, str, str, str]) -> str:
    """An export of backend `app` with these (name, status, check_status, check_code) servers, each a real
    row of the capture with its state columns rewritten, plus the backend's own row."""
    out = io.StringIO()
    out.write("# " + ",".join(HEADER) + "\n")
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
    for name, status, check_status, check_code in servers:
        writer.writerow(
            {
                **_row("bad-1"),
                "svname": name,
                "status": status,
                "check_status": check_status,
                "check_code": check_code,
            }
        )
    writer.writerow(_row("BACKEND"))
    return out.getvalue()


UNFILLED = ("app-1", "MAINT (resolution)", "", "")

VERDICTS = [
    pytest.param(CAPTURED, 1, Verdict(True, ()), id="the real capture has one server UP, enough for one"),
    pytest.param(
        CAPTURED,
        2,
        Verdict(False, ("2 of 3 replicas DOWN in HAProxy: L4CON (1), L7STS 503 (1)", "1 of 2 replicas UP")),
        id="the real capture names each failing check when two are wanted",
    ),
    pytest.param(
        stats(("app-1", "DOWN", "L7STS", "503"), ("app-2", "DOWN", "L7STS", "503"), UNFILLED),
        2,
        Verdict(False, ("2 of 2 replicas DOWN in HAProxy: L7STS 503", "0 of 2 replicas UP")),
        id="two replicas whose health check answers 503 are not ready",
    ),
    pytest.param(
        stats(("app-1", "UP", "L7OK", "200"), ("app-2", "UP 1/3", "L7STS", "503"), UNFILLED),
        2,
        Verdict(True, ()),
        id="a replica UP with one failed check is still in rotation",
    ),
    pytest.param(
        stats(UNFILLED, ("app-2", "MAINT (resolution)", "", "")),
        2,
        Verdict(
            False,
            (
                "HAProxy knows 0 of the 2 replicas wanted (the others are not in DNS yet)",
                "0 of 2 replicas UP",
            ),
        ),
        id="slots no replica's address filled are no replicas",
    ),
    pytest.param(
        stats(("app-1", "UP", "L7OK", "200"), ("app-2", "DOWN", "INI", ""), UNFILLED),
        3,
        Verdict(
            False,
            (
                "1 of 2 replicas DOWN in HAProxy: INI",
                "HAProxy knows 2 of the 3 replicas wanted (the others are not in DNS yet)",
                "1 of 3 replicas UP",
            ),
        ),
        id="a replica not checked yet and one missing from DNS are both named",
    ),
    pytest.param(
        stats(("app-1", "MAINT", "", ""), ("app-2", "UP", "L7OK", "200")),
        2,
        Verdict(False, ("1 of 2 replicas MAINT in HAProxy: no check yet", "1 of 2 replicas UP")),
        id="a replica in maintenance is not UP",
    ),
    pytest.param(
        stats(UNFILLED),
        0,
        Verdict(True, ()),
        id="with no replica wanted HAProxy needs none UP",
    ),
]


@pytest.mark.parametrize(("export", "wanted", "expected"), VERDICTS)
def test_backend_verdict(export: str, wanted: int, expected: Verdict) -> None:
    assert backend_verdict(export, "app", wanted) == expected


def test_a_backend_haproxy_does_not_have_is_named() -> None:
    assert backend_verdict(CAPTURED, "web", 1) == Verdict(
        False, ("HAProxy has no backend 'web' with servers",)
    )


TARGET = Target("http://127.0.0.1:8080", "/healthz", "http://127.0.0.1:8404/stats", "app", 2)
TWO_UP = stats(("app-1", "UP", "L7OK", "200"), ("app-2", "UP", "L7OK", "200"))


def answers(**by_url: tuple[int | None, str | None, str]) -> readiness.Fetch:
    return lambda url: by_url[url]


CHECKS = [
    pytest.param(
        {"stats": (200, None, TWO_UP), "probe": (200, None, "")},
        2,
        Verdict(True, ()),
        id="two replicas UP and a request answered 200 is ready",
    ),
    pytest.param(
        {"stats": (200, None, TWO_UP), "probe": (503, None, "")},
        2,
        Verdict(False, ("GET http://127.0.0.1:8080/healthz through the load balancer answered 503",)),
        id="replicas UP but a request answered 503 is not ready",
    ),
    pytest.param(
        {
            "stats": (None, "ConnectionRefusedError: refused", ""),
            "probe": (None, "TimeoutError: timed out", ""),
        },
        2,
        Verdict(
            False,
            (
                "HAProxy's stats at http://127.0.0.1:8404/stats failed: ConnectionRefusedError: refused",
                "GET http://127.0.0.1:8080/healthz through the load balancer failed: TimeoutError: timed out",
            ),
        ),
        id="no answer from HAProxy at all names both addresses",
    ),
]


@pytest.mark.parametrize(("fetched", "wanted", "expected"), CHECKS)
def test_check(
    fetched: dict[str, tuple[int | None, str | None, str]], wanted: int, expected: Verdict
) -> None:
    target = Target(TARGET.url, TARGET.path, TARGET.stats_url, TARGET.backend, wanted)
    fetch = answers(
        **{
            "http://127.0.0.1:8404/stats;csv": fetched["stats"],
            "http://127.0.0.1:8080/healthz": fetched["probe"],
        }
    )
    assert check(target, fetch) == expected


def test_with_no_replica_wanted_the_frontend_accepting_a_connection_is_ready_and_no_request_is_sent() -> None:
    # A request would be held by HAProxy until a replica came, and be the demand that starts one.
    target = Target(TARGET.url, TARGET.path, TARGET.stats_url, TARGET.backend, 0)
    fetch = answers(**{"http://127.0.0.1:8404/stats;csv": (200, None, stats(UNFILLED))})
    connected: list[str] = []
    assert check(target, fetch, lambda url: connected.append(url)) == Verdict(True, ())
    assert connected == ["http://127.0.0.1:8080"]


def test_with_no_replica_wanted_a_frontend_that_refuses_connections_is_not_ready() -> None:
    target = Target(TARGET.url, TARGET.path, TARGET.stats_url, TARGET.backend, 0)
    fetch = answers(**{"http://127.0.0.1:8404/stats;csv": (200, None, stats(UNFILLED))})
    assert check(target, fetch, lambda url: "ConnectionRefusedError: refused") == Verdict(
        False,
        (
            "the load balancer at http://127.0.0.1:8080 accepts no connection: ConnectionRefusedError: refused",
        ),
    )


def test_a_real_listening_socket_is_connected_and_a_closed_port_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert tcp_connect(f"http://127.0.0.1:{port}") is None
    refused = tcp_connect(f"http://127.0.0.1:{port}")
    assert refused is not None
    assert refused.startswith("ConnectionRefusedError")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_until_the_replicas_come_up() -> None:
    clock = FakeClock()
    down = stats(("app-1", "DOWN", "L7STS", "503"), ("app-2", "DOWN", "L7STS", "503"))

    def fetch(url: str) -> tuple[int | None, str | None, str]:
        if url.endswith(";csv"):
            return 200, None, TWO_UP if clock.now >= 3 else down
        return (200 if clock.now >= 3 else 503), None, ""

    verdict, elapsed = wait_ready(TARGET, 10, fetch, clock, clock.sleep)
    assert (verdict, elapsed) == (Verdict(True, ()), 3.0)


def test_gives_up_at_the_deadline_with_the_last_reasons() -> None:
    clock = FakeClock()
    down = stats(("app-1", "DOWN", "L7STS", "503"), ("app-2", "DOWN", "L7STS", "503"))

    def fetch(url: str) -> tuple[int | None, str | None, str]:
        return (200, None, down) if url.endswith(";csv") else (503, None, "")

    verdict, elapsed = wait_ready(TARGET, 5, fetch, clock, clock.sleep)
    assert elapsed == 5.0
    assert verdict == Verdict(
        False,
        (
            "2 of 2 replicas DOWN in HAProxy: L7STS 503",
            "0 of 2 replicas UP",
            "no GET http://127.0.0.1:8080/healthz sent: with no replica UP, HAProxy holds a request until one is",
        ),
    )


def test_with_no_replica_up_no_request_is_sent_since_haproxy_would_hold_it() -> None:
    down = stats(("app-1", "DOWN", "L4CON", ""), ("app-2", "UP 1/3", "L7OK", "200"))
    sent: list[str] = []

    def fetch(url: str) -> tuple[int | None, str | None, str]:
        sent.append(url)
        return (200, None, down) if url.endswith(";csv") else (200, None, "")

    # One replica still in rotation ("UP 1/3"): the request is sent.
    assert check(TARGET, fetch).reasons == ("1 of 2 replicas DOWN in HAProxy: L4CON", "1 of 2 replicas UP")
    assert sent == ["http://127.0.0.1:8404/stats;csv", "http://127.0.0.1:8080/healthz"]
    down = stats(("app-1", "DOWN", "L4CON", ""), ("app-2", "DOWN", "L4CON", ""))
    sent.clear()
    assert check(TARGET, fetch).reasons[-1] == (
        "no GET http://127.0.0.1:8080/healthz sent: with no replica UP, HAProxy holds a request until one is"
    )
    assert sent == ["http://127.0.0.1:8404/stats;csv"]


def test_the_step_fails_naming_what_is_not_ready(capsys: pytest.CaptureFixture[str]) -> None:
    """The command the program runs, against a loopback port nothing listens on."""
    port = free_loopback_port()
    code = readiness.main(
        [
            f"--url=http://127.0.0.1:{port}",
            f"--stats-url=http://127.0.0.1:{port}/stats",
            "--replicas=2",
            "--timeout-seconds=0",
        ]
    )
    refused = "ConnectionRefusedError: [Errno 111] Connection refused"
    assert (code, capsys.readouterr().err) == (
        1,
        f"the tier is not ready after 0 s: HAProxy's stats at http://127.0.0.1:{port}/stats failed: {refused}; "
        f"GET http://127.0.0.1:{port}/healthz through the load balancer failed: {refused}\n",
    )


def test_the_command_line_holds_only_addresses_and_numbers() -> None:
    assert readiness.command(TARGET, 180).split(" ")[1:] == [
        "-m",
        "components.readiness",
        "--url=http://127.0.0.1:8080",
        "--path=/healthz",
        "--stats-url=http://127.0.0.1:8404/stats",
        "--backend=app",
        "--replicas=2",
        "--timeout-seconds=180",
    ]


@pytest.mark.parametrize(
    ("live", "declared", "wanted"),
    [
        pytest.param(None, 2, 2, id="a new service starts with 2 and up waits for 2"),
        pytest.param(
            5, 5, 2, id="a service the autoscaler scaled to 5 keeps 5 and up waits for the initial 2"
        ),
        pytest.param(1, 1, 1, id="a service the autoscaler has at 1 keeps 1 and up waits for 1"),
    ],
)
def test_the_program_waits_for_the_initial_replicas_or_as_many_as_run(
    live: int | None, declared: int, wanted: int
) -> None:
    config = stack_config("local")
    config["hostscale:autoscaler"] = {**config["hostscale:autoscaler"], "replicas": {"min": 1, "max": 6}}
    run = record_program(config, "local", live_replica_count=lambda service_name: live)
    assert run.resources["app-service"].inputs["mode"]["replicated"]["replicas"] == declared
    assert f"--replicas={wanted}" in run.resources["readiness-check"].inputs["create"].split(" ")
