"""The warm-pool planner: which VM to power on, activate, hand over or park, for the desired replicas."""

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


def test_surplus_waits_for_the_window_then_hands_over_the_emptiest() -> None:
    fleet = [vm("w0", "active", 1), vm("w1", "active", 0), vm("w2", "off")]
    first = plan(2, fleet, POLICY, None, now=100)
    assert steps(first) == []
    assert first.surplus_since == 100
    early = plan(2, fleet, POLICY, first.surplus_since, now=129)
    assert steps(early) == []
    assert early.surplus_since == 100
    due = plan(2, fleet, POLICY, early.surplus_since, now=130)
    assert steps(due) == [("hand_over", "w1")]
    assert due.surplus_since is None  # the next hand-over waits a whole window again


def test_surplus_interrupted_starts_the_window_over() -> None:
    fleet = [vm("w0", "active", 2), vm("w1", "active", 2), vm("w2", "off")]
    surplus = plan(2, fleet, POLICY, None, now=100)
    assert surplus.surplus_since == 100
    busy = plan(4, fleet, POLICY, surplus.surplus_since, now=120)
    assert busy.surplus_since is None
    assert plan(2, fleet, POLICY, busy.surplus_since, now=140).surplus_since == 140


def test_equal_tasks_drains_the_last_powered_on() -> None:
    fleet = [vm("w0", "active", 1), vm("w1", "active", 1), vm("w2", "off")]
    assert steps(plan(2, fleet, POLICY, 0, now=1000)) == [("hand_over", "w1")]


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


def test_a_vm_stuck_booting_is_not_counted_as_on_its_way() -> None:
    vms = [vm("w0", "active", 2), vm("w1", "booting"), vm("w2", "off")]
    result = plan(4, vms, POLICY, None, now=100, stuck=frozenset({"w1"}))
    assert steps(result) == [("power_on", "w2")]


def test_an_unreadable_vm_is_left_alone_and_the_others_still_scale_out() -> None:
    unreadable = VmState(
        "w1", False, False, False, 0, error="qemu+ssh://h2/system did not answer within 10 s"
    )
    result = plan(4, [vm("w0", "active", 2), unreadable, vm("w2", "off")], POLICY, None, now=100)
    assert steps(result) == [("power_on", "w2")]


def test_no_scale_in_while_a_vm_cannot_be_read() -> None:
    unreadable = VmState("w2", False, False, False, 0, error="unreadable")
    vms = [vm("w0", "active", 1), vm("w1", "active", 0), unreadable]
    result = plan(1, vms, POLICY, surplus_since=0, now=100)
    assert (steps(result), result.note) == ([], "no scale-in while w2 cannot be read")


@pytest.mark.parametrize(
    ("fleet", "expected_steps", "note"),
    [
        pytest.param(
            [vm("w0", "active", 1), vm("w1", "active", 1), vm("w2", "off")],
            [("hand_over", "w1")],
            "",
            id="a victim whose tasks fit on the others is handed over",
        ),
        pytest.param(
            [vm("w0", "active", 2), vm("w1", "active", 1), vm("w2", "off")],
            [],
            "no room for w1's 1 tasks on the other workers (0 free)",
            id="a victim whose tasks would not fit on the others is kept",
        ),
        pytest.param(
            [vm("w0", "active", 1), vm("w1", "active", 1), vm("w2", "active", 2)],
            [("hand_over", "w1")],
            "",
            id="room is counted over every other active worker",
        ),
        pytest.param(
            [vm("w0", "active", 2), vm("w1", "active", 0), vm("w2", "off")],
            [("hand_over", "w1")],
            "",
            id="a victim with no task needs no room",
        ),
    ],
)
def test_scale_in_hands_over_only_when_the_others_have_room(
    fleet: list[VmState], expected_steps: list[tuple[str, str]], note: str
) -> None:
    result = plan(1, fleet, POLICY, surplus_since=0, now=1000)
    assert (steps(result), result.note) == (expected_steps, note)


def warm(name: str) -> VmState:
    return VmState(name, powered=False, ready=False, active=False, tasks=0, warm=True)


def pool(**settings: object) -> FleetPolicy:
    return FleetPolicy(vms=("w0", "w1", "w2"), replicas_per_vm=2, scale_in_after_s=30, **settings)  # type: ignore[arg-type]


def test_a_warm_vm_is_powered_on_before_a_cold_one_earlier_in_order() -> None:
    result = plan(3, [vm("w0", "active", 2), vm("w1", "off"), warm("w2")], POLICY, None, now=100)
    assert steps(result) == [("power_on", "w2")]


@pytest.mark.parametrize(
    ("policy", "fleet", "expected"),
    [
        pytest.param(
            pool(),
            [vm("w0", "active", 2), vm("w1", "drained", 0), vm("w2", "off")],
            [("power_off", "w1", "suspended")],
            id="a drained idle VM parks warm by default",
        ),
        pytest.param(
            pool(park="stopped"),
            [vm("w0", "active", 2), vm("w1", "drained", 0), vm("w2", "off")],
            [("power_off", "w1", "stopped")],
            id="a pool that parks cold parks it cold",
        ),
        pytest.param(
            pool(warm_pool_max=1),
            [vm("w0", "active", 2), vm("w1", "drained", 0), warm("w2")],
            [("power_off", "w1", "stopped")],
            id="beyond the warm maximum it parks cold",
        ),
        pytest.param(
            pool(warm_pool_max=2),
            [vm("w0", "active", 2), vm("w1", "drained", 0), warm("w2")],
            [("power_off", "w1", "suspended")],
            id="within the warm maximum it parks warm",
        ),
        pytest.param(
            pool(reuse_on_scale_in=False),
            [vm("w0", "active", 1), vm("w1", "active", 0), vm("w2", "off")],
            [("hand_over", "w1", "stopped")],
            id="without reuse on scale-in the handed-over VM parks cold",
        ),
        pytest.param(
            pool(),
            [vm("w0", "active", 1), vm("w1", "active", 0), vm("w2", "off")],
            [("hand_over", "w1", "suspended")],
            id="with reuse on scale-in the handed-over VM returns to the warm pool",
        ),
        pytest.param(
            pool(warm_pool_min=1),
            [vm("w0", "active", 2), vm("w1", "off"), vm("w2", "off")],
            [("power_on", "w1", None)],
            id="below the warm minimum a cold VM is powered on to be prepared",
        ),
        pytest.param(
            pool(warm_pool_min=2),
            [vm("w0", "active", 2), warm("w1"), vm("w2", "off")],
            [("power_on", "w2", None)],
            id="the warm ones count toward the minimum",
        ),
        pytest.param(
            pool(warm_pool_min=1),
            [vm("w0", "active", 2), vm("w1", "booting"), vm("w2", "off")],
            [],
            id="one booting counts as on its way to the minimum",
        ),
        pytest.param(
            pool(warm_pool_min=1),
            [vm("w0", "active", 2), vm("w1", "drained", 0), vm("w2", "off")],
            [("power_off", "w1", "suspended")],
            id="a prepared VM once ready is parked warm and nothing more is prepared",
        ),
        pytest.param(
            pool(warm_pool_min=1),
            [vm("w0", "active", 2), warm("w1"), vm("w2", "off")],
            [],
            id="at the warm minimum nothing is prepared",
        ),
    ],
)
def test_the_warm_pool_size_and_reuse_decide_how_vms_park(
    policy: FleetPolicy, fleet: list[VmState], expected: list[tuple[str, str, str | None]]
) -> None:
    result = plan(2, fleet, policy, surplus_since=0, now=1000)
    assert [(s.verb, s.vm, s.park) for s in result.steps] == expected
