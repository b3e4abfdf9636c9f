"""Warm-pool VM planning: a pure function from the desired replicas and what each worker VM is doing to
the power and Swarm-availability changes to make. No I/O; autoscaler/warm_pool.py observes and acts.

Capacity rule: a running, active worker holds up to `replicas_per_vm` app tasks (the app service's
max-replicas-per-node), so the desired replicas need ceil(desired / replicas_per_vm) active workers.
- Short of workers: first re-activate a powered, ready, drained worker (one just booted, or one whose parking
  was under way), then power on warm VMs for the rest, counting those still booting as on their way.
- Workers in surplus for `scale_in_after_s` without a break: drain one (the one with fewest tasks), so
  Swarm moves its tasks onto the others. Never the last worker, never below the need.
- A drained worker with no task at all is powered off (parked). A node with a task is never powered off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FleetPolicy:
    vms: tuple[str, ...]  # domain names == Swarm node hostnames, in preference order for powering on
    replicas_per_vm: int
    scale_in_after_s: float
    min_workers: int = 1


@dataclass(frozen=True)
class VmState:
    name: str
    powered: bool  # the libvirt domain is running
    ready: bool  # its Swarm node is ready (joined and heartbeating)
    active: bool  # its Swarm availability is active (not drained)
    tasks: int  # tasks of any service on the node that are not finished


Verb = Literal["power_on", "activate", "drain", "power_off"]


@dataclass(frozen=True)
class Step:
    verb: Verb
    vm: str
    reason: str


@dataclass(frozen=True)
class FleetPlan:
    steps: tuple[Step, ...]
    needed: int
    surplus_since: float | None  # when the active workers began to exceed the need (carried between ticks)
    note: str = ""


def workers_needed(desired_replicas: int, policy: FleetPolicy) -> int:
    need = math.ceil(desired_replicas / policy.replicas_per_vm) if desired_replicas > 0 else 0
    return max(policy.min_workers, min(len(policy.vms), need))


def plan(
    desired_replicas: int, vms: list[VmState], policy: FleetPolicy, surplus_since: float | None, now: float
) -> FleetPlan:
    needed = workers_needed(desired_replicas, policy)
    by_name = {vm.name: vm for vm in vms}
    ordered = [by_name[name] for name in policy.vms if name in by_name]
    active = [vm for vm in ordered if vm.powered and vm.ready and vm.active]
    booting = [vm for vm in ordered if vm.powered and not vm.ready]
    drained = [vm for vm in ordered if vm.powered and vm.ready and not vm.active]
    off = [vm for vm in ordered if not vm.powered]
    steps: list[Step] = []

    if len(active) < needed:
        short = needed - len(active)
        for vm in drained[:short]:
            steps.append(
                Step("activate", vm.name, f"{needed} workers needed for {desired_replicas} replicas")
            )
        short -= min(short, len(drained))
        short -= min(short, len(booting))  # already on their way
        for vm in off[:short]:
            steps.append(
                Step("power_on", vm.name, f"{needed} workers needed for {desired_replicas} replicas")
            )
        note = "" if short <= len(off) else f"{short - len(off)} more workers needed than the pool has"
        return FleetPlan(tuple(steps), needed, None, note)

    # Enough active workers: drained ones with nothing left on them are parked.
    for vm in drained:
        if vm.tasks == 0:
            steps.append(Step("power_off", vm.name, "drained and idle"))
    if len(active) == needed:
        return FleetPlan(tuple(steps), needed, None)

    since = now if surplus_since is None else surplus_since
    if now - since < policy.scale_in_after_s:
        return FleetPlan(tuple(steps), needed, since, f"surplus worker for {now - since:.0f} s")
    if len(active) <= max(1, policy.min_workers):
        return FleetPlan(tuple(steps), needed, since, "never the last worker")
    victim = min(active, key=lambda vm: (vm.tasks, -policy.vms.index(vm.name)))
    steps.append(
        Step(
            "drain",
            victim.name,
            f"{len(active)} workers for {needed} needed, for {policy.scale_in_after_s:.0f} s",
        )
    )
    return FleetPlan(tuple(steps), needed, None)  # the next drain waits a whole window again
