"""Talk to a test's own Postgres container from the host, over its address on the test network."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


def query(
    host: str, password: str, sql: str, *args: Any, user: str = "app", database: str = "app"
) -> list[tuple[Any, ...]]:
    """Run `sql` with `args` as its $1, $2...; several statements separated by ';' run with no rows returned."""

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(host=host, user=user, password=password, database=database, timeout=10)
        try:
            if ";" in sql and not args:
                await conn.execute(sql)
                return []
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())
