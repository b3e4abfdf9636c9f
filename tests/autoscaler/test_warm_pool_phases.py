"""Every power-on records its phases (autoscaler/warm_pool.py POWER_ON_PHASES): virsh start returned, the node
ready, an app task running there, its server UP in HAProxy, its first request served; against a fake Swarm and
HAProxy that reach each one after a few reads, and a virsh that records its calls."""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from starlette.testclient import TestClient

from autoscaler import warm_pool
from autoscaler.haproxy_metrics import ServerRow
from autoscaler.status import create_status_app
from autoscaler.warm_pool import POWER_ON_PHASES, HandOverDeadlines, LibvirtFleet, PowerOnRecord
from testbed.waiting import wait_for
from tests.autoscaler import LOOPBACK
from tests.autoscaler.test_controller_fleet import FakeFleet, two_vms
from tests.autoscaler.test_controller_fleet import loop as fleet_loop

VM = "w1"
TASK_IP = "10.0.1.7"


PARKED_S = 300.0  # how long the fake VM was parked: its guest clock is that far behind once restored


class Virsh:
    managed_save: ClassVar[bool] = True
    agent_answers: ClassVar[bool] = True
    calls: ClassVar[builtins.list[tuple[str, ...]]] = []

    def __init__(self, uri: str, forced_command: bool = False) -> None:
        self.uri = uri

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        Virsh.calls.append(args)
        if args[0] == "dominfo":
            return f"Name:           {VM}\nManaged save:   {'yes' if Virsh.managed_save else 'no'}"
        if args[0] == "domtime" and not Virsh.agent_answers:
            raise RuntimeError(
                "virsh domtime: Guest agent is not responding: QEMU guest agent is not connected"
            )
        if args == ("domtime", VM):
            return f"Time: {int(time.time() - PARKED_S)}"
        return ""


@pytest.fixture(autouse=True)
def virsh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm_pool, "Virsh", Virsh)
    Virsh.calls = []
    Virsh.agent_answers = True


@dataclass
class Node:
    swarm: Swarm
    id: str = "n1"

    @property
    def attrs(self) -> dict[str, Any]:
        ready = self.swarm.reads >= 2
        return {
            "Description": {"Hostname": VM},
            "Status": {"State": "ready" if ready else "down"},
            "Spec": {"Availability": "active"},
            "CreatedAt": "2026-12-01T00:00:00Z",
        }


@dataclass
class Swarm:
    """Read by read, the VM comes back: its node ready at read 2, its task running at 4, UP in HAProxy at 6
    (a slot that had served 7 sessions for an earlier task), its first request at 8; `never_up` stops at 6."""

    never_up: bool = False
    first_request_at: int = 8
    reads: int = 0
    api: Any = field(init=False)
    nodes: Any = field(init=False)
    name: str = "hs-app"

    def __post_init__(self) -> None:
        self.api = self.nodes = self

    def list(self) -> builtins.list[Node]:
        self.reads += 1
        return [Node(self)]

    def tasks(self, filters: dict[str, str]) -> builtins.list[dict[str, Any]]:
        self.reads += 1
        state = "running" if self.reads >= 4 else "starting"
        return [
            {
                "Status": {"State": state},
                "NetworksAttachments": [{"Addresses": [f"{TASK_IP}/24"]}],
            }
        ]

    def servers(self) -> dict[str, ServerRow]:
        self.reads += 1
        up = self.reads >= 6 and not self.never_up
        served = 8.0 if self.reads >= self.first_request_at else 7.0
        return {
            "app-1": ServerRow("UP", "10.0.1.3", 40.0),
            "app-2": ServerRow("UP" if up else "MAINT", TASK_IP if up else "", served),
        }

    # the replica count the fleet is given (not changed by a power-on)
    def get(self) -> int:
        return 2

    def set(self, count: int) -> None:
        raise AssertionError("a power-on does not change the replicas")


def fleet(swarm: Swarm, deadline_s: float = 10) -> LibvirtFleet:
    return LibvirtFleet(
        swarm,
        {VM: "qemu:///system"},
        "suspended",
        replicas=swarm,
        up_servers=lambda: 0,
        haproxy_servers=swarm.servers,
        hand_over_deadlines=HandOverDeadlines(poll_s=0.01),
        phases_deadline_s=deadline_s,
    )


def wait_record(pool: LibvirtFleet) -> PowerOnRecord:
    wait_for("the power-on's record", lambda: bool(pool.power_on_records()), 10, 0.01)
    return pool.power_on_records()[0]


def test_a_restore_records_every_phase_in_order() -> None:
    pool = fleet(Swarm())
    pool.power_on(VM)
    record = wait_record(pool)
    assert (record.vm, record.mode, record.error) == (VM, "restore", None)
    assert list(record.phases) == list(POWER_ON_PHASES)
    seconds = list(record.phases.values())
    assert seconds == sorted(seconds)
    assert all(s > 0 for s in seconds)
    assert Virsh.calls == [("dominfo", VM), ("start", VM), ("domtime", VM), ("domtime", VM, "--sync")]
    assert record.clock_behind_s is not None
    assert PARKED_S - 2 <= record.clock_behind_s <= PARKED_S + 2
    assert pool.take_notes() == [record.line()]
    assert record.line().startswith(f"power_on {VM}: restore: started ")
    assert "; guest clock was 30" in record.line()


def test_a_guest_whose_agent_does_not_answer_is_reported_and_its_power_on_goes_on() -> None:
    Virsh.agent_answers = False
    pool = fleet(Swarm())
    pool.power_on(VM)
    record = wait_record(pool)
    assert (list(record.phases), record.error, record.clock_behind_s) == (list(POWER_ON_PHASES), None, None)
    notes = pool.take_notes()
    assert notes[0].startswith(f"power_on {VM}: guest clock not synced: virsh domtime: Guest agent is not")
    assert notes[1:] == [record.line()]


def test_a_first_request_served_before_the_poll_that_saw_it_up_counts() -> None:
    pool = fleet(Swarm(first_request_at=6))  # UP and serving by the same read
    pool.power_on(VM)
    record = wait_record(pool)
    assert (list(record.phases), record.error) == (list(POWER_ON_PHASES), None)


def test_a_boot_is_recorded_as_a_boot() -> None:
    Virsh.managed_save = False
    try:
        pool = fleet(Swarm())
        pool.power_on(VM)
        record = wait_record(pool)
        assert (record.mode, record.clock_behind_s) == ("boot", None)
        assert not [call for call in Virsh.calls if call[0] == "domtime"], (
            "a booted guest's clock is the host's"
        )
    finally:
        Virsh.managed_save = True


def test_a_phase_never_reached_is_recorded_with_the_deadline() -> None:
    pool = fleet(Swarm(never_up=True), deadline_s=0.3)
    pool.power_on(VM)
    record = wait_record(pool)
    assert list(record.phases) == ["started", "node_ready", "task_running"]
    assert record.error == "up in haproxy not reached within 0.3 s"


def test_the_phases_are_histograms_in_metrics_and_the_last_ones_in_status() -> None:
    fake = FakeFleet(two_vms())
    fake.records = [
        PowerOnRecord(VM, "restore", 1.0, {"started": 11.0, "node_ready": 20.0}),
        PowerOnRecord(VM, "restore", 2.0, {"started": 12.0, "node_ready": 50.0}),
    ]
    controller, _ = fleet_loop(fake)
    controller.tick()
    client = TestClient(create_status_app(controller), base_url=LOOPBACK)
    text = client.get("/metrics").text
    name = "hostscale_autoscaler_power_on_phase_seconds"
    assert f'{name}_bucket{{le="15",mode="restore",phase="started"}} 2.0' in text
    assert f'{name}_bucket{{le="20",mode="restore",phase="node_ready"}} 1.0' in text
    assert f'{name}_bucket{{le="60",mode="restore",phase="node_ready"}} 2.0' in text
    assert f'{name}_count{{mode="restore",phase="node_ready"}} 2.0' in text
    assert f'{name}_sum{{mode="restore",phase="node_ready"}} 70.0' in text
    status = client.get("/status").json()
    assert status["power_ons"][-1] == {
        "vm": VM,
        "mode": "restore",
        "at": 2.0,
        "phases": {"started": 12.0, "node_ready": 50.0},
        "error": None,
        "clock_behind_s": None,
    }
