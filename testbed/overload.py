"""The overload scenario shared by tests/e2e/test_overload.py and benchmarks/overload.py: the local stack with
its autoscaler pinned at REPLICAS (the tier cannot grow out of the load), small per-replica slots and a short
queue, so that a few dozen clients are twice what the tier holds."""

from __future__ import annotations

from typing import Any

from harness.program import stack_config

REPLICAS = 3
SERVER_MAXCONN = 4  # requests in each replica at once; the rest wait in HAProxy's queue
QUEUE_MAX = 8
QUEUE_TIMEOUT_S = 10
WORK_MS = 50  # CPU each request burns in its replica
AT_CAPACITY = REPLICAS * SERVER_MAXCONN  # clients that keep every replica slot busy with nothing queued
HOLDS = AT_CAPACITY + QUEUE_MAX  # requests the tier holds at once: in the replicas and in the queue
OVERLOAD_CLIENTS = 2 * HOLDS
REFUSED_PAUSE_S = 1.0  # a refused client honours HAProxy's Retry-After: 1, then asks again


def pinned_policy() -> dict[str, Any]:
    """The local stack's scaling policy with min = max = REPLICAS."""
    local = {k: v for k, v in stack_config("local")["hostscale:autoscaler"].items() if k != "listen"}
    return {**local, "replicas": {"min": REPLICAS, "max": REPLICAS}}


def stand_up_args() -> dict[str, Any]:
    """Keyword arguments of testbed.stack.stand_up for this scenario."""
    return {
        "autoscaler": pinned_policy(),
        "app": {"initial_replicas": REPLICAS},
        "load_balancer": {
            "server_maxconn": SERVER_MAXCONN,
            "queue_max": QUEUE_MAX,
            "queue_timeout_seconds": QUEUE_TIMEOUT_S,
        },
    }
