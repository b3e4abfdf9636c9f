"""The sample application server's API, end to end: the real app image against the real Postgres image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import JsonValue

from app.validation import (
    MAX_BODY_BYTES,
    MAX_ITEM_ID,
    MAX_PAGE_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_STORED_PAYLOAD_BYTES,
    stored_json_bytes,
)
from testbed.containers import TestBed, container_ip, published_url, wait_ready
from testbed.postgres import query


@pytest.fixture(scope="module")
def api(module_testbed: TestBed) -> Iterator[httpx.Client]:
    module_testbed.postgres()
    app = module_testbed.app("app")
    base_url = published_url(app)
    wait_ready(base_url)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def create(api: httpx.Client, name: str, payload: object) -> dict[str, Any]:
    response = api.post("/api/items", json={"name": name, "payload": payload})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_healthz_and_readyz_answer_ok(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_by_default_no_response_names_the_container_that_served_it(api: httpx.Client) -> None:
    for path in ["/healthz", "/api/items/999999", "/nowhere"]:
        assert "x-served-by" not in api.get(path).headers, f"{path} tells the client its container"


def test_with_the_header_turned_on_every_response_names_the_container(module_testbed: TestBed) -> None:
    app = module_testbed.app("app-named", env={"SERVED_BY_HEADER": "true"})
    base_url = published_url(app)
    wait_ready(base_url)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for path in ["/healthz", "/api/items/999999", "/nowhere"]:
            assert client.get(path).headers.get("x-served-by") == app.id[:12], path


def test_post_item_returns_the_stored_row_and_get_reads_it_back(api: httpx.Client) -> None:
    payload = {"nested": {"list": [1, 2.5, "três", None, True]}, "emoji": "🚀"}
    created = create(api, "first item", payload)
    assert created["name"] == "first item"
    assert created["payload"] == payload
    response = api.get(f"/api/items/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_post_item_sets_location_header(api: httpx.Client) -> None:
    response = api.post("/api/items", json={"name": "located"})
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/items/{response.json()['id']}"
    assert response.json()["payload"] == {}


def test_list_items_pages_with_keyset_cursor_without_gaps_or_repeats(api: httpx.Client) -> None:
    made = {create(api, f"page-{i}", {"i": i})["id"] for i in range(7)}
    seen: list[int] = []
    after = min(made) - 1
    while True:
        page = api.get("/api/items", params={"limit": 3, "after": after}).json()
        seen.extend(item["id"] for item in page["items"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert made <= set(seen)
    assert seen == sorted(set(seen)), "pages must be ordered by id without repeats"


def test_delete_item_removes_it_then_404(api: httpx.Client) -> None:
    item = create(api, "doomed", {})
    assert api.delete(f"/api/items/{item['id']}").status_code == 204
    assert api.get(f"/api/items/{item['id']}").status_code == 404
    assert api.delete(f"/api/items/{item['id']}").status_code == 404


def test_work_burns_the_requested_cpu_time(api: httpx.Client) -> None:
    body = api.get("/api/work", params={"ms": 50}).json()
    assert body["requested_ms"] == 50
    assert 50 <= body["cpu_ms"] < 80


def test_metrics_count_requests_by_route_template_and_status(api: httpx.Client) -> None:
    api.get("/api/items/424242")
    text = api.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/api/items/{id}",status="404"}' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/api/items/{id}",status="404"}' in text
    assert "http_requests_in_flight" in text


def test_metrics_route_label_does_not_grow_with_random_paths(api: httpx.Client) -> None:
    for i in range(5):
        api.get(f"/random/{i}")
    text = api.get("/metrics").text
    assert "/random/" not in text
    assert 'route="unmatched"' in text


BAD_REQUESTS = [
    pytest.param(
        "POST", "/api/items", {"json": {"payload": {}}}, 422, "name", id="missing name is 422 naming name"
    ),
    pytest.param("POST", "/api/items", {"json": {"name": ""}}, 422, "name", id="empty name is 422"),
    pytest.param("POST", "/api/items", {"json": {"name": "x" * 201}}, 422, "name", id="201-char name is 422"),
    pytest.param("POST", "/api/items", {"json": {"name": 5}}, 422, "name", id="numeric name is 422"),
    pytest.param("POST", "/api/items", {"json": {"name": "a\x00b"}}, 422, "name", id="NUL in name is 422"),
    pytest.param(
        "POST",
        "/api/items",
        {"json": {"name": "a", "payload": [1]}},
        422,
        "payload",
        id="list payload is 422",
    ),
    pytest.param(
        "POST",
        "/api/items",
        {"json": {"name": "a", "payload": {"k": "\x00"}}},
        422,
        "payload",
        id="NUL in payload",
    ),
    pytest.param(
        "POST",
        "/api/items",
        {"content": b'{"name": "a", "payload": {"x": NaN}}', "headers": {"content-type": "application/json"}},
        422,
        "payload",
        id="NaN in payload is 422",
    ),
    pytest.param(
        "POST",
        "/api/items",
        {
            "content": b'{"name": "a", "payload": {"x": 1e999}}',
            "headers": {"content-type": "application/json"},
        },
        422,
        "payload",
        id="infinite number in payload is 422",
    ),
    pytest.param(
        "POST",
        "/api/items",
        {"json": {"name": "a", "payload": {"blob": "x" * (MAX_PAYLOAD_BYTES)}}},
        422,
        "payload",
        id="payload over 16 KiB is 422",
    ),
    pytest.param(
        "POST", "/api/items", {"json": {"name": "a", "extra": 1}}, 422, "extra", id="unknown field is 422"
    ),
    pytest.param(
        "POST",
        "/api/items",
        {"content": b'{"name": "a"', "headers": {"content-type": "application/json"}},
        422,
        "body",
        id="truncated JSON is 422",
    ),
    pytest.param("POST", "/api/items", {"content": b"name=a"}, 415, None, id="form body is 415"),
    pytest.param(
        "POST",
        "/api/items",
        {"content": b"x" * (MAX_BODY_BYTES + 1), "headers": {"content-type": "application/json"}},
        413,
        None,
        id="body over the limit is 413",
    ),
    pytest.param("GET", "/api/items/abc", {}, 422, "id", id="non-numeric id is 422"),
    pytest.param("GET", "/api/items/0", {}, 422, "id", id="id zero is 422"),
    pytest.param("GET", f"/api/items/{MAX_ITEM_ID + 1}", {}, 422, "id", id="id beyond bigint is 422"),
    pytest.param("GET", "/api/items/" + "9" * 5000, {}, 422, "id", id="5000-digit id is 422"),
    pytest.param("GET", "/api/items/123456789", {}, 404, "id", id="missing item is 404"),
    pytest.param("DELETE", "/api/items/-1", {}, 422, "id", id="negative id on delete is 422"),
    pytest.param("GET", "/api/items?limit=0", {}, 422, "limit", id="limit zero is 422"),
    pytest.param("GET", "/api/items?limit=101", {}, 422, "limit", id="limit over 100 is 422"),
    pytest.param("GET", "/api/items?after=x", {}, 422, "after", id="non-numeric cursor is 422"),
    pytest.param("GET", "/api/work?ms=1001", {}, 422, "ms", id="work over 1000 ms is 422"),
    pytest.param("GET", "/api/work?ms=-5", {}, 422, "ms", id="negative work is 422"),
    pytest.param("PUT", "/api/items", {}, 405, None, id="unsupported method is 405"),
    pytest.param("GET", "/nowhere", {}, 404, None, id="unknown path is 404"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), BAD_REQUESTS)
def test_bad_request_gets_a_json_4xx_naming_the_field(
    api: httpx.Client, method: str, path: str, kwargs: dict[str, object], status: int, field: str | None
) -> None:
    response = api.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status
    assert error.get("field") == field, error


def test_bad_requests_store_no_row(api: httpx.Client) -> None:
    before = api.get("/api/items", params={"limit": 100, "after": 0}).json()
    count_before = len(before["items"])
    for param in BAD_REQUESTS:
        method, path, kwargs, _, _ = param.values
        api.request(method, path, **kwargs)  # type: ignore[arg-type]
    after = api.get("/api/items", params={"limit": 100, "after": 0}).json()
    assert len(after["items"]) == count_before


def test_deeply_nested_payload_is_422_not_500(api: httpx.Client) -> None:
    body = b'{"name": "a", "payload": ' + b'{"k":' * 400 + b"1" + b"}" * 401
    response = api.post("/api/items", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "body"


def test_payload_survives_a_round_trip_byte_for_byte(api: httpx.Client) -> None:
    payload = {"unicode": "ĉĝĥ 中文 \u2028", "big": 123456789012345678901234567890, "neg": -0.5, "empty": {}}
    created = create(api, "exact", payload)
    fetched = api.get(f"/api/items/{created['id']}").json()
    assert json.dumps(fetched["payload"], sort_keys=True) == json.dumps(payload, sort_keys=True)


def _postgres_ip(testbed: TestBed) -> str:
    return container_ip(testbed.client.containers.get(testbed.name("postgres")))


def _count_items(api: httpx.Client) -> int:
    count, after = 0, 0
    for _ in range(1000):  # bounded: the suite stores far fewer pages than this
        page = api.get("/api/items", params={"limit": 100, "after": after}).json()
        count += len(page["items"])
        if page["next_after"] is None:
            return count
        after = page["next_after"]
    raise AssertionError("more than 1000 pages of items")


def test_numbers_that_postgres_writes_out_in_full_are_bounded_as_stored(api: httpx.Client) -> None:
    # 1e308 is 6 bytes sent and 309 digits stored: well within the sent limit, 50 times it as stored.
    payload: dict[str, JsonValue] = {"n": [1e308] * 2000}
    assert (
        len(json.dumps(payload)) < MAX_PAYLOAD_BYTES < MAX_STORED_PAYLOAD_BYTES < stored_json_bytes(payload)
    )
    before = _count_items(api)
    response = api.post("/api/items", json={"name": "huge numbers", "payload": payload})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "payload"
    assert "as stored" in error["message"]
    assert _count_items(api) == before


def test_the_stored_size_estimate_is_what_postgres_stores(module_testbed: TestBed, api: httpx.Client) -> None:
    payloads: list[dict[str, Any]] = [
        {},
        {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": 'três \u2028 "q"'}},
        {"big": 10**30, "tiny": 1e-7, "huge": 1e300, "neg": -0.5, "nested": [[], {}, [{"x": []}]]},
    ]
    for payload in payloads:
        created = create(api, "sized", payload)
        stored = query(
            _postgres_ip(module_testbed),
            module_testbed.password,
            "SELECT octet_length(payload::text) FROM items WHERE id = $1",
            created["id"],
        )
        assert stored == [(stored_json_bytes(payload),)], payload


def test_the_database_itself_refuses_a_payload_over_the_stored_bound(
    module_testbed: TestBed, api: httpx.Client
) -> None:
    # As a client writing to the table directly would: the bound holds without the app's check.
    too_big = json.dumps({"n": [10**300] * 220})
    with pytest.raises(asyncpg.CheckViolationError, match="items_payload_stored_size"):
        query(
            _postgres_ip(module_testbed),
            module_testbed.password,
            "INSERT INTO items (name, payload) VALUES ('direct', $1::text::jsonb)",
            too_big,
        )


def test_a_page_of_large_payloads_ends_by_bytes_and_the_next_page_goes_on_without_a_gap(
    api: httpx.Client,
) -> None:
    first = create(api, "marker", {})
    large: dict[str, JsonValue] = {"n": [1e300] * 200}  # about 60 KB each as stored, within the stored bound
    assert 0.2 * MAX_PAGE_PAYLOAD_BYTES < stored_json_bytes(large) <= MAX_STORED_PAYLOAD_BYTES
    ids = [create(api, f"large {i}", large)["id"] for i in range(6)]

    page = api.get("/api/items", params={"limit": 100, "after": first["id"]}).json()
    got = [item["id"] for item in page["items"]]
    assert 1 <= len(got) < len(ids), f"a page of {len(got)} large items is not bounded by bytes"
    assert sum(stored_json_bytes(item["payload"]) for item in page["items"]) <= MAX_PAGE_PAYLOAD_BYTES
    assert page["next_after"] == got[-1]
    for _ in range(len(ids)):  # bounded: each page holds at least one item
        if page["next_after"] is None:
            break
        page = api.get("/api/items", params={"limit": 100, "after": page["next_after"]}).json()
        got += [item["id"] for item in page["items"]]
    assert got[: len(ids)] == ids
