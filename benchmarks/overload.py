"""The tier at its capacity and at twice what it holds: served/s, refused/s and the latency of served requests.

The local stack's request path (testbed/stack.py) in the overload scenario of testbed/overload.py: the
autoscaler pinned at 3 replicas, 4 requests in each at once, 8 places in HAProxy's queue. Each run loads it
with `AT_CAPACITY` clients (1x: every replica slot busy, nothing queued) and then with `OVERLOAD_CLIENTS`
(2x what the tier holds in the replicas and the queue together; a refused client waits Retry-After, 1 s).
GET /api/work burns 50 ms of CPU per request.

    flock /tmp/hostscale-docker.lock uv run --frozen python -m benchmarks.overload --runs 5 --seconds 15

Prints one line per run and level, then min / median / max over the runs.
"""

from __future__ import annotations

import argparse
import statistics

import docker

from testbed.load import Load, Summary, summarize
from testbed.overload import (
    AT_CAPACITY,
    OVERLOAD_CLIENTS,
    QUEUE_TIMEOUT_S,
    REFUSED_PAUSE_S,
    WORK_MS,
    stand_up_args,
)
from testbed.stack import stand_up

WARM_UP_S = 3.0  # left out of each run's figures: clients connecting, the queue filling

LEVELS = {"1x": AT_CAPACITY, "2x": OVERLOAD_CLIENTS}


def one_run(url: str, clients: int, seconds: float) -> Summary:
    with Load(
        url,
        workers=clients,
        max_seconds=seconds,
        work_ms=WORK_MS,
        refused_pause_s=REFUSED_PAUSE_S,
        timeout_s=QUEUE_TIMEOUT_S + 20,
    ) as load:
        load.threads[0].join(timeout=seconds + 60)
    return summarize(load.samples, load.started + WARM_UP_S, load.ended - 0.5)


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    results: dict[str, list[Summary]] = {level: [] for level in LEVELS}
    with stand_up(docker.from_env(), **stand_up_args()) as stack:
        for run in range(1, args.runs + 1):
            for level, clients in LEVELS.items():
                summary = one_run(stack.url, clients, args.seconds)
                results[level].append(summary)
                print(
                    f"run {run} {level} ({clients} clients): {summary.served_per_s:.1f} served/s, "
                    f"{summary.refused_per_s:.1f} refused/s, {summary.other} other, "
                    f"p50 {summary.p50_ms:.0f} ms, p95 {summary.p95_ms:.0f} ms",
                    flush=True,
                )
    print(
        f"\n{args.runs} runs of {args.seconds:.0f} s (first {WARM_UP_S:.0f} s left out), min / median / max:"
    )
    print("| load | clients | served/s | refused/s | p50 ms (served) | p95 ms (served) | other answers |")
    print("|---|---|---|---|---|---|---|")
    for level, clients in LEVELS.items():
        runs = results[level]
        print(
            f"| {level} | {clients} | {spread([r.served_per_s for r in runs])} "
            f"| {spread([r.refused_per_s for r in runs])} | {spread([r.p50_ms for r in runs])} "
            f"| {spread([r.p95_ms for r in runs])} | {sum(r.other for r in runs)} |"
        )


if __name__ == "__main__":
    main()
