"""The observability pack against a live local stack: the pack's two Prometheus servers (testbed/prometheus.py,
the pack's configs rendered for a test stack's names and ports) scrape HAProxy, the autoscaler and every app
replica, and every query of the Grafana dashboard returns data. Bounded: about a minute once the stack is up.

The same stack shows the JSON logs (one object per line from the autoscaler and each replica) and the
autoscaler's Docker health check turning healthy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from components.prometheus import PACK
from testbed.load import Load
from testbed.prometheus import RunningPrometheus, prometheus_for
from testbed.stack import TestStack, stand_up
from testbed.waiting import Deadline, wait_for

DASHBOARD = PACK / "grafana" / "hostscale.json"


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[TestStack]:
    with stand_up(docker_client) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def prometheus(stack: TestStack, images: dict[str, str]) -> Iterator[RunningPrometheus]:
    with prometheus_for(stack, images["prometheus"]) as running:
        try:
            yield running
        finally:
            print(running.logs())


def test_every_replica_haproxy_and_the_autoscaler_are_scraped(
    stack: TestStack, prometheus: RunningPrometheus
) -> None:
    expected = {"haproxy": ["up"], "autoscaler": ["up"], "replicas": ["up"]}
    # Bounded generously: in a full CI run the two cores are busy with the stack's start-up for a while.
    wait_for("every target of the main Prometheus up", lambda: prometheus.targets() == expected, 180, 1)
    slots = sorted(f"{stack.app_service}.{task['Slot']}" for task in stack.running_tasks())
    assert len(slots) == 2

    def replicas_up() -> list[str]:
        return sorted(s["metric"]["instance"] for s in prometheus.query('up{job="app"} == 1'))

    wait_for(f"each replica scraped on its own: {slots}", lambda: replicas_up() == slots, 120, 1)


def test_every_dashboard_query_returns_data(stack: TestStack, prometheus: RunningPrometheus) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10, queries
    wait_for("the replicas federated", lambda: bool(prometheus.query('up{job="app"} == 1')), 60, 1)
    # Traffic through HAProxy while the queries run: rates, the p95 and the 5xx ratio need requests in the
    # last minute. Bounded in time; 4 clients.
    with Load(stack.url, workers=4, max_seconds=90, work_ms=20) as load:
        deadline = Deadline(60)
        empty = list(queries)
        while empty and not deadline.expired():
            empty = [expr for expr in empty if not prometheus.query(expr)]
            if empty:
                time.sleep(2)
    assert load.failures == [], load.failures[:5]
    assert empty == [], f"dashboard queries without data after 60 s: {empty}"


def test_logs_are_one_json_object_per_line(stack: TestStack) -> None:
    autoscaler = stack.autoscaler().logs().decode().splitlines()
    replica = stack.client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={stack.app_service}"}
    )
    assert replica, "no replica container on this host"
    lines = autoscaler + replica[0].logs().decode().splitlines()
    assert lines, "nothing was logged"
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], not_json[:5]
    messages = [json.loads(line)["message"] for line in autoscaler]
    assert any(message.startswith("scaling service ") for message in messages), messages[:5]


def test_the_autoscaler_container_turns_healthy(stack: TestStack) -> None:
    def health() -> str:
        container = stack.autoscaler()
        container.reload()
        return str(container.attrs["State"].get("Health", {}).get("Status"))

    wait_for("the autoscaler's Docker health check to pass", lambda: health() == "healthy", 60, 1)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_the_stack_option_deploys_the_packs_prometheus(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    """hostscale:prometheus.enabled: the stack's own Prometheus, on loopback, scrapes every replica too."""
    with stand_up(docker_client, prometheus=True) as deployed:
        url = str(deployed.outputs["prometheus_url"])
        assert url.startswith("http://127.0.0.1:"), url
        running = RunningPrometheus(url, deployed.client.containers.get(f"{deployed.prefix}-prometheus"),
                                    deployed.client.containers.get(f"{deployed.prefix}-prometheus-replicas"))  # fmt: skip
        expected = {"haproxy": ["up"], "autoscaler": ["up"], "replicas": ["up"]}
        try:
            wait_for(
                "every target of the stack's Prometheus up", lambda: _targets(running) == expected, 90, 1
            )
            wait_for("both replicas federated", lambda: len(running.query('up{job="app"} == 1')) == 2, 60, 1)
        finally:
            print(running.logs())


def _targets(running: RunningPrometheus) -> dict[str, list[str]]:
    try:
        return running.targets()
    except httpx.HTTPError:  # not listening yet
        return {}
