"""Scale from zero on a deployed test stack: the tier idles at no replica, a first request arrives, and it waits
in HAProxy while the autoscaler starts a replica, which then serves it. Shared by the end-to-end test
(tests/e2e/test_scale_from_zero.py) and the benchmark (benchmarks/scale_from_zero.py).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from testbed.stack import TestStack
from testbed.waiting import wait_for

# A target rule on sessions, and a scale-in that reaches zero a few seconds after the last request.
IDLE_S = 6
POLICY: dict[str, Any] = {
    "replicas": {"min": 0, "max": 3},
    "interval_seconds": 1,
    "metrics_max_age_seconds": 5,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 4}],
    "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 1, "max_step": 2},
    "scale_down": {"stabilization_seconds": IDLE_S, "cooldown_seconds": 1, "max_step": 3},
}
APP = {"initial_replicas": 0}


@dataclass(frozen=True)
class FirstRequests:
    """What the first requests after an idle period got, seconds from the first one's start."""

    statuses: list[int]
    latencies_s: list[float]  # each request's own latency, in the order they were sent
    replicas_before: int  # the service's replica count when the first request was sent


def at_zero(stack: TestStack) -> bool:
    # Not only the tasks Swarm wants running: a task told to shut down keeps serving while it drains
    # (app/draining.py), so the tier is at zero once no task's container runs at all.
    draining_or_running = [t for t in stack.service().tasks() if t["Status"]["State"] == "running"]
    return stack.replicas() == 0 and not draining_or_running


def wait_idle_at_zero(stack: TestStack, timeout_s: float = 120) -> None:
    wait_for("the tier idle at zero replicas", lambda: at_zero(stack), timeout_s, 0.5)


def first_requests(
    stack: TestStack, count: int = 3, spacing_s: float = 0.2, path: str = "/api/items"
) -> FirstRequests:
    """`count` requests `spacing_s` apart to a tier at zero, each on its own connection, each bounded at 60 s."""
    replicas_before = stack.replicas()

    def one(delay_s: float) -> tuple[int, float]:
        time.sleep(delay_s)
        started = time.monotonic()
        try:
            status = httpx.get(f"{stack.url}{path}", timeout=60).status_code
        except httpx.HTTPError:
            status = 0  # no answer at all
        return status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(one, [i * spacing_s for i in range(count)]))
    return FirstRequests([s for s, _ in results], [t for _, t in results], replicas_before)
