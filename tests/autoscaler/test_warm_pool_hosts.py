"""VMs on several hypervisors: each VM's power state is read, and changed, through its own host's libvirt URI.

Real virsh against libvirt's built-in test driver: `test:///default` holds a running domain named "test"; a
node file of our own holds a second hypervisor whose domain "w2" is shut off. A fleet that asked the wrong
hypervisor would not find the domain at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoscaler.warm_pool import LibvirtFleet

SECOND_HOST = """<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>w2</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
  </domain>
</node>
"""


class NoNodes:
    """A Swarm with no worker nodes yet: the fleet still reads each VM's power state."""

    def __init__(self) -> None:
        self.nodes = self

    def list(self) -> list[Any]:
        return []


def test_each_vm_is_read_through_its_own_hypervisor(tmp_path: Path) -> None:
    node_file = tmp_path / "second-host.xml"
    node_file.write_text(SECOND_HOST)
    fleet = LibvirtFleet(NoNodes(), {"test": "test:///default", "w2": f"test://{node_file}"}, "suspended")
    states = {state.name: state.powered for state in fleet.observe()}
    assert states == {"test": True, "w2": False}


def test_a_vm_asked_of_the_wrong_hypervisor_is_not_found(tmp_path: Path) -> None:
    fleet = LibvirtFleet(NoNodes(), {"w2": "test:///default"}, "suspended")
    with pytest.raises(RuntimeError, match=r"virsh domstate w2: .*w2"):
        fleet.observe()
