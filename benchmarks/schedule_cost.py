"""What the schedules cost the loop: one evaluation of every schedule (held_at, what a tick pays when a schedule
opens or closes) and one cached read (ScheduleBook.at, what every other tick pays), for a typical policy and for
the worst case the look-ahead allows (a start every minute with windows that never close).

    uv run --frozen python -m benchmarks.schedule_cost --runs 7

No Docker, no network: pure CPU. Prints min / median / max over the runs, in microseconds per call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.policy import Policy, load_policy
from autoscaler.schedule import ScheduleBook, held_at

RULES: dict[str, Any] = {
    "replicas": {"min": 1, "max": 10},
    "targets": [{"name": "s", "metric": "sessions_per_replica", "target": 10}],
    "timezone": "Europe/Berlin",
}
TYPICAL = [
    {"name": "office", "start": "0 8 * * MON-FRI", "duration_seconds": 36000, "min_replicas": 4},
    {"name": "batch", "start": "30 2 * * *", "duration_seconds": 3600, "min_replicas": 3},
    {"name": "launch", "start": "0 9 7 12 *", "duration_seconds": 14400, "min_replicas": 8},
]
WORST = [{"name": "always", "start": "* * * * *", "duration_seconds": 120, "min_replicas": 2}]


def per_call_us(call: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


def measure(policy: Policy, calls: int, runs: int) -> tuple[list[float], list[float]]:
    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    evaluations = [per_call_us(lambda: held_at(policy, now), calls) for _ in range(runs)]
    book = ScheduleBook(policy)
    book.at(now)
    later = now + timedelta(seconds=2)
    cached = [per_call_us(lambda: book.at(later), calls * 100) for _ in range(runs)]
    return evaluations, cached


def line(name: str, values: list[float]) -> str:
    return f"{name:<42} min {min(values):9.1f}  median {statistics.median(values):9.1f}  max {max(values):9.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    for name, schedules in (("3 typical schedules", TYPICAL), ("a start every minute, 2 min windows", WORST)):
        evaluations, cached = measure(load_policy({**RULES, "schedules": schedules}), args.calls, args.runs)
        print(line(f"{name}: evaluate", evaluations))
        print(line(f"{name}: cached tick", cached))


if __name__ == "__main__":
    main()
