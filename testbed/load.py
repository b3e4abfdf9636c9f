"""Bounded HTTP load from worker threads, recording which replica served each request and when.

Every answer is also kept as a Sample (when, status, latency, Retry-After), so a test can tell requests served
from requests refused, interval by interval (served_per_interval, Summary).
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from testbed.waiting import Deadline

SERVED = (200, 201)  # a read answered, a write acknowledged


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic time the answer arrived
    status: int  # 0: no HTTP answer at all (a transport error or a client timeout)
    seconds: float  # from sending the request to its answer
    retry_after: str | None
    detail: str  # the start of the body, or the transport error


class Load:
    """Bounded load through HAProxy: `workers` clients, each one request at a time, until stopped or
    `max_seconds` have passed. A client that was refused (503) waits `refused_pause_s` before its next request
    (0: at once), as a client honouring a short back-off would.

    Reads burn `work_ms` of CPU each (GET /api/work). With `writes`, every request is instead a POST /api/items
    named by a marker unique to this load, its client and its sequence number, and `acknowledged` maps the
    marker of every write answered 201 to its item's id: a drill counts duplicates and lost writes by marker."""

    def __init__(
        self,
        url: str,
        workers: int,
        max_seconds: float,
        work_ms: int = 50,
        refused_pause_s: float = 0.0,
        timeout_s: float = 30.0,
        writes: bool = False,
    ) -> None:
        self.url, self.workers, self.max_seconds, self.work_ms = url, workers, max_seconds, work_ms
        self.refused_pause_s, self.timeout_s, self.writes = refused_pause_s, timeout_s, writes
        self.marker = f"load-{secrets.token_hex(4)}"  # every write's name starts with it
        self.acknowledged: dict[str, int] = {}
        self.stop = threading.Event()
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self.first_served: dict[str, float] = {}  # replica -> monotonic time of its first response
        self.samples: list[Sample] = []
        self.started = self.ended = 0.0  # monotonic times the load started and stopped
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(worker,), daemon=True) for worker in range(workers)
        ]

    def _run(self, worker: int) -> None:
        deadline = Deadline(self.max_seconds)
        sequence = 0
        with httpx.Client(base_url=self.url, timeout=self.timeout_s) as client:
            while not self.stop.is_set() and not deadline.expired():
                sent = time.monotonic()
                sequence += 1
                name = f"{self.marker}-{worker}-{sequence}"
                try:
                    if self.writes:
                        response = client.post("/api/items", json={"name": name})
                    else:
                        response = client.get("/api/work", params={"ms": self.work_ms})
                except httpx.HTTPError as exc:
                    now = time.monotonic()
                    self.samples.append(Sample(now, 0, now - sent, None, repr(exc)))
                    self.failures.append(repr(exc))
                    continue
                now = time.monotonic()
                retry_after = response.headers.get("retry-after")
                self.samples.append(
                    Sample(now, response.status_code, now - sent, retry_after, response.text[:200])
                )
                if response.status_code not in SERVED:
                    self.failures.append(f"{response.status_code} {response.text[:100]}")
                    if response.status_code == 503 and self.refused_pause_s:
                        self.stop.wait(self.refused_pause_s)
                    continue
                if self.writes:
                    self.acknowledged[name] = int(response.json()["id"])
                # "" when the stack does not send X-Served-By (its default): counted, not named.
                replica = response.headers.get("x-served-by", "")
                with self._lock:
                    self.served[replica] += 1
                    self.first_served.setdefault(replica, time.monotonic())

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout_s + 10)
        self.ended = time.monotonic()


def served_per_interval(samples: list[Sample], start: float, end: float, interval_s: float) -> list[int]:
    """Requests served (200, 201) in each whole interval from `start` to `end`."""
    count = int((end - start) // interval_s)
    buckets = [0] * count
    for sample in samples:
        index = int((sample.at - start) // interval_s)
        if sample.status in SERVED and 0 <= index < count:
            buckets[index] += 1
    return buckets


@dataclass(frozen=True)
class Summary:
    seconds: float
    served: int
    refused: int  # 503 answers
    other: int  # anything else: another status, or no answer
    p50_ms: float
    p95_ms: float  # of served requests

    @property
    def served_per_s(self) -> float:
        return self.served / self.seconds

    @property
    def refused_per_s(self) -> float:
        return self.refused / self.seconds


def summarize(samples: list[Sample], start: float, end: float) -> Summary:
    within = [s for s in samples if start <= s.at < end]
    served = sorted(s.seconds * 1000 for s in within if s.status in SERVED)
    refused = sum(1 for s in within if s.status == 503)
    cuts = statistics.quantiles(served, n=100) if len(served) >= 2 else [float("nan")] * 99
    return Summary(end - start, len(served), refused, len(within) - len(served) - refused, cuts[49], cuts[94])
