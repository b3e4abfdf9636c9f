"""The HAProxy image: its default config is valid, it spreads requests over every replica Docker's DNS
returns, and its metrics stay on loopback unless opened."""

from __future__ import annotations

import socket
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
    replicas = [testbed.app(f"app-{i}", env={"SERVED_BY_HEADER": "true"}) for i in range(2)]
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
    url = _opened_metrics(testbed)
    assert 'haproxy_backend_status{proxy="app",state="UP"}' in httpx.get(f"{url}/metrics", timeout=3).text


@pytest.mark.parametrize("host", ["localhost:8404", "127.0.0.1", "[::1]:8404", "10.0.0.5:8404"])
def test_haproxy_stats_answer_a_host_that_is_an_address_or_localhost(testbed: TestBed, host: str) -> None:
    url = _opened_metrics(testbed)
    for path in ["/metrics", "/stats"]:
        assert httpx.get(f"{url}{path}", headers={"host": host}, timeout=3).status_code == 200, path


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8404", "localhost.attacker.example"])
def test_haproxy_stats_refuse_another_name_as_dns_rebinding(testbed: TestBed, host: str) -> None:
    url = _opened_metrics(testbed)
    for path in ["/metrics", "/stats", "/stats;csv"]:
        response = httpx.get(f"{url}{path}", headers={"host": host}, timeout=3)
        assert response.status_code == 421, (path, response.status_code)
        assert "haproxy_" not in response.text


def _opened_metrics(testbed: TestBed) -> str:
    """HAProxy with its stats and metrics opened to every interface (published on loopback): their URL."""
    lb = testbed.run(
        "haproxy",
        "lb",
        environment={"HAPROXY_BACKEND_HOST": "app", "HAPROXY_METRICS_BIND": ":8404"},
        ports={"8404/tcp": ("127.0.0.1", None)},
    )
    url = published_url(lb, "8404/tcp")
    wait_for("the metrics endpoint", lambda: _get(url, "/metrics") == 200, 15)
    return url


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
    url, metrics = _lb(testbed, {"HAPROXY_SERVER_MAXCONN": str(maxconn), "HAPROXY_QUEUE_MAX": str(queue_max)})
    wait_for("the replica UP behind HAProxy", lambda: _get(url, "/healthz") == 200, 30)
    return replica, url, metrics


def _lb(testbed: TestBed, environment: dict[str, str]) -> tuple[str, str]:
    """HAProxy (the image's default config) for the backend name `app`, its metrics opened: (url, metrics url)."""
    lb = testbed.run(
        "haproxy",
        "lb",
        environment={"HAPROXY_BACKEND_HOST": "app", "HAPROXY_METRICS_BIND": ":8404", **environment},
        ports={"8080/tcp": ("127.0.0.1", None), "8404/tcp": ("127.0.0.1", None)},
    )
    return published_url(lb, "8080/tcp"), published_url(lb, "8404/tcp") + "/metrics"


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


# A replica that dies mid-request, every time: it answers HAProxy's health check, but on any other request it
# logs the request line (one line per attempt HAProxy makes) and closes the connection without a byte of answer,
# as a replica killed after its commit does. The app image only lends its Python.
_DYING_REPLICA = """
import socketserver

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode().strip()
        length = 0
        while (header := self.rfile.readline()) not in (b"\\r\\n", b""):
            name, _, value = header.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        self.rfile.read(length)
        if line.startswith("GET /healthz "):
            self.wfile.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\nconnection: close\\r\\n\\r\\n")
            return
        print("attempt", line, flush=True)

socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


def _send_in_one_write(url: str, method: str, path: str, body: bytes) -> bytes:
    """One request whose headers and body reach HAProxy together: HAProxy replays only a request it holds
    whole, and a client that sends the body in a later packet would hide the bug this tests."""
    port = int(url.rsplit(":", 1)[1])
    head = f"{method} {path} HTTP/1.1\r\nhost: lb\r\ncontent-type: application/json\r\n"
    tail = f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode() + tail.encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def _attempts(replica: Container, request_line: str) -> int:
    logs: str = replica.logs().decode()
    return logs.splitlines().count(f"attempt {request_line}")


@pytest.mark.parametrize(
    ("method", "path", "attempts"),
    [
        pytest.param("POST", "/api/items", 1, id="a POST that reached a replica is never sent again"),
        pytest.param("DELETE", "/api/items/7", 1, id="a DELETE that reached a replica is never sent again"),
        pytest.param("GET", "/api/items/7", 4, id="a GET is retried three times on an empty response"),
    ],
)
def test_only_safe_methods_are_replayed_after_a_replica_dies_mid_request(
    testbed: TestBed, method: str, path: str, attempts: int
) -> None:
    replica = testbed.run("app", "app-0", aliases=["app"], command=["python3", "-c", _DYING_REPLICA])
    lb = testbed.run(
        "haproxy", "lb", environment={"HAPROXY_BACKEND_HOST": "app"}, ports={"8080/tcp": ("127.0.0.1", None)}
    )
    url = published_url(lb, "8080/tcp")
    wait_for("the dying replica UP behind HAProxy", lambda: _get(url, "/healthz") == 200, 30)
    body = b'{"name": "once"}' if method == "POST" else b""
    assert _send_in_one_write(url, method, path, body).startswith(b"HTTP/1.1 502 ")
    request_line = f"{method} {path} HTTP/1.1"
    wait_for("the replica's log", lambda: _attempts(replica, request_line) >= 1, 5)
    assert _attempts(replica, request_line) == attempts, replica.logs().decode()


def _lb_with_no_replica(testbed: TestBed, queue_max: int = 256) -> tuple[str, str]:
    """HAProxy (the image's default config) whose backend name resolves to nothing yet: (url, metrics url)."""
    url, metrics = _lb(testbed, {"HAPROXY_QUEUE_MAX": str(queue_max)})
    wait_for("HAProxy's metrics", lambda: _get(metrics.removesuffix("/metrics"), "/metrics") == 200, 15)
    return url, metrics


def test_with_no_replica_up_a_request_waits_in_the_backend_and_the_replica_that_starts_serves_it(
    testbed: TestBed,
) -> None:
    """Scale from zero, HAProxy's side: the request is held (and counted as the backend's session, which is the
    demand the autoscaler reads) until a replica is UP, then served, not refused with a 503."""
    testbed.postgres()
    url, metrics = _lb_with_no_replica(testbed)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        # /healthz: the question is HAProxy's hold, not the new replica's first database read.
        held = pool.submit(httpx.get, f"{url}/healthz", timeout=30)
        wait_for(
            "the request held in the backend",
            lambda: _metric(metrics, "haproxy_backend_current_sessions") >= 1,
            5,
            0.05,
        )
        testbed.app("app-0")  # the replica the autoscaler would start
        response = held.result()
        waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
    assert waited > 0.5, "the request cannot have been served before a replica existed"


def test_held_requests_are_bounded_and_time_out_with_503_and_retry_after(testbed: TestBed) -> None:
    """No replica ever comes: two requests wait (the bound), a third is refused at once, and the two get 503 with
    Retry-After when the hold ends (the image's 10 s queue timeout), not an error page or a hang."""
    url, metrics = _lb_with_no_replica(testbed, queue_max=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = time.monotonic()
        held = [pool.submit(httpx.get, f"{url}/healthz", timeout=30) for _ in range(2)]
        wait_for(
            "two requests held in the backend",
            lambda: _metric(metrics, "haproxy_backend_current_sessions") >= 2,
            5,
            0.05,
        )
        refused_at = time.monotonic()
        refused = httpx.get(f"{url}/healthz", timeout=30)
        refused_after = time.monotonic() - refused_at
        timed_out = [future.result() for future in held]
        waited = time.monotonic() - started
    assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1")
    assert "no replica is up yet" in refused.json()["error"]["message"]
    assert refused_after < 2, f"the request beyond the bound waited {refused_after:.1f} s"
    assert [(r.status_code, r.headers.get("retry-after")) for r in timed_out] == [(503, "1")] * 2
    assert timed_out[0].json()["error"]["message"] == "no replica could take the request; retry shortly"
    assert waited >= 9.5, f"the held requests were answered after {waited:.1f} s, before the 10 s hold"
