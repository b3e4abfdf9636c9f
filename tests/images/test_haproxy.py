"""The HAProxy image: its default config is valid, it spreads requests over every replica Docker's DNS
returns, and its metrics stay on loopback unless opened."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from docker.models.containers import Container

from tests.support.containers import TestBed, published_url, wait_for, wait_ready


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
