"""The live status page in headless Chromium (Debian's, through Playwright), against the real status app served
by uvicorn on a free loopback port, over a controller whose HAProxy, Swarm and VMs are fakes the test moves:
the page shows what /status says, follows new decisions without a reload, draws the kept history, renders
operator text as text, and asks nothing of any other origin."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Request, expect
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autoscaler.controller import Controller
from autoscaler.haproxy_metrics import BackendSample
from autoscaler.policy import load_policy
from autoscaler.status import create_status_app
from autoscaler.status_page import CONTENT_SECURITY_POLICY
from testbed.ports import free_loopback_port
from testbed.waiting import wait_for
from tests.autoscaler.test_controller import Clock, FakeReplicas
from tests.autoscaler.test_controller_fleet import FLEET_POLICY, FakeFleet, two_vms

# A rule name is the operator's free text: this one would run a script, and fetch /pwned, if it were markup.
HOSTILE_NAME = '<script>window.pwned = 1</script><img src="/pwned" onerror="window.pwned = 2">'
PAGE_POLICY = {
    "replicas": {"min": 2, "max": 10},
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 10}],
    "steps": [{"name": HOSTILE_NAME, "metric": "queued_requests", "above": 50, "for_seconds": 30, "add": 2}],
    "scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0},
}
EXPECT_TIMEOUT_MS = 15_000  # a few of the page's 1.5 s polls, on a busy 2-core machine


@dataclass
class TunableSource:
    """HAProxy as the test sets it: the load per replica, the queue, and which servers are UP."""

    clock: Clock
    sessions_per_replica: float = 10.0
    queued_requests: float = 0.0
    servers: dict[str, str] = field(default_factory=lambda: {"app-1": "UP", "app-2": "UP"})

    def read(self) -> BackendSample:
        ready = sum(1 for state in self.servers.values() if state == "UP")
        metrics = {"sessions_per_replica": self.sessions_per_replica, "queued_requests": self.queued_requests}
        return BackendSample(self.clock(), ready, metrics, dict(self.servers))


def new_controller(policy: Any, clock: Clock, source: TunableSource) -> Controller:
    return Controller(
        load_policy(policy),
        source,
        FakeReplicas(2),
        clock=clock,
        wall_clock=clock,
        fleet=(FakeFleet(two_vms()), FLEET_POLICY),
    )


def status_app(controller: Controller, extra_status: dict[str, Any]) -> Starlette:
    """The real status app, its /status answer with `extra_status`'s fields added."""
    app = create_status_app(controller)
    plain_status = next(
        route for route in app.router.routes if isinstance(route, Route) and route.path == "/status"
    )

    async def status_with_extra(request: HttpRequest) -> Response:
        answer = await plain_status.endpoint(request)
        return JSONResponse({**json.loads(bytes(answer.body)), **extra_status})

    app.router.routes.insert(0, Route("/status", status_with_extra))
    return app


def serve(app: Starlette, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("the status API", lambda: server.started, 10)
    return server, thread


@dataclass
class Served:
    port: int
    policy: Any
    clock: Clock
    source: TunableSource
    # Fields added to /status's answer, for what other parts of the autoscaler put there (schedules).
    extra_status: dict[str, Any]
    controller: Controller = field(init=False)
    server: uvicorn.Server = field(init=False)
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """An autoscaler process: a fresh controller (its evaluations numbered from 1) on the port."""
        self.controller = new_controller(self.policy, self.clock, self.source)
        self.server, self.thread = serve(status_app(self.controller, self.extra_status), self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def tick(self, seconds: float = 2.0) -> None:
        self.clock.now += seconds
        self.controller.tick()

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/status", timeout=5).json()
        return body


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The status app on a free loopback port, over PAGE_POLICY or the policy a test passes (indirect)."""
    clock = Clock()
    clock.now = time.time()
    running = Served(
        free_loopback_port(), getattr(request, "param", PAGE_POLICY), clock, TunableSource(clock), {}
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def cells(page: Page, table: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(row => [...row.cells].map(cell => cell.textContent))"
    )
    return rows


def samples(page: Page, series: str) -> int:
    return int(page.get_attribute(f'#replicas-chart polyline[data-series="{series}"]', "data-samples") or -1)


def test_the_page_shows_the_counts_rules_vms_and_servers_that_status_reports(
    page: Page, served: Served
) -> None:
    served.source.sessions_per_replica = 20  # asks for 4 replicas: the warm VM is powered on
    served.tick()
    status = served.status()
    assert (status["current"], status["desired"], status["ready"]) == (2, 4, 2)
    response = page.goto(served.url)
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    for count in ("current", "desired", "ready"):
        expect(page.locator(f"#{count}")).to_have_text(str(status[count]), timeout=EXPECT_TIMEOUT_MS)
    expect(page.locator("#min")).to_have_text("2")
    expect(page.locator("#max")).to_have_text("10")
    assert page.locator("#reasons li").all_text_contents() == status["reasons"]
    assert cells(page, "targets") == [["sessions", "sessions_per_replica", "10", "20"]]
    assert cells(page, "steps") == [[HOSTILE_NAME, "queued_requests", "above 50", "30 s", "+2", "0"]]
    assert cells(page, "directions") == [
        ["scale out", "0 s", "4 replicas or 100 %", "0 s", "0.1"],
        ["scale in", "0 s", "1 replica", "0 s", "0.1"],
    ]
    assert cells(page, "vms") == [[name, state] for name, state in status["vms"].items()]
    assert status["vms"] == {"w0": "active (2 tasks)", "w1": "off"}
    expect(page.locator("#vms-summary")).to_have_text("1 of 2 running")
    assert cells(page, "servers") == [["app-1", "UP"], ["app-2", "UP"]]
    assert page.locator("#stuck li").all_text_contents() == ["nothing"]
    assert page.locator("#schedules-section").is_hidden(), "no schedules in /status: no schedules table"


def test_a_new_decision_appears_without_a_reload(page: Page, served: Served) -> None:
    served.tick()  # load at the target: holds at 2
    page.goto(served.url)
    expect(page.locator("#no-decisions")).to_be_visible(timeout=EXPECT_TIMEOUT_MS)
    page.evaluate("window.sameDocument = true")

    served.source.sessions_per_replica = 30
    served.tick()
    decision = served.status()["last_changes"][-1]
    assert (decision["current"], decision["desired"]) == (2, 6)
    newest = page.locator("#decisions tbody tr").first
    expect(newest).to_have_attribute("data-seq", str(decision["seq"]), timeout=EXPECT_TIMEOUT_MS)
    assert newest.locator("td").nth(1).text_content() == "scaled out 2 \u2192 6"
    assert newest.locator("td").nth(2).locator("li").all_text_contents() == decision["reasons"]
    assert newest.locator("td").nth(3).text_content() == "; ".join(decision["vm_steps"])
    expect(page.locator("#desired")).to_have_text("6")
    assert page.evaluate("window.sameDocument") is True, "the page must update in place, not reload"


@pytest.mark.parametrize("served", [{**PAGE_POLICY, "dry_run": True}], indirect=True, ids=["in dry run"])
def test_a_dry_run_says_so_and_what_it_would_have_done(page: Page, served: Served) -> None:
    served.source.sessions_per_replica = 20
    served.tick()
    page.goto(served.url)
    expect(page.locator("#mode")).to_have_text(
        "dry run: decisions are not applied", timeout=EXPECT_TIMEOUT_MS
    )
    expect(page.locator("#decisions tbody tr td").nth(1)).to_have_text("would scale out 2 \u2192 4 (dry run)")
    assert page.locator("#current").text_content() == "2"


def test_a_fresh_page_draws_the_kept_minutes_and_each_new_evaluation(page: Page, served: Served) -> None:
    for load in (10, 20, 30, 20, 10, 10):
        served.source.sessions_per_replica = load
        served.tick()
    page.goto(served.url)
    expect(page.locator('#replicas-chart polyline[data-series="desired"]')).to_have_attribute(
        "data-samples", "6", timeout=EXPECT_TIMEOUT_MS
    )
    points = page.eval_on_selector(
        '#replicas-chart polyline[data-series="desired"]', "line => line.points.numberOfItems"
    )
    assert points == 6
    metric = page.locator('#metric-charts svg[data-metric="sessions_per_replica"] polyline')
    assert metric.get_attribute("data-samples") == "6"
    target = page.locator(
        '#metric-charts svg[data-metric="sessions_per_replica"] line[data-level="target sessions"]'
    )
    expect(target).to_have_count(1)

    served.tick()
    expect(page.locator('#replicas-chart polyline[data-series="ready"]')).to_have_attribute(
        "data-samples", "7", timeout=EXPECT_TIMEOUT_MS
    )
    assert samples(page, "desired") == 7


def test_a_restarted_autoscaler_starts_the_pages_history_over(page: Page, served: Served) -> None:
    for _ in range(5):
        served.tick()
    page.goto(served.url)
    chart = page.locator('#replicas-chart polyline[data-series="desired"]')
    expect(chart).to_have_attribute("data-samples", "5", timeout=EXPECT_TIMEOUT_MS)
    served.stop()
    served.start()  # its evaluations are numbered from 1 again: /events?since=5 would miss the first five
    served.tick()
    served.tick()
    expect(chart).to_have_attribute("data-samples", "2", timeout=EXPECT_TIMEOUT_MS)
    expect(page.locator("#last-time")).to_contain_text("(#2)")


def test_a_rule_name_with_markup_is_shown_as_text_and_never_runs(page: Page, served: Served) -> None:
    served.source.queued_requests = 80  # the step rule holds: its name reaches the reasons once it fires
    served.tick()
    served.tick(31)
    reasons = served.status()["reasons"]
    assert any(HOSTILE_NAME in reason for reason in reasons), reasons
    page.goto(served.url)
    expect(page.locator("#steps tbody td").first).to_have_text(HOSTILE_NAME, timeout=EXPECT_TIMEOUT_MS)
    expect(page.locator("#reasons li")).to_have_text(reasons)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("main img, main script").count() == 0


def test_schedules_in_status_are_shown_entry_by_entry_as_text(page: Page, served: Served) -> None:
    """/status carries `schedules` once the policy has them (another part of the autoscaler): the page shows
    each entry's fields, whatever they are, as text."""
    served.extra_status["schedules"] = [
        {
            "name": "office hours",
            "cron": "0 8 * * 1-5",
            "min_replicas": 4,
            "active": True,
            "next_change": "18:00",
        },
        {
            "name": HOSTILE_NAME,
            "cron": "0 0 * * *",
            "min_replicas": 3,
            "active": False,
            "window": {"hours": 2},
        },
    ]
    served.tick()
    page.goto(served.url)
    expect(page.locator("#schedules-section")).to_be_visible(timeout=EXPECT_TIMEOUT_MS)
    headers = page.locator("#schedules thead th").all_text_contents()
    assert headers == ["name", "cron", "min replicas", "active", "next change", "window"]
    assert cells(page, "schedules") == [
        ["office hours", "0 8 * * 1-5", "4", "true", "18:00", "\u2013"],
        [HOSTILE_NAME, "0 0 * * *", "3", "false", "\u2013", '{"hours":2}'],
    ]
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_the_page_asks_nothing_of_any_other_origin(page: Page, served: Served) -> None:
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)
    served.source.queued_requests = 80  # the hostile rule name is in the reasons too
    served.tick()
    served.tick(31)
    page.goto(served.url)
    expect(page.locator("#desired")).to_have_text(str(served.status()["desired"]), timeout=EXPECT_TIMEOUT_MS)
    wait_for("a second round of polls", lambda: sum("/status" in url for url in requested) >= 2, 10)
    paths = {url.removeprefix(served.url).split("?")[0] for url in requested}
    assert all(url.startswith(f"{served.url}/") for url in requested), requested
    assert paths <= {"/", "/page/status.js", "/page/status.css", "/status", "/events", "/favicon.ico"}, paths
    assert "/pwned" not in paths


def test_the_page_says_when_the_autoscaler_stops_answering(page: Page, served: Served) -> None:
    served.tick()
    page.goto(served.url)
    expect(page.locator("#connection")).to_contain_text("evaluations in view", timeout=EXPECT_TIMEOUT_MS)
    served.stop()
    expect(page.locator("#connection")).to_have_text(
        "cannot read the autoscaler: Failed to fetch", timeout=EXPECT_TIMEOUT_MS
    )
    expect(page.locator("#current")).to_have_text("2")  # the last counts stay on the page
