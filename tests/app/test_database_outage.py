"""Postgres down or frozen: the app answers 503 within its budget, stays alive, and recovers by itself."""

from __future__ import annotations

import time

import httpx

from testbed.containers import TestBed, published_url, wait_ready
from testbed.waiting import wait_for

# The app's database budget is 0.8 s; the issue promises a 503 within 1 s.
PROMISED_S = 1.0


def timed_get(client: httpx.Client, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    response = client.get(path)
    return response.status_code, time.perf_counter() - start


def test_database_stopped_gives_fast_503_then_recovers(testbed: TestBed) -> None:
    pg = testbed.postgres()
    url = published_url(testbed.app("app"))
    wait_ready(url)
    with httpx.Client(base_url=url, timeout=10) as client:
        item = client.post("/api/items", json={"name": "before the outage"}).json()
        pg.stop(timeout=20)

        for path in [f"/api/items/{item['id']}", "/api/items", "/readyz"]:
            status, elapsed = timed_get(client, path)
            assert status == 503, path
            assert elapsed < PROMISED_S, f"{path} took {elapsed:.2f} s to answer 503"
        assert client.post("/api/items", json={"name": "during"}).status_code == 503
        assert client.get("/healthz").status_code == 200, "liveness must not depend on the database"

        pg.start()
        wait_for(
            "the app to read again", lambda: client.get(f"/api/items/{item['id']}").status_code == 200, 60
        )
        assert client.get(f"/api/items/{item['id']}").json() == item
        assert client.post("/api/items", json={"name": "after"}).status_code == 201


def test_database_frozen_gives_503_within_the_budget_not_a_hang(testbed: TestBed) -> None:
    pg = testbed.postgres()
    url = published_url(testbed.app("app"))
    wait_ready(url)
    with httpx.Client(base_url=url, timeout=10) as client:
        item = client.post("/api/items", json={"name": "before the freeze"}).json()
        pg.pause()  # TCP stays open but nothing answers: only timeouts can save the client
        try:
            for path in [f"/api/items/{item['id']}", "/readyz"]:
                status, elapsed = timed_get(client, path)
                assert status == 503, path
                assert elapsed < PROMISED_S, f"{path} took {elapsed:.2f} s to answer 503"
            status, elapsed = timed_get(client, "/healthz")
            assert status == 200
        finally:
            pg.unpause()
        wait_for(
            "the app to read again", lambda: client.get(f"/api/items/{item['id']}").status_code == 200, 60
        )


def test_app_started_before_database_becomes_ready_when_it_arrives(testbed: TestBed) -> None:
    url = published_url(testbed.app("app"))
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for("the app to listen", lambda: _answers(client), 30)
        assert client.get("/healthz").json() == {"status": "starting"}, (
            "no traffic before the schema is known"
        )
        assert client.get("/readyz").status_code == 503
        assert client.get("/api/items").status_code == 503
        testbed.postgres()
        wait_ready(url, timeout_s=60)
        assert client.get("/healthz").status_code == 200
        assert client.post("/api/items", json={"name": "late database"}).status_code == 201


def _answers(client: httpx.Client) -> bool:
    try:
        client.get("/healthz")
    except httpx.HTTPError:
        return False
    return True
