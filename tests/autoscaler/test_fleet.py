"""The warm-pool planner: which VM to power on, activate, drain or park, for the desired replicas."""

from __future__ import annotations

import pytest

from autoscaler.fleet import FleetPolicy, VmState, plan, workers_needed

POLICY = FleetPolicy(vms=("w0", "w1", "w2"), replicas_per_vm=2, scale_in_after_s=30)


def vm(name: str, state: str, tasks: int = 0) -> VmState:
    """state: off | booting | active | drained"""
    return VmState(
        name,
        powered=state != "off",
        ready=state in ("active", "drained"),
        active=state == "active",
        tasks=tasks,
    )


def steps(result: object) -> list[tuple[str, str]]:
    return [(s.verb, s.vm) for s in result.steps]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("desired", "needed"), [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3), (50, 3)]
)
def test_workers_needed_is_ceil_of_capacity_within_the_pool(desired: int, needed: int) -> None:
    assert workers_needed(desired, POLICY) == needed


def test_short_of_capacity_powers_on_the_first_warm_vm() -> None:
    result = plan(3, [vm("w0", "active", 2), vm("w1", "off"), vm("w2", "off")], POLICY, None, now=100)
    assert steps(result) == [("power_on", "w1")]
    assert result.steps[0].reason == "2 workers needed for 3 replicas"


def test_a_booting_vm_counts_as_on_its_way() -> None:
    result = plan(3, [vm("w0", "active", 2), vm("w1", "booting"), vm("w2", "off")], POLICY, None, now=100)
    assert steps(result) == []


def test_a_ready_drained_vm_is_activated_before_another_is_powered_on() -> None:
    result = plan(6, [vm("w0", "active", 2), vm("w1", "drained"), vm("w2", "off")], POLICY, None, now=100)
    assert steps(result) == [("activate", "w1"), ("power_on", "w2")]


def test_more_need_than_pool_says_so() -> None:
    big = FleetPolicy(vms=("w0",), replicas_per_vm=2, scale_in_after_s=30)
    result = plan(9, [vm("w0", "active", 2)], big, None, now=0)
    assert steps(result) == []
    assert result.needed == 1


def test_surplus_waits_for_the_window_then_drains_the_emptiest() -> None:
    fleet = [vm("w0", "active", 2), vm("w1", "active", 1), vm("w2", "off")]
    first = plan(2, fleet, POLICY, None, now=100)
    assert steps(first) == []
    assert first.surplus_since == 100
    early = plan(2, fleet, POLICY, first.surplus_since, now=129)
    assert steps(early) == []
    assert early.surplus_since == 100
    due = plan(2, fleet, POLICY, early.surplus_since, now=130)
    assert steps(due) == [("drain", "w1")]
    assert due.surplus_since is None  # the next drain waits a whole window again


def test_surplus_interrupted_starts_the_window_over() -> None:
    fleet = [vm("w0", "active", 2), vm("w1", "active", 2), vm("w2", "off")]
    surplus = plan(2, fleet, POLICY, None, now=100)
    assert surplus.surplus_since == 100
    busy = plan(4, fleet, POLICY, surplus.surplus_since, now=120)
    assert busy.surplus_since is None
    assert plan(2, fleet, POLICY, busy.surplus_since, now=140).surplus_since == 140


def test_equal_tasks_drains_the_last_powered_on() -> None:
    fleet = [vm("w0", "active", 1), vm("w1", "active", 1), vm("w2", "off")]
    assert steps(plan(2, fleet, POLICY, 0, now=1000)) == [("drain", "w1")]


def test_never_the_last_worker() -> None:
    anyone = FleetPolicy(vms=("w0", "w1", "w2"), replicas_per_vm=2, scale_in_after_s=30, min_workers=0)
    result = plan(0, [vm("w0", "active", 0), vm("w1", "off"), vm("w2", "off")], anyone, 0, now=1000)
    assert steps(result) == []
    assert result.note == "never the last worker"


def test_a_drained_vm_is_parked_only_when_it_has_no_task() -> None:
    fleet = [vm("w0", "active", 2), vm("w1", "drained", 1), vm("w2", "drained", 0)]
    assert steps(plan(2, fleet, POLICY, None, now=0)) == [("power_off", "w2")]


def test_a_drained_vm_is_reactivated_rather_than_parked_when_needed_again() -> None:
    fleet = [vm("w0", "active", 2), vm("w1", "drained", 0), vm("w2", "off")]
    assert steps(plan(4, fleet, POLICY, None, now=0)) == [("activate", "w1")]
