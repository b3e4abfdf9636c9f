"""A worker VM's node is admitted (labelled by node ID) only when its address is the VM's own lease: a node
name is whatever the joining engine claims."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from autoscaler.libvirt import Virsh
from autoscaler.warm_pool import LibvirtFleet
from components.vm_join import admit, lease_addresses


@dataclass
class FakeNode:
    id: str
    attrs: dict[str, Any]
    updates: list[dict[str, Any]] = field(default_factory=list)

    def update(self, spec: dict[str, Any]) -> None:
        self.updates.append(spec)


@dataclass
class FakeNodes:
    node: FakeNode | None

    def find(self, hostname: str) -> FakeNode | None:
        return self.node


@dataclass
class FakeFleet:
    nodes: FakeNodes


def node_at(address: str) -> FakeNode:
    spec = {"Role": "worker", "Availability": "active", "Labels": {"kept": "yes"}}
    return FakeNode("n0de1d", {"Status": {"State": "ready", "Addr": address}, "Spec": spec})


def fleet_of(node: FakeNode | None) -> LibvirtFleet:
    return cast(LibvirtFleet, FakeFleet(FakeNodes(node)))


def test_the_vms_own_node_is_labelled_admitted_by_its_id_and_keeps_its_other_labels() -> None:
    node = node_at("10.77.0.12")
    assert admit(fleet_of(node), "hs-worker-0", {"10.77.0.12"}) == "n0de1d"
    assert node.updates == [
        {
            "Role": "worker",
            "Availability": "active",
            "Labels": {"kept": "yes", "dev.hostscale.admitted": "true"},
        }
    ]


@pytest.mark.parametrize(
    ("node", "addresses", "message"),
    [
        pytest.param(
            node_at("10.77.0.99"), {"10.77.0.12"},
            "the node named hs-worker-0 (n0de1d) is at 10.77.0.99, not at the VM's address (10.77.0.12): not admitted",
            id="a node elsewhere that took the VM's name",
        ),
        pytest.param(
            node_at("10.77.0.12"), set(),
            "the node named hs-worker-0 (n0de1d) is at 10.77.0.12, not at the VM's address (none leased): not admitted",
            id="a VM without a lease",
        ),
        pytest.param(None, {"10.77.0.12"}, "no Swarm node named hs-worker-0", id="no node at all"),
    ],
)  # fmt: skip
def test_a_node_that_is_not_the_vm_is_not_admitted(
    node: FakeNode | None, addresses: set[str], message: str
) -> None:
    with pytest.raises(RuntimeError) as error:
        admit(fleet_of(node), "hs-worker-0", addresses)
    assert str(error.value) == message
    assert node is None or node.updates == []


class FakeVirsh:
    def __init__(self, output: str) -> None:
        self.output = output
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str) -> str:
        self.calls.append(args)
        return self.output


def test_the_vms_addresses_come_from_its_dhcp_leases() -> None:
    virsh = FakeVirsh(
        " vnet3      52:54:00:6b:29:0e    ipv4         10.77.0.12/24\n"
        " vnet4      52:54:00:6b:29:0f    ipv4         10.77.0.13/24"
    )
    assert lease_addresses(cast(Virsh, virsh), "hs-worker-0") == {"10.77.0.12", "10.77.0.13"}
    assert virsh.calls == [("domifaddr", "hs-worker-0", "--source", "lease")]
