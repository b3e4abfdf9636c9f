"""Reaction time of the autoscaler: from the moment load crosses the rule to the first new replica serving a
request through HAProxy, phase by phase, over runs whose load starts at a random moment of the tick. On the
request path the Pulumi program deploys (a test stack of the local stack's config, testbed/stack.py).

    uv run python -m benchmarks.reaction_time [--runs 10] [--interval 2] [--windows] [--seed N]

Each run waits for the minimum (2 replicas, both UP, no scaling for a whole tick), then starts 12 clients of
/api/work?ms=50 (6 sessions per replica against a target of 2) at a random offset from the autoscaler's last
tick, and times from load start:
  decided:  the autoscaler's first scale-up event (it writes the count in the same tick),
  running:  the first new task's container reported running by Swarm,
  UP:       HAProxy's stats first show more than 2 servers UP (read every 0.1 s),
  serving:  the first response from a replica that did not exist before.
Then it stops the load and waits for the scale-in back to 2. `--windows` runs the policy with stable and panic
windows (fast reads, a burst wakes the loop). At the end: min / median / p95 / max per phase, and the
autoscaler's own CPU (its container's cgroup time over an idle minute and over all runs).
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from datetime import datetime
from typing import Any

import docker
import httpx

from autoscaler.haproxy_metrics import parse_stats_csv, stats_csv_url
from testbed.load import Load
from testbed.stack import TestStack, stand_up
from testbed.waiting import wait_for

PHASES = ("decided", "running", "UP", "serving")


def policy(interval_s: float, windows: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "replicas": {"min": 2, "max": 5},
        "interval_seconds": interval_s,
        "metrics_max_age_seconds": max(5, 3 * interval_s),
        "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
        "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 2, "max_step": 3},
        "scale_down": {"stabilization_seconds": 8, "cooldown_seconds": 2, "max_step": 1},
    }
    if windows:
        # Short windows so that each run's scale-in (held while panicking) ends within seconds.
        raw["windows"] = {
            "sample_interval_seconds": 0.25,
            "stable_seconds": max(6, interval_s),
            "panic_seconds": 1,
        }
    return raw


def status(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/status", timeout=5).json()
    return body


def events(url: str, since: int = 0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{url}/events", params={"since": since}, timeout=5).json()[
        "events"
    ]
    return found


class RecentEvents:
    """The autoscaler's latest events, fetched incrementally: asking for all 5,000 kept events at every poll
    would cost the autoscaler more CPU than its own loop, and that CPU is measured."""

    def __init__(self, url: str) -> None:
        self.url, self.seq = url, 0
        self.kept: list[dict[str, Any]] = []

    def __call__(self) -> list[dict[str, Any]]:
        self.kept = (self.kept + events(self.url, self.seq))[-50:]
        if self.kept:
            self.seq = self.kept[-1]["seq"]
        return self.kept


def answering(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class UpWatcher:
    """Polls HAProxy's backend stats every 0.1 s; records when more than `base` servers are first UP."""

    def __init__(self, metrics_url: str, base: int) -> None:
        self.url, self.base = stats_csv_url(metrics_url, "app"), base
        self.first_up: float | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self.stop.wait(0.1) and self.first_up is None:
                try:
                    _, servers, _, _ = parse_stats_csv(client.get(self.url).text, "app")
                except (httpx.HTTPError, ValueError):
                    continue
                if sum(1 for state in servers.values() if state == "UP") > self.base:
                    self.first_up = time.time()

    def __enter__(self) -> UpWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def settled(stack: TestStack, autoscaler: str, log: RecentEvents, interval_s: float) -> bool:
    """At the minimum, both UP, and the last ticks changed nothing (no scale-in still under way)."""
    recent = [e for e in log() if e["time"] > time.time() - 2 * interval_s]
    quiet = bool(recent) and all(e["direction"] == "none" and e["current"] == 2 for e in recent)
    return quiet and status(autoscaler)["ready"] == 2 and stack.replicas() == 2


def running_at(task: dict[str, Any]) -> float | None:
    state = task["Status"]
    if state["State"] != "running":
        return None
    # Docker's timestamps carry nanoseconds; fromisoformat takes up to microseconds.
    stamp = state["Timestamp"].rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6] or '0'}+00:00").timestamp()


def one_run(
    stack: TestStack, autoscaler: str, log: RecentEvents, interval_s: float, rng: random.Random
) -> dict[str, float]:
    wait_for("2 replicas, both UP, settled", lambda: settled(stack, autoscaler, log, interval_s), 180)
    existing_tasks = {t["ID"] for t in stack.running_tasks()}
    existing = {t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in stack.running_tasks()}
    last = log()[-1]
    # A random moment of the tick: the last tick's time plus a uniform offset, moved into the future.
    start_at = last["time"] + rng.uniform(0, interval_s)
    while start_at < time.time() + 0.05:
        start_at += interval_s
    time.sleep(start_at - time.time())
    with UpWatcher(stack.metrics_url, 2) as watcher:
        started_wall, started = time.time(), time.monotonic()
        with Load(stack.url, workers=12, max_seconds=60) as load:
            wait_for("a new replica to serve", lambda: bool(set(load.first_served) - existing), 60)
        first_new = min(t for replica, t in load.first_served.items() if replica not in existing)
    if load.failures:
        raise RuntimeError(f"{len(load.failures)} requests failed: {load.failures[:3]}")
    found = events(autoscaler, last["seq"])
    decided = next(e["time"] for e in found if e["acted"] and e["direction"] == "up")
    service = stack.client.api.tasks(filters={"service": stack.app_service})
    new_running = [at for t in service if t["ID"] not in existing_tasks and (at := running_at(t)) is not None]
    return {
        "offset": (started_wall - last["time"]) % interval_s,
        "decided": decided - started_wall,
        "running": min(new_running) - started_wall if new_running else float("nan"),
        "UP": watcher.first_up - started_wall if watcher.first_up is not None else float("nan"),
        "serving": first_new - started,
    }


def cpu_seconds(container: Any) -> float:
    """The container's cgroup CPU time so far (user and system, all its threads)."""
    stats = container.stats(stream=False)
    return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def summary(values: list[float]) -> str:
    clean = sorted(v for v in values if v == v)  # NaN: a phase a run could not time
    if len(clean) < 2:
        return "not enough runs"
    return (
        f"min {clean[0]:.2f} / median {statistics.median(clean):.2f} / p95 {p95(clean):.2f} / "
        f"max {clean[-1]:.2f} s ({len(clean)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="the policy's interval_seconds")
    parser.add_argument("--windows", action="store_true", help="stable and panic windows (fast reads)")
    parser.add_argument("--seed", type=int, default=None, help="for the random start offsets")
    parser.add_argument("--idle-seconds", type=float, default=60, help="the idle CPU measurement")
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - start offsets for a benchmark, not a secret
    with stand_up(
        docker.from_env(), autoscaler=policy(args.interval, args.windows), served_by_header=True
    ) as stack:
        autoscaler = stack.autoscaler_url
        wait_for("the autoscaler", lambda: answering(f"{autoscaler}/status"), 30)
        log = RecentEvents(autoscaler)
        wait_for("2 replicas, both UP, settled", lambda: settled(stack, autoscaler, log, args.interval), 180)
        container = stack.autoscaler()
        idle_from, idle_started = cpu_seconds(container), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (cpu_seconds(container) - idle_from) / (time.monotonic() - idle_started)
        runs = []
        busy_from, busy_started = cpu_seconds(container), time.monotonic()
        for index in range(args.runs):
            run = one_run(stack, autoscaler, log, args.interval, rng)
            runs.append(run)
            phases = ", ".join(f"{phase} {run[phase]:.2f}" for phase in PHASES)
            print(f"run {index + 1}: load at {run['offset']:.2f} s into the tick: {phases} s", flush=True)
        busy = (cpu_seconds(container) - busy_from) / (time.monotonic() - busy_started)
        metrics = httpx.get(f"{autoscaler}/metrics", timeout=5).text
    mode = "stable/panic windows, reads every 0.25 s" if args.windows else "one read per tick"
    print(f"over {args.runs} runs (interval {args.interval:g} s, {mode}), seconds from load start:")
    for phase in PHASES:
        print(f"  {phase:8} {summary([run[phase] for run in runs])}")
    print(
        f"autoscaler CPU: {idle * 100:.2f} % of a core idle ({args.idle_seconds:g} s), {busy * 100:.2f} % over the runs"
    )
    for line in metrics.splitlines():
        if line.startswith(("hostscale_autoscaler_tick_seconds_avg", "hostscale_autoscaler_sample_cpu")):
            print(f"  {line}")


if __name__ == "__main__":
    main()
