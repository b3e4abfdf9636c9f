"""The warm-pool actuator: worker VMs' power through libvirt (autoscaler/libvirt.py), their Swarm availability
through the Docker API (autoscaler/nodes.py). Observes each VM as a fleet.VmState; applies fleet.Steps one VM at
a time, off the control loop.

Parking is "suspended" (libvirt managed save: the guest's memory goes to disk and `virsh start` restores it in
seconds) or "stopped" (an ACPI shutdown; the next start is a cold boot). Either way the node is drained first,
so Swarm never places a task on a worker that is about to go away.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, get_args

from autoscaler.fleet import Step, VmState
from autoscaler.libvirt import Virsh
from autoscaler.nodes import SwarmNodes

log = logging.getLogger("hostscale.autoscaler")

ParkMode = Literal["suspended", "stopped"]
PARK_MODES: tuple[ParkMode, ...] = get_args(ParkMode)
SHUTDOWN_TIMEOUT_S = 120


class LibvirtFleet:
    """`uris` maps each VM, in power-on order, to its hypervisor's libvirt URI."""

    def __init__(
        self, client: Any, uris: Mapping[str, str], park_mode: ParkMode, settle_s: float = 5.0
    ) -> None:
        self.settle_s = settle_s
        connections = {uri: Virsh(uri) for uri in uris.values()}
        self._virsh = {name: connections[uri] for name, uri in uris.items()}
        self.nodes = SwarmNodes(client)
        self.names = tuple(uris)
        self.park_mode = park_mode
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vm")
        self._in_flight: dict[str, Future[None]] = {}
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def observe(self) -> list[VmState]:
        states = []
        for name in self.names:
            powered = self._virsh[name].state(name) == "running"
            node = self.nodes.find(name)
            ready = node is not None and node.attrs["Status"]["State"] == "ready"
            active = node is not None and node.attrs["Spec"]["Availability"] == "active"
            tasks = self.nodes.tasks_on(node) if node is not None and ready else 0
            states.append(VmState(name, powered, ready, active, tasks))
        return states

    def busy(self, name: str) -> bool:
        future = self._in_flight.get(name)
        return future is not None and not future.done()

    def apply(self, step: Step) -> bool:
        """Start one step in the background; False when that VM is still busy with the previous one."""
        if self.busy(step.vm):
            return False
        actions: dict[str, Callable[[str], None]] = {
            "power_on": self.power_on,
            "activate": self.activate,
            "drain": self.drain,
            "power_off": self.park,
        }
        action = actions[step.verb]
        self._in_flight[step.vm] = future = self._pool.submit(action, step.vm)
        future.add_done_callback(functools.partial(self._done, step))
        return True

    def _done(self, step: Step, future: Future[None]) -> None:
        if (exc := future.exception()) is not None:
            message = f"{step.verb} {step.vm} failed: {type(exc).__name__}: {exc}"
            log.error(message)
            with self._lock:
                self._errors.append(message)

    def take_errors(self) -> list[str]:
        """Failures of background steps since the last call (the next event reports them)."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def activate(self, name: str) -> None:
        self.nodes.set_availability(name, "active")

    def drain(self, name: str) -> None:
        self.nodes.set_availability(name, "drain")

    def power_on(self, name: str) -> None:
        # On a domain with a managed-save image, start is a restore.
        self._virsh[name]("start", name)

    def park(self, name: str) -> None:
        node = self.nodes.find(name)
        if node is not None and node.attrs["Spec"]["Availability"] == "active":
            raise RuntimeError(f"{name} is not drained: refusing to power it off")
        if node is not None and (count := self.nodes.tasks_on(node)):
            raise RuntimeError(f"{name} still has {count} tasks: refusing to power it off")
        # The load balancer drops a stopped replica at its next DNS resolution and health check: let it, while
        # the VM still answers (a frozen VM would turn those last connections into timeouts).
        time.sleep(self.settle_s)
        if node is not None and (count := self.nodes.tasks_on(node)):
            raise RuntimeError(f"{name} got {count} tasks again: refusing to power it off")
        virsh = self._virsh[name]
        if self.park_mode == "suspended":
            virsh("managedsave", name)
            return
        virsh("shutdown", name)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        while time.monotonic() < deadline:
            if virsh.state(name) == "shut off":
                return
            time.sleep(1)
        virsh("destroy", name)  # the guest ignored ACPI: its node is drained and empty, so this is safe
