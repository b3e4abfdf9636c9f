"""Spreading worker VMs over hypervisor hosts: in turn over the hosts with room, never beyond a host's
capacity, and stable when the count grows (an existing VM never moves)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from components.spread import capacity, spread


def test_equal_hosts_take_turns() -> None:
    assert spread(7, [4, 4, 4]) == [0, 1, 2, 0, 1, 2, 0]


def test_a_full_host_is_skipped_and_the_others_go_on_taking_turns() -> None:
    assert spread(10, [4, 8, 2]) == [0, 1, 2, 0, 1, 2, 0, 1, 0, 1]


def test_a_host_with_no_room_gets_nothing() -> None:
    assert spread(3, [0, 3]) == [1, 1, 1]


def test_more_vms_than_the_hosts_hold_is_refused() -> None:
    assert spread(5, [2, 2]) is None
    assert spread(4, [2, 2]) == [0, 1, 0, 1]


def test_capacity_is_the_tighter_of_memory_and_vcpus() -> None:
    assert capacity(8192, 6, 2048, 1) == 4
    assert capacity(16384, 3, 2048, 1) == 3
    assert capacity(1000, 8, 2048, 1) == 0


capacities = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=5)


@given(capacities, st.integers(min_value=0, max_value=30))
def test_no_host_beyond_its_capacity_and_growing_the_count_moves_no_vm(rooms: list[int], count: int) -> None:
    placed = spread(count, rooms)
    if count > sum(rooms):
        assert placed is None
        return
    assert placed is not None
    assert len(placed) == count
    for host, room in enumerate(rooms):
        assert placed.count(host) <= room
    # The running VMs come first: no host holds two of them while another host with room holds none.
    for first in range(1, count + 1):
        held = [placed[:first].count(h) for h in range(len(rooms))]
        assert all(
            held[a] <= held[b] + 1 or held[b] == rooms[b]
            for a in range(len(rooms))
            for b in range(len(rooms))
        )
    if count < sum(rooms):
        grown = spread(count + 1, rooms)
        assert grown is not None
        assert grown[:count] == placed
