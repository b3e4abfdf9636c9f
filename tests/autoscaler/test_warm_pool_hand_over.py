"""Scale-in as a hand-over (autoscaler/warm_pool.py LibvirtFleet.hand_over), against a fake Swarm that places,
starts and stops tasks the way Swarm's orchestrator does for these steps, and a virsh that records its calls
(the park's own guards and virsh are tested in test_warm_pool_guards.py and test_warm_pool_hosts.py). The property: the replicas serving never fall below the count the load needs, and the VM is
parked only once it has no task; a step past its deadline hands the VM back as it was."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from autoscaler import warm_pool
from autoscaler.fleet import Step
from autoscaler.warm_pool import HandOverDeadlines, HandOverFailed, LibvirtFleet
from testbed.waiting import wait_for

SERVICE = "hs-app"
VICTIM = "w1"
PER_NODE = 2


@dataclass
class FakeNode:
    swarm: FakeSwarm
    id: str
    hostname: str
    availability: str = "active"

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            "Description": {"Hostname": self.hostname},
            "Status": {"State": "ready"},
            "Spec": {"Availability": self.availability, "Role": "worker"},
            "CreatedAt": "2026-12-01T00:00:00Z",
        }

    def update(self, spec: dict[str, Any]) -> None:
        self.swarm.set_availability(self, spec["Availability"])


@dataclass
class FakeSwarm:
    """Two workers, w0 and the victim, and one replicated service with max PER_NODE replicas per node.
    A started task is UP after `start_reads` reads of HAProxy; `never_up` keeps new ones starting forever."""

    start_reads: int = 3
    never_up: bool = False
    store: builtins.list[dict[str, Any]] = field(default_factory=list)  # every task
    log: builtins.list[str] = field(default_factory=list)
    serving: builtins.list[int] = field(default_factory=list)  # tasks serving after every change and read
    api: Any = field(init=False)
    nodes: Any = field(init=False)

    def __post_init__(self) -> None:
        self.api = self.nodes = self
        self.all_nodes = [FakeNode(self, "n0", "w0"), FakeNode(self, "n1", VICTIM)]
        for node in self.all_nodes:
            self._add(node.id, state="running")

    def _add(self, node: str | None, state: str = "starting") -> None:
        self.store.append({"node": node, "desired": "running", "state": state, "reads": 0})

    def _record(self) -> None:
        self.serving.append(
            sum(1 for t in self.store if t["state"] == "running" and t["desired"] == "running")
        )

    # docker-py's client.nodes.list() and client.api.tasks()
    def list(self) -> builtins.list[FakeNode]:
        return self.all_nodes

    def tasks_of(self, node: str | None) -> builtins.list[dict[str, Any]]:
        return [t for t in self.store if t["node"] == node and t["state"] != "shutdown"]

    def tasks(self, filters: dict[str, str]) -> builtins.list[dict[str, Any]]:
        # A task Swarm asked to stop has stopped by the next look (its drain is the app's, not modelled here).
        for task in self.store:
            if task["desired"] != "running" and task["node"] is not None:
                task["state"] = "shutdown"
        self._record()
        found = [t for t in self.store if t["node"] == filters["node"]]
        if "service" in filters:
            assert filters["service"] == SERVICE
        if filters.get("desired-state") == "running":
            found = [t for t in found if t["desired"] == "running"]
        return [{"Status": {"State": t["state"]}, "DesiredState": t["desired"]} for t in found]

    # what the orchestrator does
    def set_availability(self, node: FakeNode, availability: str) -> None:
        self.log.append(f"{node.hostname} {availability}")
        node.availability = availability
        if availability == "drain":
            for task in self.tasks_of(node.id):
                task["desired"] = "shutdown"
                self._add(None)  # its replacement in the same slot: pending, no node has room
        self._record()

    def set_replicas(self, count: int) -> None:
        self.log.append(f"replicas {count}")
        wanted = [t for t in self.store if t["desired"] == "running"]
        for _ in range(count - len(wanted)):
            node = next(
                n.id
                for n in self.all_nodes
                if n.availability == "active" and len(self.tasks_of(n.id)) < PER_NODE
            )
            self._add(node)
        # Scale-down removes pending tasks first (Swarm's slotsByIndex: unassigned slots sort last), then the
        # ones not running yet (slotsByRunningState).
        doomed = sorted(wanted, key=lambda t: (t["node"] is not None, t["state"] == "running"))
        for task in doomed[: max(0, len(wanted) - count)]:
            assert task["state"] != "running", "the scale-down removed a replica that was serving"
            task["desired"], task["state"] = "remove", "shutdown"
        self._record()

    def up(self) -> int:
        for task in self.store:
            if task["state"] == "starting" and task["node"] is not None and not self.never_up:
                task["reads"] += 1
                if task["reads"] >= self.start_reads:
                    task["state"] = "running"
        self._record()
        return sum(1 for t in self.store if t["state"] == "running")


class RecordingVirsh:
    calls: ClassVar[builtins.list[tuple[str, ...]]] = []

    def __init__(self, uri: str, forced_command: bool = False) -> None:
        self.uri = uri

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        self.calls.append(args)
        return ""

    def state(self, domain: str, timeout: float = 600) -> str:
        return "shut off"  # a shutdown's wait ends at once


@pytest.fixture(autouse=True)
def virsh(monkeypatch: pytest.MonkeyPatch) -> builtins.list[tuple[str, ...]]:
    monkeypatch.setattr(warm_pool, "Virsh", RecordingVirsh)
    RecordingVirsh.calls = []
    return RecordingVirsh.calls


@dataclass
class FakeReplicas:
    swarm: FakeSwarm
    name: str = SERVICE

    def get(self) -> int:
        return sum(1 for t in self.swarm.store if t["desired"] == "running")

    def set(self, count: int) -> None:
        self.swarm.set_replicas(count)


def fleet(swarm: FakeSwarm, replacements_up_s: float = 5.0) -> LibvirtFleet:
    return LibvirtFleet(
        swarm,
        {VICTIM: "qemu:///system"},
        "suspended",
        settle_s=0,
        replicas=FakeReplicas(swarm),
        up_servers=swarm.up,
        hand_over_deadlines=HandOverDeadlines(
            replacements_up_s=replacements_up_s, stop_requested_s=5, tasks_gone_s=5, poll_s=0.01
        ),
    )


def test_the_replacement_is_up_before_the_vms_task_stops_and_the_vm_is_parked_empty(
    virsh: builtins.list[tuple[str, ...]],
) -> None:
    swarm = FakeSwarm()
    pool = fleet(swarm)
    pool.hand_over(VICTIM)
    assert swarm.log == [f"{VICTIM} pause", "replicas 3", f"{VICTIM} drain", "replicas 2"]
    assert min(swarm.serving) == 2, "capacity dipped below the two replicas the load needs"
    assert [note.split(" after ")[0] for note in pool.take_notes()] == [
        f"hand_over {VICTIM}: paused with 1 tasks of {SERVICE}",
        f"hand_over {VICTIM}: {SERVICE} 2 -> 3 replicas",
        f"hand_over {VICTIM}: 3 servers UP",
        f"hand_over {VICTIM}: drained",
        f"hand_over {VICTIM}: stop requested",
        f"hand_over {VICTIM}: {SERVICE} back to 2 replicas",
        f"hand_over {VICTIM}: no task left",
        f"hand_over {VICTIM}: parked (suspended)",
    ]
    assert (pool.extra_replicas(), pool.progress()) == (0, {})
    assert virsh == [("managedsave", VICTIM)]


def test_the_control_loop_sees_the_extra_replica_and_the_step_while_it_waits() -> None:
    swarm = FakeSwarm()
    pool = fleet(swarm)
    seen = []

    def up() -> int:
        seen.append((pool.extra_replicas(), pool.progress()[VICTIM].split(" s for ")[1]))
        return swarm.up()

    pool.up_servers = up
    pool.hand_over(VICTIM)
    assert set(seen) == {(1, "3 servers UP in HAProxy")}


def test_replacements_never_up_hand_the_vm_back_as_it_was(virsh: builtins.list[tuple[str, ...]]) -> None:
    swarm = FakeSwarm(never_up=True)
    pool = fleet(swarm, replacements_up_s=0.05)
    with pytest.raises(HandOverFailed, match=r"^3 servers UP in HAProxy: not within 0.05 s$"):
        pool.hand_over(VICTIM)
    assert swarm.log == [f"{VICTIM} pause", "replicas 3", "replicas 2", f"{VICTIM} active"]
    assert min(swarm.serving) == 2
    assert (pool.extra_replicas(), pool.progress()) == (0, {})
    assert virsh == []


def test_a_vm_that_is_not_an_active_worker_is_not_handed_over() -> None:
    swarm = FakeSwarm()
    swarm.all_nodes[1].availability = "drain"
    with pytest.raises(HandOverFailed, match=f"^{VICTIM} is not an active worker$"):
        fleet(swarm).hand_over(VICTIM)
    assert swarm.log == []


def test_a_failed_hand_over_is_reported_by_the_next_event() -> None:
    swarm = FakeSwarm(never_up=True)
    pool = fleet(swarm, replacements_up_s=0.05)
    assert pool.apply(Step("hand_over", VICTIM, "surplus"))
    errors: builtins.list[str] = []

    def reported() -> bool:
        errors.extend(pool.take_errors())
        return bool(errors)

    wait_for("the failure reported", reported, 10, 0.01)
    assert errors == [
        f"hand_over {VICTIM} failed: HandOverFailed: 3 servers UP in HAProxy: not within 0.05 s"
    ]


@pytest.mark.parametrize(
    ("park", "calls"),
    [
        pytest.param("suspended", [("managedsave", VICTIM)], id="back to the warm pool: a managed save"),
        pytest.param("stopped", [("shutdown", VICTIM)], id="not reused on scale-in: shut down, cold"),
    ],
)
def test_the_step_says_how_the_handed_over_vm_parks(
    park: str, calls: builtins.list[tuple[str, ...]], virsh: builtins.list[tuple[str, ...]]
) -> None:
    pool = fleet(FakeSwarm())
    assert pool.apply(Step("hand_over", VICTIM, "surplus", park=park))  # type: ignore[arg-type]
    wait_for("the hand-over", lambda: not pool.busy(VICTIM), 10, 0.01)
    assert (pool.take_errors(), virsh) == ([], calls)
    assert pool.take_notes()[-1] == f"hand_over {VICTIM}: parked ({park})"
