"""The program's side of `up` on the local stack (a test stack, testbed/stack.py), through the apply harness:
the first request after `up` succeeds; and the second `up` keeps what it must: the replica count the
autoscaler set, through an image roll-out under load; the rows in Postgres, through `down` and `up`; no 500
for any client while a new db_password reaches the role and the replicas.
"""

from __future__ import annotations

import contextlib
import copy
import re
import secrets
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import httpx
import pytest

from components.haproxy_cfg import BACKEND
from components.readiness import Verdict, backend_verdict, stats_csv_url
from harness import dev_stack
from testbed.load import Load
from testbed.stack import TestStack, config_for
from testbed.waiting import Deadline, wait_for

# Scales to max as soon as any request is in flight, and never back down while a test runs.
SCALE_TO_FOUR = {
    "replicas": {"min": 2, "max": 4},
    "interval_seconds": 1,
    "metrics_max_age_seconds": 5,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 0.5}],
    "scale_up": {"stabilization_seconds": 0, "cooldown_seconds": 1, "max_step": 2},
    "scale_down": {"stabilization_seconds": 600, "cooldown_seconds": 600, "max_step": 1},
}


class Deployment:
    """One test stack `up` can be run on again with an edited config; on exit it is taken down and its data
    volume removed (retained by `down` itself)."""

    def __init__(self, client: docker.DockerClient, config: dict[str, Any]) -> None:
        run_id = secrets.token_hex(4)
        self.client, self.name, self.prefix = client, f"test-{run_id}", f"hs-{run_id}"
        self.config = config_for(self.prefix, **config)

    def up(self, **sections: dict[str, Any]) -> TestStack:
        """`up` with these hostscale:<section> keys changed from the first config."""
        config = copy.deepcopy(self.config)
        for section, keys in sections.items():
            config[f"hostscale:{section}"] = {**config.get(f"hostscale:{section}", {}), **keys}
        return TestStack(self.client, self.name, self.prefix, dev_stack.up(self.name, config=config))

    def volume_exists(self) -> bool:
        return any(v.name == f"{self.prefix}-pgdata" for v in self.client.volumes.list())


@contextlib.contextmanager
def deployment(client: docker.DockerClient, **config: Any) -> Iterator[Deployment]:
    was_manager = bool(client.info()["Swarm"].get("ControlAvailable"))
    deployed = Deployment(client, config)
    try:
        yield deployed
    finally:
        dev_stack.down(deployed.name, delete_data=True)
        if not was_manager and client.info()["Swarm"]["LocalNodeState"] == "active":
            client.swarm.leave(force=True)


def haproxy_verdict(stack: TestStack, wanted: int) -> Verdict:
    stats_url = str(stack.outputs["stats_url"])
    return backend_verdict(httpx.get(stats_csv_url(stats_url), timeout=5).text, BACKEND, wanted)


@dataclass
class FirstUp:
    stack: TestStack
    health: httpx.Response  # the first requests, sent the moment `up` returned
    items: httpx.Response
    password: str
    command_lines: list[str]  # of the host's processes running a step while `up` ran


@pytest.fixture(scope="module")
def first_up(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[FirstUp]:
    password = secrets.token_urlsafe(24)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        steps = ("components.role_password", "components.readiness", "psql")
        while not done.is_set():
            listing = subprocess.run(
                ["ps", "-eo", "args"], capture_output=True, text=True, check=False
            ).stdout
            seen.extend(line for line in listing.splitlines() if any(step in line for step in steps))
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    with deployment(docker_client) as deployed:
        deployed.config["hostscale:db_password"] = password
        watcher.start()
        try:
            stack = deployed.up()
        finally:
            done.set()
            watcher.join(timeout=10)
        # Straight after `up` returned: no wait of any kind in between.
        health = httpx.get(f"{stack.url}/healthz", timeout=10)
        items = httpx.get(f"{stack.url}/api/items", params={"limit": 1}, timeout=10)
        yield FirstUp(stack, health, items, password, seen)


def test_the_first_request_after_up_returns_200(first_up: FirstUp) -> None:
    responses = (first_up.health, first_up.items)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert haproxy_verdict(first_up.stack, 2) == Verdict(True, ()), "both initial replicas UP in HAProxy"


def test_no_step_has_the_password_on_its_command_line(first_up: FirstUp) -> None:
    lines = first_up.command_lines
    assert any("components.role_password" in line for line in lines), (
        f"the step was not seen running: {lines}"
    )
    assert any("components.readiness" in line for line in lines), f"the step was not seen running: {lines}"
    assert [line for line in lines if first_up.password in line] == []


def _images(stack: TestStack) -> Counter[str]:
    return Counter(task["Spec"]["ContainerSpec"]["Image"].split("@")[0] for task in stack.running_tasks())


def test_an_image_roll_under_load_keeps_the_count_the_autoscaler_set(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    rolled = f"{images['app']}-rolled"  # the same image under a new name: Swarm rolls every task onto it
    docker_client.images.get(images["app"]).tag(rolled)
    try:
        with deployment(docker_client, autoscaler=SCALE_TO_FOUR, app={"image": images["app"]}) as deployed:
            stack = deployed.up()
            with Load(stack.url, workers=6, max_seconds=300) as load:
                wait_for("the autoscaler to scale to 4", lambda: stack.replicas() == 4, 90)
                stack.wait_running(4)
                # Nothing may put back a count the `up` reset: the autoscaler waits until the roll is over.
                with stack.autoscaler_stopped():
                    deployed.up(app={"image": rolled})
                    wait_for(
                        "4 replicas on the new image", lambda: _images(stack) == Counter({rolled: 4}), 180
                    )
                    assert stack.replicas() == 4, "the count the autoscaler set"
            assert load.failures == [], f"{len(load.failures)} failed requests: {load.failures[:5]}"
            assert sum(load.served.values()) > 0
    finally:
        docker_client.images.remove(rolled)


def test_rows_written_before_down_and_up_are_read_back(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    with deployment(docker_client) as deployed:
        stack = deployed.up()
        created = httpx.post(f"{stack.url}/api/items", json={"name": "kept", "payload": {"n": 1}}, timeout=10)
        assert created.status_code == 201, created.text
        dev_stack.down(deployed.name)
        assert deployed.volume_exists(), "down must keep the data volume"
        stack = deployed.up()
        read = httpx.get(f"{stack.url}/api/items/{created.json()['id']}", timeout=10)
        assert (read.status_code, read.json()) == (200, created.json())


class ItemReads:
    """Bounded reads of one row through HAProxy from a few threads: every status seen, counted."""

    def __init__(self, url: str, item_id: int, workers: int = 4, max_seconds: float = 240) -> None:
        self.url, self.item_id, self.max_seconds = url, item_id, max_seconds
        self.statuses: Counter[str] = Counter()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        deadline = Deadline(self.max_seconds)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set() and not deadline.expired():
                try:
                    status = str(client.get(f"/api/items/{self.item_id}").status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.statuses[status] += 1

    def __enter__(self) -> ItemReads:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)


def _login(stack: TestStack, password: str) -> bool:
    """Whether the app role logs in with `password` over TCP, from inside the Postgres container (the only
    place it is reachable from but the app's network). The test's own throwaway password goes in the exec's
    environment."""
    postgres = stack.client.services.get(f"{stack.prefix}-postgres")
    task = postgres.tasks(filters={"desired-state": "running"})[0]
    container = stack.client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
    code, _ = container.exec_run(
        ["psql", "-h", "127.0.0.1", "-U", "app", "-d", "app", "-c", "SELECT 1"],
        environment={"PGPASSWORD": password},
    )
    return bool(code == 0)


def _secrets_of_running_app_tasks(stack: TestStack) -> set[str]:
    return {s["SecretName"] for t in stack.running_tasks() for s in t["Spec"]["ContainerSpec"]["Secrets"]}


def test_a_rotated_password_reaches_the_role_and_the_replicas_without_a_500(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with deployment(docker_client) as deployed:
        deployed.config["hostscale:db_password"] = first
        stack = deployed.up()
        created = httpx.post(f"{stack.url}/api/items", json={"name": "rotated", "payload": {}}, timeout=10)
        assert created.status_code == 201, created.text
        old_secrets = _secrets_of_running_app_tasks(stack)
        with ItemReads(stack.url, created.json()["id"]) as reads:
            deployed.config["hostscale:db_password"] = second
            deployed.up()
            wait_for(
                "2 replicas on the new secret",
                lambda: (
                    len(stack.running_tasks()) == 2 and not _secrets_of_running_app_tasks(stack) & old_secrets
                ),
                300,
            )
        assert (_login(stack, second), _login(stack, first)) == (True, False), (
            "the role's password is the new one"
        )
        read = httpx.get(f"{stack.url}/api/items/{created.json()['id']}", timeout=10)
        assert (read.status_code, read.json()) == (200, created.json()), "the replicas reconnected"
        errors = {
            status: n for status, n in reads.statuses.items() if status.startswith("5") and status != "503"
        }
        assert errors == {}, f"statuses while rotating: {dict(reads.statuses)}"
        assert reads.statuses["200"] > 0, f"statuses while rotating: {dict(reads.statuses)}"


def test_up_fails_in_bounded_time_naming_what_is_not_ready(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    """An app image that never serves HTTP on the app port (Postgres' own, which listens on 5432): its own
    HEALTHCHECK passes (an operator's image is checked by its own probe), so Swarm puts its tasks in DNS and
    HAProxy finds them, but every connection to the app port is refused, and `up` fails after the ready
    timeout naming that."""
    with deployment(
        docker_client, app={"image": images["postgres"], "ready_timeout_seconds": 30}
    ) as deployed:
        with pytest.raises(RuntimeError) as failed:
            deployed.up()
        url = deployed.config["hostscale:load_balancer"]
        frontend = f"http://127.0.0.1:{url['http_port']}/healthz"
        # 30 s, or 31 when the last look started just before the deadline.
        assert re.search(
            r"the tier is not ready after 3[01] s: 2 of 2 replicas DOWN in HAProxy: L4CON; 0 of 2 replicas UP;"
            rf" no GET {re.escape(frontend)} sent: with no replica UP, HAProxy holds a request until one is$",
            str(failed.value),
        ), str(failed.value)
        assert str(failed.value).startswith("readiness-check: ")
