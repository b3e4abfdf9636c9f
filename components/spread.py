"""Which hypervisor host each worker VM lives on: a pure function of the VM count and what each host holds.

Round robin over the hosts with room left: worker 0 on the first host, worker 1 on the second, and so on, a
full host skipped. The running VMs come first in the order, so they land on different hosts (one host down
leaves the others serving), and a smaller host simply takes fewer. VM i's host depends only on VMs 0..i-1:
raising the count never moves a VM that exists. Changing the host list does (each move replaces the VM).
"""

from __future__ import annotations

from collections.abc import Sequence


def capacity(budget_memory_mb: int, budget_vcpus: int, memory_mb: int, vcpus: int) -> int:
    """How many VMs of one size a host's budget holds."""
    return min(budget_memory_mb // memory_mb, budget_vcpus // vcpus)


def spread(count: int, capacities: Sequence[int]) -> list[int] | None:
    """The host index of each of `count` VMs, or None when the hosts cannot hold them all."""
    placed = [0] * len(capacities)
    hosts: list[int] = []
    for _ in range(count):
        with_room = [h for h, room in enumerate(capacities) if placed[h] < room]
        if not with_room:
            return None
        host = min(with_room, key=lambda h: (placed[h], h))
        placed[host] += 1
        hosts.append(host)
    return hosts
