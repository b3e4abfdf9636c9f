"""Bounded HTTP load from worker threads, recording which replica served each request and when."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from testbed.waiting import Deadline


class Load:
    """Bounded load through HAProxy: `workers` clients, each one request at a time, until stopped or
    `max_seconds` have passed."""

    def __init__(self, url: str, workers: int, max_seconds: float, work_ms: int = 50) -> None:
        self.url, self.workers, self.max_seconds, self.work_ms = url, workers, max_seconds, work_ms
        self.stop = threading.Event()
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self.first_served: dict[str, float] = {}  # replica -> monotonic time of its first response
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        deadline = Deadline(self.max_seconds)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set() and not deadline.expired():
                try:
                    response = client.get("/api/work", params={"ms": self.work_ms})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:100]}")
                else:
                    replica = response.headers["x-served-by"]
                    with self._lock:
                        self.served[replica] += 1
                        self.first_served.setdefault(replica, time.monotonic())

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)
