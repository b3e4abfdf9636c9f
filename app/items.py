"""The items API: create, read, list with keyset pagination, delete. SQL only through parameters."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.database import Database, DatabaseUnavailable
from app.validation import (
    MAX_ITEM_ID,
    MAX_PAGE_PAYLOAD_BYTES,
    MAX_PAGE_SIZE,
    MAX_STORED_PAYLOAD_BYTES,
    RequestRejected,
    parse_item_id,
    parse_new_item,
    parse_query_int,
)

_COLUMNS = "id, name, payload, created_at"
_STORED_SIZE_CHECK = "items_payload_stored_size"  # migrations/0002


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    if not request.app.state.schema_ready.is_set():
        raise DatabaseUnavailable("the schema is not migrated yet")
    return database


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "payload": row["payload"],
        "created_at": row["created_at"].isoformat(),
    }


async def create_item(request: Request) -> Response:
    new = await parse_new_item(request)
    async with _database(request).connection() as conn:
        try:
            row = await conn.fetchrow(
                f"INSERT INTO items (name, payload) VALUES ($1, $2) RETURNING {_COLUMNS}",  # noqa: S608
                new.name,
                new.payload,
            )
        except asyncpg.CheckViolationError as exc:
            # The table's own bound on the stored size, for what the app's estimate let through: the INSERT
            # is refused whole, so nothing was stored.
            if exc.constraint_name != _STORED_SIZE_CHECK:
                raise
            raise RequestRejected(
                422, f"payload is over {MAX_STORED_PAYLOAD_BYTES} bytes as stored", "payload"
            ) from None
    assert row is not None  # INSERT ... RETURNING always returns the row
    return JSONResponse(_item(row), status_code=201, headers={"Location": f"/api/items/{row['id']}"})


async def get_item(request: Request) -> Response:
    item_id = parse_item_id(request.path_params["id"])
    async with _database(request).connection() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM items WHERE id = $1", item_id)  # noqa: S608
    if row is None:
        raise RequestRejected(404, f"item {item_id} does not exist", "id")
    return JSONResponse(_item(row))


async def list_items(request: Request) -> Response:
    limit = parse_query_int(request, "limit", 20, 1, MAX_PAGE_SIZE)
    after = parse_query_int(request, "after", 0, 0, MAX_ITEM_ID)
    async with _database(request).connection() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM items WHERE id > $1 ORDER BY id LIMIT $2",  # noqa: S608
            after,
            limit,
        )
    items: list[dict[str, Any]] = []
    payload_bytes = 0
    for row in rows:
        payload_bytes += len(json.dumps(row["payload"], ensure_ascii=False).encode())
        if items and payload_bytes > MAX_PAGE_PAYLOAD_BYTES:
            break  # the page is full by bytes; the rest comes with the next page
        items.append(_item(row))
    # A page cut short by its limit or its bytes may have more behind it; the client passes next_after back
    # as ?after= to continue.
    next_after = items[-1]["id"] if len(items) == limit or len(items) < len(rows) else None
    return JSONResponse({"items": items, "next_after": next_after})


async def delete_item(request: Request) -> Response:
    item_id = parse_item_id(request.path_params["id"])
    async with _database(request).connection() as conn:
        deleted = await conn.fetchval("DELETE FROM items WHERE id = $1 RETURNING id", item_id)
    if deleted is None:
        raise RequestRejected(404, f"item {item_id} does not exist", "id")
    return Response(status_code=204)


routes = [
    Route("/api/items", create_item, methods=["POST"]),
    Route("/api/items", list_items, methods=["GET"]),
    Route("/api/items/{id}", get_item, methods=["GET"]),
    Route("/api/items/{id}", delete_item, methods=["DELETE"]),
]
