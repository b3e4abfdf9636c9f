"""The connection pool, and the one rule for database trouble: the client gets a 503 quickly.

Every request's database work runs inside one time budget (pool wait, connect and statements together), so a
Postgres that is down, restarting or frozen costs a client at most that budget, never a hang or a 500. asyncpg
replaces broken connections as they are released, so the app recovers by itself when Postgres is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app.settings import Settings

# What "the database cannot serve right now" looks like from asyncpg: refused or unresolvable host (OSError),
# a connection lost mid-query (InterfaceError), server starting or shutting down or cancelling (class 57),
# too many connections (class 53), connection-level protocol errors (class 08), a broken client state.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # A connection the server dropped mid-operation can be left in a protocol state asyncpg refuses
    # ("cannot switch to state ..."): seen when Postgres restarts under load. It is terminated like the rest.
    asyncpg.exceptions.InternalClientError,
    # The password refused: while `up` rotates it, a replica still on the old secret file (until its
    # replacement starts) is refused on a new connection. A retry lands on a replica with the new one.
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)


class DatabaseUnavailable(Exception):
    """Postgres could not serve this request within its budget; the client should retry later."""


async def _set_codecs(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python values; ensure_ascii=False keeps the stored text as the client sent it.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: json.dumps(value, ensure_ascii=False, allow_nan=False),
        decoder=json.loads,
    )


class Database:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None

    @property
    def pool_max_size(self) -> int:
        return self._settings.pool_max_size

    async def open(self) -> None:
        settings = self._settings
        # min_size=0: creating the pool connects to nothing, so the server starts (and /healthz answers)
        # while Postgres is still down.
        self._pool = await asyncpg.create_pool(
            host=settings.db_host,
            port=settings.db_port,
            user=settings.db_user,
            database=settings.db_name,
            password=settings.read_db_password,  # read at each connect: a rotated secret file is picked up
            init=_set_codecs,
            min_size=0,
            max_size=settings.pool_max_size,
            timeout=settings.db_timeout_s,
            command_timeout=settings.db_timeout_s,
            server_settings={
                "application_name": "hostscale-app",
                # Server side of the same budget, so an abandoned query does not keep running.
                "statement_timeout": str(int(settings.db_timeout_s * 1000) + 200),
            },
        )

    async def warm(self, count: int, timeout_s: float) -> int:
        """Open up to `count` pooled connections at once and keep them idle in the pool; returns how many.

        A replica that starts under load otherwise opens its connections on its first requests: each pays a
        SCRAM authentication and the codec set-up inside the request's 0.8 s budget, and on a busy host the
        first ones overrun it and answer 503 (seen in the scale-out of tests/e2e/test_load.py). Best effort: a
        connection that cannot be opened now is opened on demand later."""
        if self._pool is None:
            return 0
        pool = self._pool
        opened = []

        async def one() -> None:
            conn = await pool.acquire(timeout=timeout_s)
            opened.append(conn)

        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        for conn in opened:
            await pool.release(conn)
        return sum(1 for result in results if not isinstance(result, BaseException))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def connection(self, budget_s: float | None = None) -> AsyncIterator[PoolConnectionProxy]:
        """A pooled connection for one unit of work; DatabaseUnavailable if Postgres cannot serve in time."""
        if self._pool is None:
            raise DatabaseUnavailable("the connection pool is not open")
        try:
            async with asyncio.timeout(budget_s or self._settings.db_timeout_s) as budget:
                conn = await self._pool.acquire()
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseUnavailable(f"no connection: {type(exc).__name__}: {exc}") from exc
        try:
            async with asyncio.timeout_at(budget.when()):
                yield conn
        except UNAVAILABLE_ERRORS as exc:
            # The connection is mid-query or broken: drop it now. A graceful release would first try to
            # reset it, which against a frozen server waits out another whole timeout. When Postgres itself
            # closed it, the pool has already taken it back and the proxy refuses every call.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            # Releasing a connection that broke under us must not turn a 503 into a 500.
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await self._pool.release(conn)
