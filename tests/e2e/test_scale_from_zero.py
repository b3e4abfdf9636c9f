"""Scale from zero on the stack as the program deploys it: with `replicas.min: 0` the tier idles at no replica,
and the first requests wait in HAProxy while the autoscaler starts one, and are served: no 503."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from testbed.from_zero import APP, POLICY, first_requests, wait_idle_at_zero
from testbed.stack import TestStack, stand_up

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack() -> Iterator[TestStack]:
    with stand_up(docker.from_env(), autoscaler=POLICY, app=APP) as deployed:
        yield deployed


def test_the_tier_idles_at_zero_and_its_first_requests_are_served(stack: TestStack) -> None:
    wait_idle_at_zero(stack)
    got = first_requests(stack)
    assert got.replicas_before == 0
    assert got.statuses == [200, 200, 200], got
    assert stack.replicas() >= 1
    # The held request waited for a replica to start: it cannot have been answered by one that already ran.
    assert got.latencies_s[0] > 0.5, got


def test_after_its_idle_period_the_tier_goes_back_to_zero_and_serves_again(stack: TestStack) -> None:
    wait_idle_at_zero(stack)
    got = first_requests(stack, count=1)
    assert got.statuses == [200], got
