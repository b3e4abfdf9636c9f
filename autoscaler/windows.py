"""Short windows of fast HAProxy reads, kept in memory: the stable and panic averages Knative's KPA decides on.

Pure: samples go in with the loop's clock, averages come out. Per-replica metrics are averaged as the load
they stand for (value x ready replicas at that read) and divided by the replicas ready now, so a window that
spans a scale-out does not count the old, busier replicas against the new count (the KPA averages the total
concurrency the same way). Other metrics (response time, queue) are plain averages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from autoscaler.haproxy_metrics import BackendSample
from autoscaler.policy import WindowPolicy

PER_REPLICA = frozenset({"sessions_per_replica", "requests_per_second_per_replica"})


@dataclass(frozen=True)
class WindowView:
    """The windows at one moment; `latest` is the newest read (None before the first)."""

    latest: BackendSample | None
    stable: dict[str, float]
    panic: dict[str, float]
    demand: float  # the most demand seen in the stable window: the last replica waits a quiet window


def average(samples: Iterable[BackendSample], ready_now: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for sample in samples:
        for metric, value in sample.metrics.items():
            load = value * sample.ready if metric in PER_REPLICA else value
            totals[metric] = totals.get(metric, 0.0) + load
            counts[metric] = counts.get(metric, 0) + 1
    result = {}
    for metric, total in totals.items():
        mean = total / counts[metric]
        if metric in PER_REPLICA:
            if not ready_now:
                continue  # no replica to divide by: missing, as in a single read at zero ready replicas
            mean /= ready_now
        result[metric] = mean
    return result


class Windows:
    def __init__(self, policy: WindowPolicy) -> None:
        self.policy = policy
        self._samples: deque[BackendSample] = deque()

    def add(self, sample: BackendSample) -> None:
        self._samples.append(sample)
        horizon = sample.at - self.policy.stable_s
        while self._samples and self._samples[0].at < horizon:
            self._samples.popleft()

    def panic_view(self, now: float) -> WindowView:
        """The panic window alone (`stable` left empty): what each fast read checks, at the cost of a few
        samples instead of the whole stable window."""
        panic = []
        for sample in reversed(self._samples):
            if sample.at < now - self.policy.panic_s:
                break
            panic.append(sample)
        if not panic:
            return WindowView(None, {}, {}, 0.0)
        latest = panic[0]
        return WindowView(latest, {}, average(panic, latest.ready), max(s.demand for s in panic))

    def view(self, now: float) -> WindowView:
        samples = [s for s in self._samples if s.at >= now - self.policy.stable_s]
        if not samples:
            return WindowView(None, {}, {}, 0.0)
        latest = samples[-1]
        panic = [s for s in samples if s.at >= now - self.policy.panic_s]
        return WindowView(
            latest,
            average(samples, latest.ready),
            average(panic, latest.ready),
            max(s.demand for s in samples),
        )
