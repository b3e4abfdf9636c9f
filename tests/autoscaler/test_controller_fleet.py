"""The control loop with a warm pool: each tick plans the worker VMs for the replicas it decided, takes the
steps (unless dry-run), and reports every VM's state. A VM whose hypervisor cannot be read is left alone (a
failure to read Swarm holds the fleet); one that never becomes ready stops counting as booting."""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.controller import Controller, Event
from autoscaler.fleet import FleetPolicy, Step, VmState
from autoscaler.forecast import PredictivePolicy
from autoscaler.policy import load_policy
from autoscaler.warm_pool import PowerOnRecord
from tests.autoscaler.test_controller import POLICY, Clock, FakeReplicas, FakeSource

FLEET_POLICY = FleetPolicy(vms=("w0", "w1"), replicas_per_vm=2, scale_in_after_s=30)


@dataclass
class FakeFleet:
    states: list[VmState]
    applied: list[Step] = field(default_factory=list)
    unreadable: bool = False
    errors: list[str] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    handing_over: dict[str, str] = field(default_factory=dict)
    extra: int = 0
    records: list[PowerOnRecord] = field(default_factory=list)

    def take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes

    def progress(self) -> dict[str, str]:
        return dict(self.handing_over)

    def extra_replicas(self) -> int:
        return self.extra

    def power_on_records(self) -> list[PowerOnRecord]:
        return list(self.records)

    def observe(self) -> list[VmState]:
        if self.unreadable:
            raise ConnectionRefusedError("libvirt socket")
        return self.states

    def busy(self, name: str) -> bool:
        return name in self.in_flight

    def apply(self, step: Step) -> bool:
        self.applied.append(step)
        return True

    def take_errors(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors


def loop(
    fleet: FakeFleet, dry_run: bool = False, replicas: FakeReplicas | None = None
) -> tuple[Controller, FakeSource]:
    clock = Clock()
    source = FakeSource(clock, ready=2)
    policy = load_policy({**POLICY, "dry_run": dry_run})
    count = replicas or FakeReplicas(2)
    return Controller(policy, source, count, clock, clock, fleet=(fleet, FLEET_POLICY)), source


def two_vms() -> list[VmState]:
    return [VmState("w0", True, True, True, 2), VmState("w1", False, False, False, 0)]


def test_more_replicas_than_the_running_worker_holds_powers_on_the_warm_vm() -> None:
    fleet = FakeFleet(two_vms())
    controller, source = loop(fleet)
    source.sessions_per_replica = 20  # asks for 4 replicas: two workers
    event = controller.tick()
    assert event.desired == 4
    assert [(s.verb, s.vm) for s in fleet.applied] == [("power_on", "w1")]
    assert event.vm_steps == ("power_on w1: 2 workers needed for 4 replicas",)
    assert event.vms == {"w0": "active (2 tasks)", "w1": "off"}
    assert event.vms_running == 1


def test_a_vm_busy_with_its_last_step_is_left_alone() -> None:
    fleet = FakeFleet(two_vms(), in_flight={"w1"})
    controller, source = loop(fleet)
    source.sessions_per_replica = 20
    assert controller.tick().vm_steps == ()
    assert fleet.applied == []


def test_dry_run_reports_but_powers_nothing() -> None:
    fleet = FakeFleet(two_vms())
    controller, source = loop(fleet, dry_run=True)
    source.sessions_per_replica = 20
    event = controller.tick()
    assert fleet.applied == []
    assert event.vm_steps == ()


def test_unreadable_vms_hold_the_fleet_and_say_why() -> None:
    fleet = FakeFleet(two_vms(), unreadable=True)
    controller, source = loop(fleet)
    source.sessions_per_replica = 20
    event = controller.tick()
    assert fleet.applied == []
    assert event.error == "VMs unreadable, holding the fleet: ConnectionRefusedError: libvirt socket"
    assert event.desired == 4, "the replica decision itself still stands"


def test_a_failed_background_step_is_reported_in_the_next_event() -> None:
    fleet = FakeFleet(two_vms(), errors=["power_on w1 failed: RuntimeError: no such domain"])
    controller, _ = loop(fleet)
    assert controller.tick().error == "power_on w1 failed: RuntimeError: no such domain"
    assert controller.tick().error is None


def test_a_stack_without_vms_reports_no_vm_fields() -> None:
    clock = Clock()
    controller = Controller(load_policy(POLICY), FakeSource(clock), FakeReplicas(2), clock, clock)
    event = controller.tick()
    assert (event.vms, event.vms_running, event.vm_steps) == ({}, None, ())


def test_a_vm_that_never_becomes_ready_is_reported_stuck_and_another_is_powered_on() -> None:
    fleet = FakeFleet(
        [
            VmState("w0", True, True, True, 2),
            VmState("w1", True, False, False, 0),
            VmState("w2", False, False, False, 0),
        ]
    )
    clock = Clock()
    source = FakeSource(clock, ready=2, sessions_per_replica=20)  # asks for 4 replicas: two workers
    policy = load_policy({**POLICY, "deadlines": {"vm_boot_seconds": 60}})
    three = FleetPolicy(vms=("w0", "w1", "w2"), replicas_per_vm=2, scale_in_after_s=30)
    controller = Controller(policy, source, FakeReplicas(2), clock, clock, fleet=(fleet, three))
    first = controller.tick()
    assert (fleet.applied, first.vms["w1"], first.stuck) == ([], "booting", ())
    clock.now += 61
    event = controller.tick()
    assert [(s.verb, s.vm) for s in fleet.applied] == [("power_on", "w2")]
    assert event.vms["w1"] == "stuck booting"
    assert event.stuck == ("w1 powered on 61 s ago and not ready (deadline 60 s): not counted as booting",)


def test_an_unreadable_hypervisor_is_reported_and_holds_only_its_own_vms() -> None:
    fleet = FakeFleet(
        [VmState("w0", True, True, True, 2), VmState("w1", False, False, False, 0, error="h2: timeout")]
    )
    controller, source = loop(fleet)
    source.sessions_per_replica = 20
    event = controller.tick()
    assert (event.vms, event.stuck, event.error) == (
        {"w0": "active (2 tasks)", "w1": "unreadable"},
        ("w1 unreadable: h2: timeout",),
        None,
    )


def handing_over_w1(extra: int) -> FakeFleet:
    """w1 paused (its 1 task still serving) while its replacement starts on w0."""
    fleet = FakeFleet([VmState("w0", True, True, True, 2), VmState("w1", True, True, False, 1)])
    fleet.handing_over = {"w1": "waiting 12 s for 3 servers UP in HAProxy"}
    fleet.extra = extra
    return fleet


def test_a_hand_over_holds_the_loop_off_its_extra_replicas() -> None:
    """Swarm has 3 replicas, one of them the hand-over's: the load needs 2, which the loop must not set (the
    replacement would go before it is UP), nor does it count the extra one as its own."""
    replicas = FakeReplicas(3)
    controller, source = loop(handing_over_w1(extra=1), replicas=replicas)
    source.sessions_per_replica = 5  # 10 sessions over 2 ready: the load alone would ask for the minimum, 2
    event = controller.tick()
    assert (replicas.writes, event.current, event.desired, event.direction) == ([], 3, 2, "none")
    assert event.reasons[-1] == (
        "a VM hand-over is in progress (1 extra replicas): replica changes wait for its end"
    )
    assert event.vms["w1"] == "handing_over (waiting 12 s for 3 servers UP in HAProxy)"


def test_a_hand_over_holds_scale_out_too_and_the_loop_resumes_once_it_ends() -> None:
    fleet = handing_over_w1(extra=0)
    replicas = FakeReplicas(2)
    controller, source = loop(fleet, replicas=replicas)
    source.sessions_per_replica = 20  # asks for 4
    assert (controller.tick().desired, replicas.writes) == (2, [])
    fleet.handing_over, fleet.notes = {}, ["hand_over w1: parked (suspended)"]
    event = controller.tick()
    assert (event.desired, replicas.writes) == (4, [4])
    assert event.vm_steps[0] == "hand_over w1: parked (suspended)"


def ramping(mode: str) -> tuple[FakeFleet, list[Event]]:
    """Sessions per replica rising from 5 to 9.5 over a minute on one worker of two replicas: the rules still
    ask for 2 replicas (one worker), the trend for more within the power-on time (90 s before any measured)."""
    fleet = FakeFleet(two_vms())
    clock = Clock()
    source = FakeSource(clock, ready=2)
    policy = load_policy(POLICY)
    controller = Controller(
        policy,
        source,
        FakeReplicas(2),
        clock,
        clock,
        fleet=(fleet, FLEET_POLICY),
        predictive=PredictivePolicy(mode),  # type: ignore[arg-type]
    )
    events = []
    for second in range(0, 62, 2):
        source.sessions_per_replica = 5 + 4.5 * second / 60
        events.append(controller.tick())
        if fleet.applied:  # powered on: booting from now on, so on its way
            fleet.states = [fleet.states[0], VmState("w1", True, False, False, 0)]
        clock.now += 2
    return fleet, events


def test_predictive_power_on_starts_the_warm_vm_before_any_replica_is_pending() -> None:
    fleet, events = ramping("on")
    assert {e.desired for e in events} == {2}, "the rules alone never asked for a second worker"
    assert [(s.verb, s.vm, s.predictive) for s in fleet.applied] == [("power_on", "w1", True)]
    taken = [step for e in events for step in e.vm_steps]
    assert len(taken) == 1
    assert taken[0].startswith("power_on w1: trend: demand ")
    assert taken[0].endswith("in 90 s, more than 1 workers hold")


def test_forecast_only_records_what_it_would_do_once_and_does_nothing() -> None:
    fleet, events = ramping("forecast_only")
    assert fleet.applied == []
    recorded = [step for e in events for step in e.vm_steps]
    assert len(recorded) == 1
    assert recorded[0].startswith("forecast only, not taken: power_on w1: trend: demand ")
    assert events[-1].forecast is not None
    assert events[-1].forecast.startswith("demand ")


def test_predictive_off_waits_for_the_rules() -> None:
    fleet, events = ramping("off")
    assert (fleet.applied, events[-1].forecast) == ([], None)


def test_the_power_on_time_is_measured_from_the_step_to_the_node_ready() -> None:
    fleet = FakeFleet(two_vms())
    controller, source = loop(fleet)
    source.sessions_per_replica = 20
    controller.tick()  # powers w1 on
    fleet.states = [VmState("w0", True, True, True, 2), VmState("w1", True, False, False, 0)]
    controller.clock.now += 30  # type: ignore[attr-defined]
    controller.tick()
    fleet.states = [VmState("w0", True, True, True, 2), VmState("w1", True, True, True, 0)]
    controller.clock.now += 12  # type: ignore[attr-defined]
    controller.tick()
    assert list(controller.power_on_seconds) == [42.0]
