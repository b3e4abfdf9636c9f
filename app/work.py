"""GET /api/work?ms=N: burn N milliseconds of CPU time, so load tests can make replicas busy for real."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.validation import parse_query_int

MAX_WORK_MS = 1000


def burn_cpu(ms: int) -> float:
    """Spin until this thread has used `ms` of CPU time (not wall time: a busy host must not shorten the
    work); returns the CPU milliseconds actually used."""
    start = time.thread_time()
    deadline = start + ms / 1000
    spins = 0
    while time.thread_time() < deadline:
        for _ in range(2000):  # cheap arithmetic between clock reads, which are system calls
            spins += 1
    return (time.thread_time() - start) * 1000


async def work(request: Request) -> Response:
    ms = parse_query_int(request, "ms", 10, 0, MAX_WORK_MS)
    # In a worker thread, so the event loop keeps answering health checks between GIL switches.
    cpu_ms = await run_in_threadpool(burn_cpu, ms)
    return JSONResponse({"requested_ms": ms, "cpu_ms": round(cpu_ms, 3)})


routes = [Route("/api/work", work, methods=["GET"])]
