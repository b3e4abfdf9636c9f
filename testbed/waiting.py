"""Bounded waits: every polling loop of the tests and benchmarks has a deadline, so nothing waits forever."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """A bounded wait: every polling loop in the tests has one, so nothing waits forever."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.end


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0, every_s: float = 0.2) -> None:
    deadline = Deadline(timeout_s)
    while not deadline.expired():
        if check():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
