"""SIGTERM: keep serving through the grace period while health checks say 'draining', finish in-flight work,
then exit."""

from __future__ import annotations

import threading
import time

import httpx

from testbed.containers import TestBed, published_url, wait_ready
from testbed.waiting import wait_for

GRACE_S = 2.0


def test_sigterm_drains_then_finishes_in_flight_requests_then_exits(testbed: TestBed) -> None:
    testbed.postgres()
    app = testbed.app("app", env={"SHUTDOWN_GRACE_SECONDS": str(GRACE_S), "SHUTDOWN_TIMEOUT_SECONDS": "10"})
    url = published_url(app)
    wait_ready(url)
    in_flight: dict[str, int] = {}

    with httpx.Client(base_url=url, timeout=15) as client:
        assert "connection" not in client.get("/healthz").headers, "a serving replica keeps its connections"
        app.kill(signal="SIGTERM")
        signalled = time.monotonic()
        assert client.get("/healthz").status_code == 503, "the load balancer's check must see 'draining'"
        assert client.get("/readyz").status_code == 503
        # New requests are still served during the grace period: the load balancer may not have noticed yet.
        during_grace = client.post("/api/items", json={"name": "during grace"})
        assert during_grace.status_code == 201
        # ...and each answer closes its connection, so none is left idle for the shutdown to close under a
        # request the load balancer is sending on it (app/draining.py).
        assert during_grace.headers.get("connection") == "close"

        def slow_request() -> None:
            with httpx.Client(base_url=url, timeout=15) as own:
                in_flight["status"] = own.get("/api/work", params={"ms": 800}).status_code

        # Start a request shortly before the grace period ends, so it is in flight when uvicorn stops.
        time.sleep(max(0.0, GRACE_S - 0.4 - (time.monotonic() - signalled)))
        worker = threading.Thread(target=slow_request)
        worker.start()
        worker.join(timeout=20)

    assert in_flight.get("status") == 200, "a request in flight at shutdown must complete"
    wait_for("the app container to exit", lambda: app.reload() or app.status == "exited", 20)
    logs = app.logs().decode()
    assert "draining for 2.0 s before shutdown" in logs
    assert "Finished server process" in logs
