"""What a valid request looks like, and the 4xx a client gets when it is not.

Every check that Postgres would otherwise make with an error (a NUL character in text, NaN in jsonb, an id
beyond bigint) is made here first, so a client mistake is a 4xx naming the field and never a 500.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
# Postgres writes numbers out in full (`1e308` is stored and returned as 309 digits), so a payload within
# MAX_PAYLOAD_BYTES as sent can be 50 times that as stored. This bounds what is stored; the same figure is a
# CHECK on the table (migrations/0002), which refuses what this estimate would miss.
MAX_STORED_PAYLOAD_BYTES = 64 * 1024
MAX_ITEM_ID = 2**63 - 1  # Postgres bigint
MAX_PAGE_SIZE = 100
# A page ends early once its payloads reach this many bytes, so 100 rows of large payloads stay one bounded
# response rather than several megabytes (a page always holds at least one row).
MAX_PAGE_PAYLOAD_BYTES = 256 * 1024


class RequestRejected(Exception):
    """A client mistake: becomes a JSON 4xx response naming the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return JSONResponse({"error": error}, status_code=self.status)


def _check_json_value(value: JsonValue, where: str) -> None:
    """Postgres' jsonb refuses NaN, infinities and NUL characters: refuse them first, naming where."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}: only finite numbers are allowed")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    if isinstance(value, list):
        for index, element in enumerate(value):
            _check_json_value(element, f"{where}[{index}]")
    if isinstance(value, dict):
        for key, element in value.items():
            if "\x00" in key:
                raise ValueError(f"a key in {where} contains a NUL character")
            _check_json_value(element, f"{where}.{key}")


def stored_json_bytes(value: JsonValue) -> int:
    """The size of `value` as Postgres' jsonb returns it (`payload::text`): numbers in full, ", " and ": "."""
    if isinstance(value, bool) or value is None:
        return len(json.dumps(value))
    if isinstance(value, int):
        return len(str(value))
    if isinstance(value, float):
        return len(format(Decimal(repr(value)), "f"))
    if isinstance(value, str):
        return len(json.dumps(value, ensure_ascii=False).encode())
    if isinstance(value, list):
        return 2 + sum(stored_json_bytes(v) for v in value) + 2 * max(len(value) - 1, 0)
    return (
        2
        + sum(stored_json_bytes(k) + 2 + stored_json_bytes(v) for k, v in value.items())
        + 2 * max(len(value) - 1, 0)
    )


class NewItem(BaseModel):
    """The body of POST /api/items."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    payload: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_has_no_nul(cls, name: str) -> str:
        if "\x00" in name:
            raise ValueError("name contains a NUL character")
        return name

    @field_validator("payload")
    @classmethod
    def _payload_fits_jsonb(cls, payload: dict[str, JsonValue]) -> dict[str, JsonValue]:
        _check_json_value(payload, "payload")
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is {size} bytes encoded; at most {MAX_PAYLOAD_BYTES} are allowed")
        stored = stored_json_bytes(payload)
        if stored > MAX_STORED_PAYLOAD_BYTES:
            raise ValueError(
                f"payload would be {stored} bytes as stored (numbers are written out in full); "
                f"at most {MAX_STORED_PAYLOAD_BYTES} are allowed"
            )
        return payload


async def read_body(request: Request) -> bytes:
    """The request body, refusing with 413 as soon as it is known to be over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestRejected(413, f"request body is {declared} bytes; at most {MAX_BODY_BYTES} are allowed")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RequestRejected(413, f"request body is over {MAX_BODY_BYTES} bytes")
    return bytes(body)


async def parse_new_item(request: Request) -> NewItem:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise RequestRejected(415, f"content-type must be application/json, got {content_type or 'none'!r}")
    body = await read_body(request)
    try:
        return NewItem.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise RequestRejected(422, first["msg"], field) from None


def _is_int_within(raw: str, low: int, high: int) -> bool:
    # Length first: int() of a very long digit string raises (Python's 4300-digit limit) or costs CPU.
    return len(raw) <= 19 and raw.isascii() and raw.isdigit() and low <= int(raw) <= high


def parse_item_id(raw: str) -> int:
    if not _is_int_within(raw, 1, MAX_ITEM_ID):
        raise RequestRejected(422, f"id must be an integer from 1 to {MAX_ITEM_ID}, got {raw[:40]!r}", "id")
    return int(raw)


def parse_query_int(request: Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    if not _is_int_within(raw, low, high):
        raise RequestRejected(422, f"{key} must be an integer from {low} to {high}, got {raw[:40]!r}", key)
    return int(raw)
