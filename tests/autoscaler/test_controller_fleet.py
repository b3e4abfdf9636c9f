"""The control loop with a warm pool: each tick plans the worker VMs for the replicas it decided, takes the
steps (unless dry-run), and reports every VM's state; VMs it cannot read hold the fleet."""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.controller import Controller
from autoscaler.fleet import FleetPolicy, Step, VmState
from autoscaler.policy import load_policy
from tests.autoscaler.test_controller import POLICY, Clock, FakeReplicas, FakeSource

FLEET_POLICY = FleetPolicy(vms=("w0", "w1"), replicas_per_vm=2, scale_in_after_s=30)


@dataclass
class FakeFleet:
    states: list[VmState]
    applied: list[Step] = field(default_factory=list)
    unreadable: bool = False
    errors: list[str] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)

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


def loop(fleet: FakeFleet, dry_run: bool = False) -> tuple[Controller, FakeSource]:
    clock = Clock()
    source = FakeSource(clock, ready=2)
    policy = load_policy({**POLICY, "dry_run": dry_run})
    return Controller(policy, source, FakeReplicas(2), clock, clock, fleet=(fleet, FLEET_POLICY)), source


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
