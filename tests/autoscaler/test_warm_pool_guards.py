"""The actuator's own guards, whatever the planner asked: a node that is not drained, or that still runs a
task, is never powered off (checked against Swarm right before the power-off, with no virsh call made)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

import pytest

from autoscaler.warm_pool import LibvirtFleet


@dataclass
class FakeNode:
    id: str
    attrs: dict[str, Any]


@dataclass
class FakeClient:
    node: FakeNode
    running_tasks: int
    api: Any = field(init=False)
    nodes: Any = field(init=False)

    def __post_init__(self) -> None:
        self.api = self
        self.nodes = self

    def list(self) -> builtins.list[FakeNode]:
        return [self.node]

    def tasks(self, filters: dict[str, str]) -> builtins.list[dict[str, Any]]:
        assert filters == {"node": self.node.id}
        # A finished task does not count; one still running (even one Swarm has asked to stop) does.
        return [{"Status": {"State": "shutdown"}}] + [{"Status": {"State": "running"}}] * self.running_tasks


def node(availability: str) -> FakeNode:
    return FakeNode(
        "n1",
        {
            "Description": {"Hostname": "w1"},
            "Status": {"State": "ready"},
            "Spec": {"Availability": availability, "Role": "worker"},
            "CreatedAt": "2026-11-25T00:00:00Z",
        },
    )


def fleet(client: FakeClient) -> LibvirtFleet:
    # A URI no virsh call could reach: the guards must refuse before any.
    return LibvirtFleet(client, {"w1": "test:///refuse"}, "suspended", settle_s=0)


def test_an_active_node_is_never_powered_off() -> None:
    with pytest.raises(RuntimeError, match="w1 is not drained: refusing to power it off"):
        fleet(FakeClient(node("active"), running_tasks=0)).park("w1")


def test_a_drained_node_with_a_task_is_never_powered_off() -> None:
    with pytest.raises(RuntimeError, match="w1 still has 1 tasks: refusing to power it off"):
        fleet(FakeClient(node("drain"), running_tasks=1)).park("w1")


def test_a_node_that_has_not_described_itself_yet_is_not_the_vm() -> None:
    joining = FakeNode(
        "n0", {"Status": {"State": "unknown"}, "Spec": {}, "CreatedAt": "2026-11-25T00:00:01Z"}
    )
    client = FakeClient(node("drain"), running_tasks=0)
    client.list = lambda: [joining, client.node]  # type: ignore[method-assign]
    found = fleet(client).nodes.find("w1")
    assert found is client.node
