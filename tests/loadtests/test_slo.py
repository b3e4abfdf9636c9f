"""The SLO gate's verdicts on real Locust stats."""

from __future__ import annotations

import pytest
from locust.stats import RequestStats

from loadtests.slo import evaluate, parse_p95_limits


def stats(samples: list[tuple[str, str, int, bool]]) -> RequestStats:
    result = RequestStats()
    for method, name, ms, failed in samples:
        result.log_request(method, name, ms, 100)
        if failed:
            result.log_error(method, name, "status 503")
    return result


def test_every_slo_holds() -> None:
    run = stats([("GET", "/api/work", 40, False)] * 100)
    assert evaluate(run, 0.0, {"/api/work": 100}) == []


def test_a_single_failure_breaks_a_zero_failure_slo() -> None:
    run = stats([("GET", "/api/work", 40, False)] * 99 + [("GET", "/api/work", 40, True)])
    assert evaluate(run, 0.0, {}) == ["failure ratio 0.0100 (1 of 100) is above 0"]


def test_a_slow_p95_breaks_its_slo() -> None:
    run = stats([("GET", "/api/items/{id}", 20, False)] * 90 + [("GET", "/api/items/{id}", 900, False)] * 10)
    assert evaluate(run, 0.0, {"/api/items/{id}": 250}) == ["GET /api/items/{id}: p95 900 ms is above 250 ms"]


def test_an_endpoint_never_called_cannot_hold_its_slo() -> None:
    run = stats([("GET", "/api/work", 40, False)])
    assert evaluate(run, 0.0, {"/api/items": 300}) == [
        "/api/items: no request was made, so its p95 cannot hold"
    ]


def test_a_run_without_requests_fails() -> None:
    assert evaluate(RequestStats(), 0.0, {}) == ["no request was made"]


def test_p95_limits_parse_and_name_a_bad_entry() -> None:
    assert parse_p95_limits("/api/items/{id}=250, /api/work=1500") == {
        "/api/items/{id}": 250.0,
        "/api/work": 1500.0,
    }
    with pytest.raises(ValueError, match=r"entry '/api/work' is not NAME=MILLISECONDS"):
        parse_p95_limits("/api/work")
