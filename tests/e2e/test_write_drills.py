"""Write drills on the local stack (testbed/stack.py): a write-heavy load (POST /api/items, each named by a marker
unique to its client and sequence number) while replicas, then Postgres, are killed with SIGKILL. Afterwards
the database itself is read: no marker may be stored twice (HAProxy must not replay a POST that reached a
replica, components/haproxy_cfg.py) and every acknowledged write (201) must be there.

Each drill prints its figures (requests, failed, duplicates, acknowledged lost) for BENCHMARKS.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from harness.program import stack_config
from testbed.load import Load
from testbed.stack import TestStack, stand_up
from testbed.waiting import wait_for

REPLICAS = 3
WRITERS = 8
KILLS = 4
KILL_EVERY_S = 8.0


def _pinned_policy() -> dict[str, Any]:
    local = {k: v for k, v in stack_config("local")["hostscale:autoscaler"].items() if k != "listen"}
    return {**local, "replicas": {"min": REPLICAS, "max": REPLICAS}}


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[TestStack]:
    with stand_up(docker_client, autoscaler=_pinned_policy(), app={"initial_replicas": REPLICAS}) as deployed:
        yield deployed


def _postgres(stack: TestStack) -> Any:
    """The running Postgres task's container, once there is one (Swarm restarts a killed one)."""
    service = stack.client.services.get(f"{stack.prefix}-postgres")
    found: list[Any] = []

    def running() -> bool:
        tasks = service.tasks(filters={"desired-state": "running"})
        found[:] = [t for t in tasks if t["Status"]["State"] == "running"]
        return len(found) == 1

    wait_for("one running Postgres task", running, 120, every_s=0.5)
    return stack.client.containers.get(found[0]["Status"]["ContainerStatus"]["ContainerID"])


def _stored(stack: TestStack, marker: str) -> Counter[str]:
    """How many rows the database holds for each name starting with `marker`, read with psql inside the
    Postgres container over its local socket (nothing is published), as the superuser: the app's role could
    be the one at fault."""

    assert re.fullmatch(r"load-[0-9a-f]+", marker), marker  # it goes into SQL text: Load's own markers only

    def read() -> Counter[str] | None:
        code, output = _postgres(stack).exec_run(
            [
                "psql", "-U", "postgres", "-d", "app", "-At", "-F", " ", "-c",
                f"SELECT name, count(*) FROM items WHERE name LIKE '{marker}-%' GROUP BY name",  # noqa: S608 (a hex marker of ours)
            ],
            user="postgres",  # the superuser logs in by peer authentication on the local socket only
        )  # fmt: skip
        if code != 0:
            return None
        rows = [line.split(" ") for line in output.decode().splitlines() if line]
        return Counter({name: int(count) for name, count in rows})

    found: list[Counter[str]] = []

    def answered() -> bool:
        result = read()
        if result is not None:
            found.append(result)
        return result is not None

    wait_for("Postgres to answer", answered, 90, every_s=1.0)
    return found[0]


def _drill(stack: TestStack, what: str, kill: Callable[[], None]) -> None:
    stack.wait_running(REPLICAS, 120)
    stop = threading.Event()

    def killer() -> None:
        for _ in range(KILLS):
            if stop.wait(KILL_EVERY_S):
                return
            kill()

    with Load(stack.url, workers=WRITERS, max_seconds=KILLS * KILL_EVERY_S + 20, writes=True) as load:
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        thread.join(timeout=KILLS * KILL_EVERY_S + 60)
        stop.set()
        load.threads[0].join(timeout=60)
    stored = _stored(stack, load.marker)
    duplicates = {name: n for name, n in stored.items() if n > 1}
    lost = sorted(set(load.acknowledged) - set(stored))
    written_unacknowledged = len(set(stored) - set(load.acknowledged))
    kinds = Counter(failure.split(" ")[0] for failure in load.failures)
    print(
        f"{what}: {len(load.samples)} writes, {len(load.failures)} failed ({dict(kinds)}), "
        f"{len(duplicates)} duplicates, {len(lost)} acknowledged lost, "
        f"{written_unacknowledged} stored without an acknowledgement"
    )
    assert len(load.acknowledged) > 100, "the drill wrote too little to mean anything"
    assert duplicates == {}, f"markers stored more than once: {list(duplicates.items())[:5]}"
    assert lost == [], f"acknowledged writes missing: {lost[:5]}"


def test_replicas_killed_under_writes_store_no_write_twice_and_lose_none_acknowledged(
    stack: TestStack,
) -> None:
    def kill_a_replica() -> None:
        task = stack.running_tasks()[0]
        stack.client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"]).kill()  # SIGKILL

    _drill(stack, f"{KILLS} replicas killed (SIGKILL)", kill_a_replica)


def test_postgres_killed_under_writes_stores_no_write_twice_and_loses_none_acknowledged(
    stack: TestStack,
) -> None:
    def kill_postgres() -> None:
        # SIGKILL to the postmaster, no shutdown at all: Swarm starts a new task on the same volume, which
        # replays the WAL; every write Postgres acknowledged was flushed before the commit returned.
        _postgres(stack).kill()

    _drill(stack, f"Postgres killed {KILLS} times (SIGKILL)", kill_postgres)
