"""The HAProxy image: its default config is valid, it spreads requests over every replica Docker's DNS
returns, and its metrics stay on loopback unless opened."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from docker.models.containers import Container

from testbed.containers import TestBed, published_url, wait_ready
from testbed.waiting import wait_for


def test_haproxy_default_config_passes_haproxy_check(testbed: TestBed) -> None:
    output = testbed.client.containers.run(
        testbed.images["haproxy"],
        ["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"],
        remove=True,
        stderr=True,
    )
    assert b"Configuration file is valid" in output


def test_haproxy_spreads_requests_over_both_app_replicas(testbed: TestBed) -> None:
    testbed.postgres()
    replicas = [testbed.app(f"app-{i}") for i in range(2)]
    for replica in replicas:
        wait_ready(published_url(replica))
    lb = testbed.run(
        "haproxy", "lb", environment={"HAPROXY_BACKEND_HOST": "app"}, ports={"8080/tcp": ("127.0.0.1", None)}
    )
    url = published_url(lb, "8080/tcp")

    with httpx.Client(base_url=url, timeout=5) as client:
        wait_for("both replicas behind HAProxy", lambda: len(_served_by(client, 10)) == 2, 30)
        served = _served_by(client, 40)
        item = client.post("/api/items", json={"name": "through the load balancer"})
        assert item.status_code == 201
        assert client.get(f"/api/items/{item.json()['id']}").json() == item.json()

    assert set(served) == {r.id[:12] for r in replicas}
    assert min(served.values()) >= 10, f"requests should be spread over both replicas: {served}"


def _served_by(client: httpx.Client, requests: int) -> Counter[str]:
    served: Counter[str] = Counter()
    for _ in range(requests):
        response = client.get("/healthz")
        if response.status_code == 200:
            served[response.headers["x-served-by"]] += 1
    return served


def test_haproxy_metrics_bind_to_loopback_by_default(testbed: TestBed) -> None:
    lb = testbed.run(
        "haproxy", "lb", environment={"HAPROXY_BACKEND_HOST": "app"}, ports={"8404/tcp": ("127.0.0.1", None)}
    )
    url = published_url(lb, "8404/tcp")
    # /proc/net/tcp lists listening sockets as hex ADDR:PORT with state 0A: 127.0.0.1:8404 is 0100007F:20D4.
    wait_for("haproxy to listen", lambda: "0100007F:20D4" in _listening(lb), 15)
    assert "00000000:20D4" not in _listening(lb), "metrics must not listen on every interface"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/metrics", timeout=3)


def test_haproxy_metrics_open_when_the_operator_sets_the_bind(testbed: TestBed) -> None:
    lb = testbed.run(
        "haproxy",
        "lb",
        environment={"HAPROXY_BACKEND_HOST": "app", "HAPROXY_METRICS_BIND": ":8404"},
        ports={"8404/tcp": ("127.0.0.1", None)},
    )
    url = published_url(lb, "8404/tcp")

    def metrics_served() -> bool:
        try:
            return httpx.get(f"{url}/metrics", timeout=3).status_code == 200
        except httpx.TransportError:
            return False

    wait_for("the metrics endpoint", metrics_served, 15)
    assert 'haproxy_backend_status{proxy="app",state="UP"}' in httpx.get(f"{url}/metrics", timeout=3).text


def _listening(container: Container) -> set[str]:
    code, output = container.exec_run(["cat", "/proc/net/tcp"])
    assert code == 0
    rows = [line.split() for line in output.decode().splitlines()[1:]]
    return {row[1] for row in rows if row[3] == "0A"}


def _lb_in_front_of_one_replica(testbed: TestBed, maxconn: int, queue_max: int) -> tuple[Container, str, str]:
    """HAProxy (the image's default config) in front of one ready replica: (replica, url, metrics url)."""
    testbed.postgres()
    replica = testbed.app("app-0")
    wait_ready(published_url(replica))
    lb = testbed.run(
        "haproxy",
        "lb",
        environment={
            "HAPROXY_BACKEND_HOST": "app",
            "HAPROXY_METRICS_BIND": ":8404",
            "HAPROXY_SERVER_MAXCONN": str(maxconn),
            "HAPROXY_QUEUE_MAX": str(queue_max),
        },
        ports={"8080/tcp": ("127.0.0.1", None), "8404/tcp": ("127.0.0.1", None)},
    )
    url, metrics = published_url(lb, "8080/tcp"), published_url(lb, "8404/tcp") + "/metrics"
    wait_for("the replica UP behind HAProxy", lambda: _get(url, "/healthz") == 200, 30)
    return replica, url, metrics


def _get(url: str, path: str) -> int | None:
    try:
        return httpx.get(f"{url}{path}", timeout=5).status_code
    except httpx.HTTPError:
        return None


def _metric(metrics_url: str, name: str, proxy: str = "app") -> float:
    text = httpx.get(metrics_url, timeout=5).text
    label = f'proxy="{proxy}"'
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + "{") and label in line]
    assert values, f"HAProxy exposes no {name} for {proxy}"
    return sum(float(value) for value in values)


def test_a_replica_that_answers_late_stays_in_rotation(testbed: TestBed) -> None:
    """A replica frozen for 2.5 s (a busy one answers late, not never) keeps its place: the requests sent meanwhile
    wait and succeed, and HAProxy never marks it DOWN (it did with a 1 s check timeout and two misses)."""
    replica, url, metrics = _lb_in_front_of_one_replica(testbed, maxconn=8, queue_max=64)
    # HAProxy counts one UP -> DOWN transition per slot at start-up (a server-template slot starts DOWN), so what
    # matters is that the count does not move while the replica is frozen.
    transitions = _metric(metrics, "haproxy_server_check_up_down_total")
    with ThreadPoolExecutor(max_workers=6) as pool:
        replica.pause()
        try:
            pending = [pool.submit(_get, url, "/api/work?ms=1") for _ in range(6)]
            time.sleep(2.5)
        finally:
            replica.unpause()
        codes = [future.result() for future in pending]
    assert codes == [200] * 6, codes
    assert _metric(metrics, "haproxy_server_check_up_down_total") == transitions, (
        "the replica was marked DOWN"
    )


def test_beyond_the_queue_bound_requests_are_refused_at_once_with_retry_after(testbed: TestBed) -> None:
    """One slot and two places in the queue: with the replica frozen, the first three requests wait and are served
    once it answers again; the other three are refused while it is still frozen, with 503 and Retry-After."""
    replica, url, metrics = _lb_in_front_of_one_replica(testbed, maxconn=1, queue_max=2)
    refused: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(max_workers=3) as pool:
        replica.pause()
        try:
            accepted = [pool.submit(client.get, "/api/work", params={"ms": 1}) for _ in range(3)]
            # One in the replica's slot, two in the queue: the bound is reached.
            wait_for(
                "three requests in HAProxy",
                lambda: _metric(metrics, "haproxy_frontend_current_sessions", "web") >= 3,
                10,
                0.05,
            )
            refused = [client.get("/api/work", params={"ms": 1}) for _ in range(3)]
        finally:
            replica.unpause()
        served = [future.result() for future in accepted]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert [(r.status_code, r.headers.get("retry-after")) for r in refused] == [(503, "1")] * 3
    assert refused[0].json() == {"error": {"status": 503, "message": "every replica is busy; retry shortly"}}
