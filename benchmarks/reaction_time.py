"""Reaction time of the autoscaler: from the moment load crosses the rule to the first new replica serving
a request through HAProxy. Median of several runs on the request path the Pulumi program deploys (a test
stack of the local stack's config, testbed/stack.py, with the policy below).

    uv run python -m benchmarks.reaction_time [--runs 5] [--interval 2]

Each run starts from the minimum (2 replicas, both UP), starts 12 clients of /api/work?ms=50 (6 sessions
per replica against a target of 2: the rule is crossed by the first requests), and records
  decision: load start -> the autoscaler's scale-up event,
  serving:  load start -> the first response from a replica that did not exist before.
Then it stops the load and waits for the scale-in back to 2 before the next run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import docker
import httpx

from testbed.load import Load
from testbed.stack import TestStack, stand_up
from testbed.waiting import wait_for


def policy(interval_s: float) -> dict[str, Any]:
    return {
        "replicas": {"min": 2, "max": 5},
        "interval_seconds": interval_s,
        "metrics_max_age_seconds": max(5, 3 * interval_s),
        "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
        "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 2, "max_step": 2},
        "scale_down": {"stabilization_seconds": 8, "cooldown_seconds": 2, "max_step": 1},
    }


def status(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/status", timeout=5).json()
    return body


def answering(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def one_run(stack: TestStack, autoscaler: str) -> tuple[float, float]:
    wait_for("2 replicas, both UP", lambda: status(autoscaler)["ready"] == 2 and stack.replicas() == 2, 120)
    existing = {t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in stack.running_tasks()}
    last_seq = httpx.get(f"{autoscaler}/events", timeout=5).json()["events"][-1]["seq"]
    started_wall, started = time.time(), time.monotonic()
    with Load(stack.url, workers=12, max_seconds=60) as load:
        wait_for("a new replica to serve", lambda: bool(set(load.first_served) - existing), 60)
    first_new = min(t for replica, t in load.first_served.items() if replica not in existing)
    events = httpx.get(f"{autoscaler}/events", params={"since": last_seq}, timeout=5).json()["events"]
    decided = next(e["time"] for e in events if e["acted"] and e["direction"] == "up")
    if load.failures:
        raise RuntimeError(f"{len(load.failures)} requests failed: {load.failures[:3]}")
    return decided - started_wall, first_new - started


def tick_seconds(metrics: str, clock: str) -> float:
    """The autoscaler's mean evaluation time on `clock` (cpu or wall), from its Prometheus exposition."""
    series = f'hostscale_autoscaler_tick_seconds_avg{{clock="{clock}"}}'
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(series))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0, help="the policy's interval_seconds")
    args = parser.parse_args()
    with stand_up(docker.from_env(), autoscaler=policy(args.interval)) as stack:
        autoscaler = stack.autoscaler_url
        wait_for("the autoscaler", lambda: answering(f"{autoscaler}/status"), 30)
        runs = []
        for index in range(args.runs):
            decision, serving = one_run(stack, autoscaler)
            runs.append((decision, serving))
            print(
                f"run {index + 1}: decision {decision:.2f} s, new replica serving {serving:.2f} s",
                flush=True,
            )
        metrics = httpx.get(f"{autoscaler}/metrics", timeout=5).text
    cpu, wall = (tick_seconds(metrics, clock) for clock in ("cpu", "wall"))
    print(
        f"median over {args.runs} runs (interval {args.interval:g} s): decision {statistics.median(r[0] for r in runs):.2f} s, "
        f"new replica serving {statistics.median(r[1] for r in runs):.2f} s"
    )
    print(f"loop overhead per evaluation: {cpu * 1000:.1f} ms CPU, {wall * 1000:.1f} ms wall")


if __name__ == "__main__":
    main()
