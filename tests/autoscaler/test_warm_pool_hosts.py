"""VMs on several hypervisors: each VM's power state is read, and changed, through its own host's libvirt URI.

Real virsh against libvirt's built-in test driver: `test:///default` holds a running domain named "test"; a
node file of our own holds a second hypervisor whose domain "w2" is shut off. A fleet that asked the wrong
hypervisor would not find the domain at all. A hypervisor that cannot be read, or does not answer within the
read deadline, marks only its own VMs unreadable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from autoscaler.fleet import VmState
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

# Two parked VMs: w2 with a managed-save image (warm: its start is a restore), w3 without (cold: a boot).
PARKED = """<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>w2</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
    <test:hasmanagedsave>yes</test:hasmanagedsave>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>w3</name>
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


def test_a_vm_asked_of_the_wrong_hypervisor_is_not_found() -> None:
    fleet = LibvirtFleet(NoNodes(), {"w2": "test:///default"}, "suspended")
    assert fleet.observe() == [VmState("w2", False, False, False, 0, error="no domain w2 on test:///default")]


def test_one_unreadable_hypervisor_leaves_the_vms_of_the_others_readable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-host.xml"
    fleet = LibvirtFleet(NoNodes(), {"test": "test:///default", "w2": f"test://{missing}"}, "suspended")
    readable, unreadable = fleet.observe()
    assert (readable.name, readable.powered, readable.error) == ("test", True, None)
    assert unreadable.name == "w2"
    assert unreadable.error is not None
    assert unreadable.error.startswith(f"test://{missing}: RuntimeError: virsh list --all --managed-save: ")


HANGING_VIRSH = """#!/bin/sh
# A hypervisor that accepts the connection and never answers (a dead link behind qemu+ssh).
case "$*" in *hung*) exec sleep 600 ;; esac
exec {real} "$@"
"""


def test_a_hypervisor_that_hangs_costs_the_read_its_deadline_not_600_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.which("virsh")
    assert real is not None
    fake = tmp_path / "bin" / "virsh"
    fake.parent.mkdir()
    fake.write_text(HANGING_VIRSH.format(real=real))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    hung = tmp_path / "hung.xml"
    fleet = LibvirtFleet(
        NoNodes(), {"test": "test:///default", "w2": f"test://{hung}"}, "suspended", read_timeout_s=0.5
    )
    readable, unreadable = fleet.observe()
    assert (readable.powered, unreadable.error) == (True, f"test://{hung} did not answer within 0.5 s")


def test_a_vm_with_a_managed_save_reads_warm_and_one_without_cold(tmp_path: Path) -> None:
    node_file = tmp_path / "parked.xml"
    node_file.write_text(PARKED)
    fleet = LibvirtFleet(NoNodes(), {"w2": f"test://{node_file}", "w3": f"test://{node_file}"}, "suspended")
    assert [(s.name, s.powered, s.warm) for s in fleet.observe()] == [
        ("w2", False, True),
        ("w3", False, False),
    ]
