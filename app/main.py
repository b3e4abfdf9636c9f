"""The sample application server: an ASGI app over Postgres that plays the app tier of the request path.

/healthz depends on the database only until the replica has seen the schema migrated once (a startup gate);
after that an outage must not make the orchestrator kill healthy replicas, nor the load balancer drop replicas
that still serve /api/work. /readyz checks the database every time. Both answer 503 while the replica
drains after SIGTERM, which is how the load balancer learns to stop sending it requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import items, work
from app.database import Database, DatabaseUnavailable
from app.draining import CloseWhileDraining
from app.observability import ObservabilityMiddleware, RequestMetrics
from app.schema import apply_migrations, load_migrations
from app.settings import Settings
from app.validation import RequestRejected

log = logging.getLogger("hostscale.app")

MIGRATION_BUDGET_S = 120.0
WARM_BUDGET_S = 10.0  # opening the pool's connections before the replica takes traffic


async def migrate_until_done(database: Database, ready: asyncio.Event) -> None:
    """Apply the migrations, retrying with backoff while Postgres is unreachable (it may start after us)."""
    migrations = load_migrations()
    delay = 0.5
    while True:
        try:
            async with database.connection(MIGRATION_BUDGET_S) as conn:
                applied = await apply_migrations(conn, migrations, MIGRATION_BUDGET_S)
        except DatabaseUnavailable as exc:
            log.warning("migrations waiting for the database (retry in %.1f s): %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            continue
        log.info("schema ready; migrations applied by this replica: %s", applied or "none")
        # Before the first request can arrive (the gate opens with `ready`): the pool's connections open now.
        warmed = await database.warm(database.pool_max_size, WARM_BUDGET_S)
        log.info("%d database connections open before the first request", warmed)
        ready.set()
        return


async def healthz(request: Request) -> Response:
    # The load balancer's and the orchestrator's check. Like a startup probe, it fails until this replica has
    # seen the schema migrated once (a replica that never reached the database would only answer 503s);
    # after that a database outage no longer fails it, so the orchestrator keeps healthy replicas. 503 while
    # draining takes the replica out of rotation before it stops.
    state = request.app.state
    if state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if not state.schema_ready.is_set():
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = request.app.state
    if state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if not state.schema_ready.is_set():
        return JSONResponse({"status": "schema not ready"}, status_code=503)
    try:
        async with state.database.connection() as conn:
            await conn.fetchval("SELECT 1")
    except DatabaseUnavailable:
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRejected)
    return exc.response()


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("503 for %s %s: %s", request.method, request.url.path, exc)
    body = {"error": {"status": 503, "message": "the database is unavailable; retry shortly"}}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return RequestRejected(exc.status_code, exc.detail).response()


def create_app(settings: Settings, served_by: str | None = None) -> Starlette:
    """The app; `served_by` names this replica in X-Served-By (default: the hostname, a container's ID),
    sent only when settings.served_by_header is on."""
    database = Database(settings)
    header = (served_by or socket.gethostname()) if settings.served_by_header else None
    metrics = RequestMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await database.open()
        migrator = asyncio.create_task(migrate_until_done(database, app.state.schema_ready))
        try:
            yield
        finally:
            migrator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await migrator
            await database.close()

    exception_handlers: dict[Any, Any] = {
        RequestRejected: _rejected,
        DatabaseUnavailable: _unavailable,
        HTTPException: _http_error,
    }
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics.endpoint),
            *items.routes,
            *work.routes,
        ],
        middleware=[
            Middleware(ObservabilityMiddleware, metrics=metrics, served_by=header),
            Middleware(CloseWhileDraining),
        ],
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    app.state.database = database
    app.state.schema_ready = asyncio.Event()
    app.state.draining = False
    return app
