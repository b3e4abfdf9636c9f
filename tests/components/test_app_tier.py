"""The app tier's liveness check, run by the real engine: a replica that stops answering for a while (the worst
a busy replica does) is not declared unhealthy, so Swarm never kills it for being busy."""

from __future__ import annotations

import os
import signal
import time

from components.app_tier import liveness_check
from harness.engine_apply import _duration_ns
from testbed.containers import TestBed, health, published_url, wait_healthy, wait_ready

STALL_S = 40  # the old check (5 s timeout, 5 misses) declared a replica unhealthy after ~30 s without answers


def test_a_replica_that_does_not_answer_for_40_s_stays_healthy(testbed: TestBed) -> None:
    check = liveness_check(8000)
    testbed.postgres()
    replica = testbed.app(
        "app-0",
        healthcheck={
            "test": check.tests,
            "interval": _duration_ns(str(check.interval)),
            "timeout": _duration_ns(str(check.timeout)),
            "retries": check.retries,
            "start_period": _duration_ns(str(check.start_period)),
        },
    )
    wait_ready(published_url(replica))
    wait_healthy(replica, 30)
    # Stop the server process itself (not the container: the engine does not run probes in a paused one), so
    # every probe connects and waits for an answer that does not come, as with a replica behind on its work.
    server = int(replica.attrs["State"]["Pid"])
    os.kill(server, signal.SIGSTOP)
    try:
        seen = set()
        deadline = time.monotonic() + STALL_S
        while time.monotonic() < deadline:
            seen.add(health(replica))
            time.sleep(1)
    finally:
        os.kill(server, signal.SIGCONT)
    assert seen == {"healthy"}, f"health while stalled: {seen}"
    failing = replica.attrs["State"]["Health"]["FailingStreak"]
    assert failing >= 2, f"the probes should have been failing while it was stalled (streak {failing})"
    wait_healthy(replica, 30)
