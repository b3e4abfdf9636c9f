"""Warm-pool VM planning: a pure function from the desired replicas and what each worker VM is doing to
the power and Swarm-availability changes to make. No I/O; autoscaler/warm_pool.py observes and acts.

Capacity rule: a running, active worker holds up to `replicas_per_vm` app tasks (the app service's
max-replicas-per-node), so the desired replicas need ceil(desired / replicas_per_vm) active workers.
- Short of workers: first re-activate a powered, ready, drained worker (one just booted, or one whose parking
  was under way), then power on warm VMs for the rest, counting those still booting as on their way.
- Workers in surplus for `scale_in_after_s` without a break: hand one over (the one with fewest tasks), only
  when the other active workers have room for its tasks. The actuator (autoscaler/warm_pool.py) starts the
  replacements elsewhere and waits until they are UP in HAProxy before the VM's own tasks stop, then parks it:
  capacity never dips below the need. Never the last worker, never below the need.
- A drained worker with no task at all is powered off (parked). A node with a task is never powered off.

The warm pool, like an AWS warm pool: a parked VM is warm (libvirt managed save: a restore) or cold (shut off: a
boot). Warm ones are powered on first. A VM parks warm unless the pool parks cold (`park` "stopped"), it leaves
at scale-in and `reuse_on_scale_in` is off, or `warm_pool_max` warm VMs are parked already. While fewer than
`warm_pool_min` are warm and nothing else is to be done, a cold VM is powered on to be prepared: once its node is
ready (drained, as it was parked) it is parked warm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

ParkMode = Literal["suspended", "stopped"]
PARK_MODES: tuple[ParkMode, ...] = get_args(ParkMode)


@dataclass(frozen=True)
class FleetPolicy:
    vms: tuple[str, ...]  # domain names == Swarm node hostnames, in preference order for powering on
    replicas_per_vm: int
    scale_in_after_s: float
    min_workers: int = 1
    park: ParkMode = "suspended"  # how the pool parks: warm (managed save) or cold (shut down)
    warm_pool_min: int = 0  # warm VMs kept prepared, at least (cold ones are prepared to reach it)
    warm_pool_max: int | None = None  # warm VMs at most: parking beyond it parks cold; None: no bound
    reuse_on_scale_in: bool = True  # a VM handed over at scale-in parks warm (else cold)


@dataclass(frozen=True)
class VmState:
    name: str
    powered: bool  # the libvirt domain is running
    ready: bool  # its Swarm node is ready (joined and heartbeating)
    active: bool  # its Swarm availability is active (not drained)
    tasks: int  # tasks of any service on the node that are not finished
    error: str | None = None  # its hypervisor could not be read: the rest is unknown
    warm: bool = False  # not powered, with a managed-save image: its power-on is a restore


# hand_over: pause the node, start its tasks' replacements on the other workers, wait until they are UP,
# then drain the node and park the VM (autoscaler/warm_pool.py LibvirtFleet.hand_over).
Verb = Literal["power_on", "activate", "hand_over", "power_off"]


@dataclass(frozen=True)
class Step:
    verb: Verb
    vm: str
    reason: str
    park: ParkMode | None = None  # hand_over, power_off: how the VM parks
    predictive: bool = (
        False  # taken for the trend of demand (autoscaler/forecast.py), not for pending replicas
    )


def park_mode(policy: FleetPolicy, warm_now: int, scale_in: bool) -> ParkMode:
    """How the next VM parks, with `warm_now` warm VMs parked already."""
    if policy.park == "stopped" or (scale_in and not policy.reuse_on_scale_in):
        return "stopped"
    if policy.warm_pool_max is not None and warm_now >= policy.warm_pool_max:
        return "stopped"
    return "suspended"


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
    desired_replicas: int,
    vms: list[VmState],
    policy: FleetPolicy,
    surplus_since: float | None,
    now: float,
    stuck: frozenset[str] = frozenset(),
    forecast: tuple[float, str] | None = None,
) -> FleetPlan:
    """`stuck`: VMs powered on whose node has not become ready within the deadline: not on their way.
    `forecast`: the replicas the trend of demand will want once a VM powered on now is ready, and why
    (autoscaler/forecast.py); when the workers running and on their way would not hold them, one more starts
    now, and no worker is handed over meanwhile."""
    needed = workers_needed(desired_replicas, policy)
    by_name = {vm.name: vm for vm in vms}
    unreadable = [name for name in policy.vms if name in by_name and by_name[name].error]
    # A VM that cannot be read is left alone; the others still scale out around it.
    ordered = [by_name[name] for name in policy.vms if name in by_name and not by_name[name].error]
    active = [vm for vm in ordered if vm.powered and vm.ready and vm.active]
    booting = [vm for vm in ordered if vm.powered and not vm.ready and vm.name not in stuck]
    drained = [vm for vm in ordered if vm.powered and vm.ready and not vm.active]
    # Warm ones first: a restore is faster than a boot.
    off = [vm for vm in ordered if not vm.powered and vm.warm] + [
        vm for vm in ordered if not vm.powered and not vm.warm
    ]
    warm = sum(1 for vm in off if vm.warm)
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

    keep = needed  # workers scale-in must leave: the need now, or the trend's once a VM could be back
    if forecast is not None:
        predicted, why = forecast
        coming = workers_needed(math.ceil(predicted), policy)
        keep = max(needed, coming)
        if coming > len(active) + len(booting):
            reason = f"trend: {why}, more than {len(active) + len(booting)} workers hold"
            if drained:
                steps.append(Step("activate", drained[0].name, reason, predictive=True))
            elif off:
                steps.append(Step("power_on", off[0].name, reason, predictive=True))
            return FleetPlan(tuple(steps), needed, None, reason)

    if unreadable:
        # It may be an active worker carrying tasks: scaling in around it could leave too few.
        return FleetPlan(
            tuple(steps), needed, None, f"no scale-in while {', '.join(unreadable)} cannot be read"
        )
    # Enough active workers: drained ones with nothing left on them are parked.
    for vm in drained:
        if vm.tasks == 0:
            mode = park_mode(policy, warm, scale_in=False)
            warm += mode == "suspended"
            steps.append(Step("power_off", vm.name, "drained and idle", park=mode))
    if len(active) <= keep:
        on_the_way = len(booting) + sum(1 for vm in drained if vm.tasks)
        _prepare(policy, off, warm, on_the_way, steps)
        return FleetPlan(tuple(steps), needed, None)

    since = now if surplus_since is None else surplus_since
    if now - since < policy.scale_in_after_s:
        return FleetPlan(tuple(steps), needed, since, f"surplus worker for {now - since:.0f} s")
    if len(active) <= max(1, policy.min_workers):
        return FleetPlan(tuple(steps), needed, since, "never the last worker")
    victim = min(active, key=lambda vm: (vm.tasks, -policy.vms.index(vm.name)))
    room = sum(max(0, policy.replicas_per_vm - vm.tasks) for vm in active if vm is not victim)
    if room < victim.tasks:
        # Its replacements would stay pending: the hand-over would wait for capacity that cannot come.
        return FleetPlan(
            tuple(steps),
            needed,
            since,
            f"no room for {victim.name}'s {victim.tasks} tasks on the other workers ({room} free)",
        )
    steps.append(
        Step(
            "hand_over",
            victim.name,
            f"{len(active)} workers for {needed} needed, for {policy.scale_in_after_s:.0f} s",
            park=park_mode(policy, warm, scale_in=True),
        )
    )
    return FleetPlan(tuple(steps), needed, None)  # the next hand-over waits a whole window again


def _prepare(policy: FleetPolicy, off: list[VmState], warm: int, on_the_way: int, steps: list[Step]) -> None:
    """Power on cold VMs to be parked warm while fewer than warm_pool_min are warm, counting `on_the_way` (VMs
    booting, or drained with tasks left, which park warm in turn)."""
    if policy.park == "stopped" or warm + on_the_way >= policy.warm_pool_min:
        return
    cold = [vm for vm in off if not vm.warm]
    for vm in cold[: policy.warm_pool_min - warm - on_the_way]:
        steps.append(
            Step("power_on", vm.name, f"{warm} of {policy.warm_pool_min} warm VMs parked: preparing one")
        )
