"""The warm-pool actuator: worker VMs' power through libvirt (autoscaler/libvirt.py), their Swarm availability
through the Docker API (autoscaler/nodes.py). Observes each VM as a fleet.VmState; applies fleet.Steps one VM at
a time, off the control loop.

Parking is "suspended" (libvirt managed save: the guest's memory goes to disk and `virsh start` restores it in
seconds) or "stopped" (an ACPI shutdown; the next start is a cold boot). Either way the node is drained first,
so Swarm never places a task on a worker that is about to go away.

Scale-in is a hand-over (hand_over), so capacity never dips below what the load needs: Swarm's drain alone is
stop-first (the VM's tasks stop before their replacements run elsewhere). Each step has a deadline; a step past
it hands the VM back (replicas as they were, node active) and fails, which the next event reports:
  1. the node's availability goes to `pause`: no new task lands there, its tasks keep serving;
  2. the app service gets +k replicas (k: the app's tasks on the VM), which start on the other workers;
  3. until HAProxy counts the raised number of servers UP;
  4. the node is drained: each of its replicas gets SIGTERM, answers /healthz 503 while it keeps serving (app/
     server.py), so HAProxy takes it out of rotation, finishes its in-flight requests and exits;
  5. once Swarm has asked every task there to stop (so the scale-down below removes their pending
     replacements, not a running replica elsewhere), the replicas go back to what they were;
  6. once the node has no task, the VM is parked.
Meanwhile `extra_replicas()` tells the control loop the +k is the hand-over's, so it holds its own changes.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from autoscaler.fleet import PARK_MODES, ParkMode, Step, VmState
from autoscaler.libvirt import Virsh
from autoscaler.nodes import SwarmNodes

if (
    TYPE_CHECKING
):  # the program imports this module (components/vm_join.py); HAProxy's reader is not its dependency
    from autoscaler.haproxy_metrics import ServerRow

log = logging.getLogger("hostscale.autoscaler")

__all__ = [
    "PARK_MODES",
    "POWER_ON_PHASES",
    "HandOverDeadlines",
    "HandOverFailed",
    "LibvirtFleet",
    "ParkMode",
    "PowerOnRecord",
]
SHUTDOWN_TIMEOUT_S = 120


class Replicas(Protocol):
    """The app service's replica count (autoscaler/swarm.py SwarmService)."""

    name: str

    def get(self) -> int: ...

    def set(self, count: int) -> None: ...


@dataclass(frozen=True)
class HandOverDeadlines:
    """How long each waiting step of a hand-over may take. Replacements on a worker under software emulation
    take a minute or more (schedule, create, start, import, health check); on KVM, seconds."""

    replacements_up_s: float = 300.0
    stop_requested_s: float = 60.0
    tasks_gone_s: float = 180.0
    poll_s: float = 1.0


class HandOverFailed(RuntimeError):
    pass


# A power-on's phases, in order: virsh start returned (a restore or a boot), the Swarm node ready, an app task
# running on it, that task's server UP in HAProxy (its first health check passed), its first request served.
POWER_ON_PHASES = ("started", "node_ready", "task_running", "up_in_haproxy", "first_request")


@dataclass(frozen=True)
class PowerOnRecord:
    vm: str
    mode: str  # "restore" (from a managed save) or "boot"
    at: float  # unix time of the decision
    phases: dict[str, float]  # phase -> seconds after the decision, in POWER_ON_PHASES order
    error: str | None = None  # the phase not reached before the deadline
    # A restore: how far behind the host's the guest clock was before it was set (None: a boot, or not synced).
    clock_behind_s: float | None = None

    def line(self) -> str:
        done = ", ".join(
            f"{phase.replace('_', ' ')} {seconds:.1f} s" for phase, seconds in self.phases.items()
        )
        clock = "" if self.clock_behind_s is None else f"; guest clock was {self.clock_behind_s:.1f} s behind"
        return f"power_on {self.vm}: {self.mode}: {done}{clock}" + (f"; {self.error}" if self.error else "")


class LibvirtFleet:
    """`uris` maps each VM, in power-on order, to its hypervisor's libvirt URI."""

    def __init__(
        self,
        client: Any,
        uris: Mapping[str, str],
        park_mode: ParkMode,
        settle_s: float = 5.0,
        read_timeout_s: float = 10.0,
        action_timeout_s: float = 600.0,
        replicas: Replicas | None = None,
        up_servers: Callable[[], int] | None = None,
        hand_over_deadlines: HandOverDeadlines = HandOverDeadlines(),
        haproxy_servers: Callable[[], dict[str, ServerRow]] | None = None,
        phases_deadline_s: float = 900.0,
        forced_command: bool = False,
    ) -> None:
        """`replicas` and `up_servers` (how many of the app's servers HAProxy counts UP) are what a hand-over
        needs; without them (tests of power and reads alone) a hand-over fails at once. `forced_command`: remote
        hypervisors are reached with the autoscaler's restricted key (autoscaler/libvirt.py)."""
        self.settle_s = settle_s
        self.replicas = replicas
        self.up_servers = up_servers
        self.hand_over_deadlines = hand_over_deadlines
        self._extra_replicas = 0
        self.haproxy_servers = haproxy_servers
        self.phases_deadline_s = phases_deadline_s
        self._power_ons: deque[PowerOnRecord] = deque(maxlen=10000)
        # Phases are followed apart from the VM's own steps: the VM must stay free for its activation meanwhile.
        self._phase_watch = ThreadPoolExecutor(max_workers=2, thread_name_prefix="power-on-phases")
        self._notes: list[str] = []
        self._progress: dict[str, str] = {}
        self.read_timeout_s = read_timeout_s
        self.action_timeout_s = action_timeout_s
        self._hosts = {uri: Virsh(uri, forced_command) for uri in uris.values()}
        self._virsh = {name: self._hosts[uri] for name, uri in uris.items()}
        # One reader per hypervisor: a host that hangs costs the tick its deadline once, not once per VM.
        self._readers = ThreadPoolExecutor(max_workers=len(self._hosts) or 1, thread_name_prefix="virsh-read")
        self.nodes = SwarmNodes(client)
        self.names = tuple(uris)
        self.park_mode = park_mode
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vm")
        self._in_flight: dict[str, Future[None]] = {}
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def _domain_states(self) -> dict[str, dict[str, str] | str]:
        """Each hypervisor's URI to its domains' states, or to why it could not be read in time."""
        reads = {
            uri: self._readers.submit(virsh.states, self.read_timeout_s) for uri, virsh in self._hosts.items()
        }
        result: dict[str, dict[str, str] | str] = {}
        for uri, read in reads.items():
            try:
                result[uri] = read.result()
            except subprocess.TimeoutExpired:
                result[uri] = f"{uri} did not answer within {self.read_timeout_s:g} s"
            except Exception as exc:
                result[uri] = f"{uri}: {type(exc).__name__}: {exc}"
        return result

    def observe(self) -> list[VmState]:
        """Every VM; those whose hypervisor could not be read carry the reason in `error`."""
        states = []
        domains = self._domain_states()
        for name in self.names:
            host = domains[self._virsh[name].uri]
            if isinstance(host, str):
                states.append(VmState(name, False, False, False, 0, error=host))
                continue
            if name not in host:
                states.append(
                    VmState(
                        name, False, False, False, 0, error=f"no domain {name} on {self._virsh[name].uri}"
                    )
                )
                continue
            powered = host[name] == "running"
            warm = host[name] == "saved"  # `virsh list --managed-save`: shut off, with a managed-save image
            node = self.nodes.find(name)
            ready = node is not None and node.attrs["Status"]["State"] == "ready"
            active = node is not None and node.attrs["Spec"]["Availability"] == "active"
            tasks = self.nodes.tasks_on(node) if node is not None and ready else 0
            states.append(VmState(name, powered, ready, active, tasks, warm=warm))
        return states

    def busy(self, name: str) -> bool:
        future = self._in_flight.get(name)
        return future is not None and not future.done()

    def apply(self, step: Step) -> bool:
        """Start one step in the background; False when that VM is still busy with the previous one."""
        if self.busy(step.vm):
            return False
        mode = step.park or self.park_mode
        actions: dict[str, Callable[[str], None]] = {
            "power_on": self.power_on,
            "activate": self.activate,
            "hand_over": functools.partial(self.hand_over, mode=mode),
            "power_off": functools.partial(self.park, mode=mode),
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

    def take_notes(self) -> list[str]:
        """Steps of hand-overs done since the last call, in order (the next event's vm_steps)."""
        with self._lock:
            notes, self._notes = self._notes, []
        return notes

    def progress(self) -> dict[str, str]:
        """Each VM in a hand-over, from its first step to its last, to the step it is on."""
        with self._lock:
            return dict(self._progress)

    def extra_replicas(self) -> int:
        """Replicas a hand-over has added for now: the control loop holds its own changes while > 0."""
        with self._lock:
            return self._extra_replicas

    def _note(self, name: str, text: str) -> None:
        log.info("hand_over %s: %s", name, text)
        with self._lock:
            self._notes.append(f"hand_over {name}: {text}")

    def _wait(self, name: str, what: str, done: Callable[[], str | None], deadline_s: float) -> None:
        """Poll `done` (None: not yet; else what it found) until it answers or the deadline passes."""
        started = time.monotonic()
        while True:
            with self._lock:
                self._progress[name] = f"waiting {time.monotonic() - started:.0f} s for {what}"
            found = done()
            if found is not None:
                self._note(name, f"{found} after {time.monotonic() - started:.0f} s")
                return
            if time.monotonic() - started >= deadline_s:
                raise HandOverFailed(f"{what}: not within {deadline_s:g} s")
            time.sleep(self.hand_over_deadlines.poll_s)

    def hand_over(self, name: str, mode: ParkMode | None = None) -> None:
        """Scale in without a dip (the module's docstring): replacements UP elsewhere before the VM's tasks
        stop, the VM parked once it has none."""
        if self.replicas is None or self.up_servers is None:
            raise HandOverFailed("this fleet has no replica count or HAProxy to hand over with")
        with self._lock:
            self._progress[name] = "starting"
        try:
            self._hand_over(name, self.replicas, self.up_servers, mode or self.park_mode)
        finally:
            with self._lock:
                self._progress.pop(name, None)
                self._extra_replicas = 0

    def _hand_over(
        self, name: str, replicas: Replicas, up_servers: Callable[[], int], mode: ParkMode
    ) -> None:
        deadlines = self.hand_over_deadlines
        node = self.nodes.find(name)
        if node is None or node.attrs["Spec"]["Availability"] != "active":
            raise HandOverFailed(f"{name} is not an active worker")
        self.nodes.set_availability(name, "pause")
        moving = len(self.nodes.service_tasks_on(node, replicas.name))
        self._note(name, f"paused with {moving} tasks of {replicas.name}")
        base = replicas.get()
        if moving:
            with self._lock:
                self._extra_replicas = moving
            replicas.set(base + moving)
            self._note(name, f"{replicas.name} {base} -> {base + moving} replicas")
            try:
                self._wait(
                    name,
                    f"{base + moving} servers UP in HAProxy",
                    lambda: f"{up} servers UP" if (up := up_servers()) >= base + moving else None,
                    deadlines.replacements_up_s,
                )
            except BaseException:
                # Hand the VM back as it was: its tasks never stopped, so nothing was lost.
                replicas.set(base)
                self.nodes.set_availability(name, "active")
                raise
        self.nodes.set_availability(name, "drain")
        self._note(name, "drained")
        if moving:
            self._wait(
                name,
                f"Swarm to stop the tasks of {replicas.name} on {name}",
                lambda: "stop requested" if not self.nodes.service_tasks_on(node, replicas.name) else None,
                deadlines.stop_requested_s,
            )
            replicas.set(base)
            with self._lock:
                self._extra_replicas = 0
            self._note(name, f"{replicas.name} back to {base} replicas")
        self._wait(
            name,
            f"no task left on {name}",
            lambda: "no task left" if not self.nodes.tasks_on(node) else None,
            deadlines.tasks_gone_s,
        )
        self.park(name, mode)
        self._note(name, f"parked ({mode})")

    def activate(self, name: str) -> None:
        self.nodes.set_availability(name, "active")

    def power_on(self, name: str) -> None:
        at, started = time.time(), time.monotonic()
        virsh = self._virsh[name]
        # On a domain with a managed-save image, start is a restore.
        saved = "Managed save:   yes" in virsh("dominfo", name, timeout=self.read_timeout_s)
        virsh("start", name, timeout=self.action_timeout_s)
        phases = {"started": time.monotonic() - started}
        mode = "restore" if saved else "boot"
        behind = self._sync_clock(name) if saved else None
        if self.replicas is None or self.haproxy_servers is None:
            self._record(PowerOnRecord(name, mode, at, phases, clock_behind_s=behind))
            return
        self._phase_watch.submit(self._follow_phases, name, mode, at, started, phases, behind)

    def _sync_clock(self, name: str) -> float | None:
        """A restored guest's clock stands where it was at the park, minutes or days behind, and Swarm's TLS
        (certificate validity, rotation) reads it: set it from the host's through the guest agent (`virsh domtime
        --sync`). Returns how far behind it was; a guest that does not answer is reported, never waited for."""
        virsh = self._virsh[name]
        try:
            guest = float(virsh("domtime", name, timeout=self.read_timeout_s).split(":", 1)[1])
            behind = time.time() - guest
            virsh("domtime", name, "--sync", timeout=self.read_timeout_s)
        except Exception as exc:  # no agent, or it does not answer: the power-on goes on regardless
            log.warning("power_on %s: guest clock not synced: %s: %s", name, type(exc).__name__, exc)
            with self._lock:
                self._notes.append(f"power_on {name}: guest clock not synced: {exc}")
            return None
        return behind

    def power_on_records(self) -> list[PowerOnRecord]:
        with self._lock:
            return list(self._power_ons)

    def _record(self, record: PowerOnRecord) -> None:
        log.info(record.line())
        with self._lock:
            self._power_ons.append(record)
            self._notes.append(record.line())

    def _follow_phases(
        self,
        name: str,
        mode: str,
        at: float,
        started: float,
        phases: dict[str, float],
        clock_behind_s: float | None = None,
    ) -> None:
        pending = list(POWER_ON_PHASES[1:])
        seen: dict[str, Any] = {}
        error = None
        while pending:
            if time.monotonic() - started > self.phases_deadline_s:
                error = f"{pending[0].replace('_', ' ')} not reached within {self.phases_deadline_s:g} s"
                break
            try:
                reached = self._reached(name, pending[0], seen)
            except Exception as exc:  # Swarm or HAProxy unreadable for a moment: the next poll tries again
                log.warning("power_on %s: reading %s: %s: %s", name, pending[0], type(exc).__name__, exc)
                reached = False
            if reached:
                phases[pending.pop(0)] = time.monotonic() - started
                continue
            time.sleep(self.hand_over_deadlines.poll_s)
        self._record(PowerOnRecord(name, mode, at, dict(phases), error, clock_behind_s))

    def _reached(self, name: str, phase: str, seen: dict[str, Any]) -> bool:
        assert self.replicas is not None
        assert self.haproxy_servers is not None
        if phase == "node_ready":
            node = self.nodes.find(name)
            seen["node"] = node
            return node is not None and node.attrs["Status"]["State"] == "ready"
        if phase == "task_running":
            tasks = self.nodes.service_tasks_on(seen["node"], self.replicas.name)
            running = [t for t in tasks if t["Status"]["State"] == "running"]
            seen["ips"] = {
                address.split("/")[0]
                for task in running
                for network in task.get("NetworksAttachments", [])
                for address in network.get("Addresses", [])
            }
            return bool(seen["ips"])
        table = self.haproxy_servers()
        if phase == "up_in_haproxy":
            # A slot may have served an earlier task: its first request is a rise over what it had served at
            # the poll before it came UP (a request between that poll and this one counts).
            before = seen.get("before", {})
            seen["before"] = {n: row.total_sessions for n, row in table.items()}
            up = {
                n: before.get(n, row.total_sessions)
                for n, row in table.items()
                if row.address in seen["ips"] and row.status == "UP"
            }
            seen["servers"] = up
            return bool(up)
        return any(table[n].total_sessions > before for n, before in seen["servers"].items() if n in table)

    def park(self, name: str, mode: ParkMode | None = None) -> None:
        """Park the VM warm (managed save) or cold (shut down); `mode` None: the pool's own."""
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
        if (mode or self.park_mode) == "suspended":
            virsh("managedsave", name, timeout=self.action_timeout_s)
            return
        virsh("shutdown", name, timeout=self.action_timeout_s)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        while time.monotonic() < deadline:
            if virsh.state(name, timeout=self.read_timeout_s) == "shut off":
                return
            time.sleep(1)
        virsh(
            "destroy", name, timeout=self.action_timeout_s
        )  # the guest ignored ACPI: its node is drained and empty, so this is safe
