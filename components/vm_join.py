"""`python -m components.vm_join --uri URI --vm NAME [--park suspended|stopped]`: the end of a worker VM's first
boot, run by `pulumi up` after the domain starts. Waits until the VM's node has joined the Swarm and is ready,
checks that the node is that VM (its address is the VM's DHCP lease: a node name is whatever the joining
engine says) and labels it, by node ID, as admitted: only admitted nodes get app tasks. For a warm-pool VM it
then drains the node and parks the VM, so the autoscaler's power-on is a plain boot or a restore, never a
first boot.
"""

from __future__ import annotations

import argparse
import sys
import time

import docker

from autoscaler.libvirt import Virsh
from autoscaler.warm_pool import PARK_MODES, LibvirtFleet
from components.swarm import ADMITTED_LABEL

POLL_S = 2.0


def wait_until_ready(fleet: LibvirtFleet, vm: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        node = fleet.nodes.find(vm)
        if node is not None and node.attrs["Status"]["State"] == "ready":
            return
        time.sleep(POLL_S)
    raise TimeoutError(f"{vm} did not join the Swarm in {timeout_s:.0f} s (its console: virsh console {vm})")


def lease_addresses(virsh: Virsh, vm: str) -> set[str]:
    """The VM's addresses from its network's DHCP leases (`virsh domifaddr`: NAME MAC PROTOCOL ADDRESS/PREFIX)."""
    rows = (line.split() for line in virsh("domifaddr", vm, "--source", "lease").splitlines())
    return {row[3].split("/")[0] for row in rows if len(row) == 4}


def admit(fleet: LibvirtFleet, vm: str, addresses: set[str]) -> str:
    """Label the VM's node as admitted, by its ID, once its address shows it is the VM; the node ID."""
    node = fleet.nodes.find(vm)
    if node is None:
        raise RuntimeError(f"no Swarm node named {vm}")
    address = node.attrs["Status"].get("Addr")
    if address not in addresses:
        raise RuntimeError(
            f"the node named {vm} ({node.id}) is at {address}, not at the VM's address "
            f"({', '.join(sorted(addresses)) or 'none leased'}): not admitted"
        )
    spec = node.attrs["Spec"]
    node.update({**spec, "Labels": {**(spec.get("Labels") or {}), ADMITTED_LABEL: "true"}})
    return str(node.id)


def wait_until_empty(fleet: LibvirtFleet, vm: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        node = fleet.nodes.find(vm)
        if node is None or fleet.nodes.tasks_on(node) == 0:
            return
        time.sleep(POLL_S)
    raise TimeoutError(f"{vm} still runs tasks {timeout_s:.0f} s after it was drained")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vm_join", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--vm", required=True)
    parser.add_argument("--park", choices=PARK_MODES)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    fleet = LibvirtFleet(docker.from_env(), {args.vm: args.uri}, args.park or "suspended")
    started = time.monotonic()
    try:
        wait_until_ready(fleet, args.vm, args.timeout)
        node_id = admit(fleet, args.vm, lease_addresses(Virsh(args.uri), args.vm))
        print(
            f"vm_join: {args.vm} joined the Swarm in {time.monotonic() - started:.0f} s, admitted as node {node_id}",
            file=sys.stderr,
        )
        if args.park:
            # Drained at once: Swarm may have placed a task there in the seconds since the join.
            fleet.nodes.set_availability(args.vm, "drain")
            wait_until_empty(fleet, args.vm, args.timeout)
            fleet.park(args.vm)
            print(f"vm_join: {args.vm} drained and {args.park}", file=sys.stderr)
    except (TimeoutError, RuntimeError) as exc:
        print(f"vm_join: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
