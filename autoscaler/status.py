"""The autoscaler's status API (bound to loopback by default): /status, /events?since=, /metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autoscaler.controller import Controller, Event


def _event(event: Event) -> dict[str, Any]:
    return dataclasses.asdict(event)


class ControllerCollector(Collector):
    """Prometheus view of the controller, computed at scrape time from its last event."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        events = self.controller.recent_events()
        replicas = GaugeMetricFamily(
            "hostscale_autoscaler_replicas", "Replica counts seen and set.", labels=["kind"]
        )
        values = GaugeMetricFamily(
            "hostscale_autoscaler_metric_value", "Metric values the rules see.", labels=["metric"]
        )
        if events:
            last = events[-1]
            for kind, count in (("current", last.current), ("desired", last.desired), ("ready", last.ready)):
                replicas.add_metric([kind], count)
            for metric, value in last.metrics.items():
                values.add_metric([metric], value)
        scaled = CounterMetricFamily(
            "hostscale_autoscaler_scaling_actions", "Scaling actions taken.", labels=["direction"]
        )
        for direction in ("up", "down"):
            scaled.add_metric([direction], self.controller.scaling_actions(direction))
        tick = GaugeMetricFamily(
            "hostscale_autoscaler_tick_seconds_avg",
            "Mean time of one evaluation over the last ticks.",
            labels=["clock"],
        )
        for clock, samples in (
            ("wall", self.controller.tick_seconds),
            ("cpu", self.controller.tick_cpu_seconds),
        ):
            tick.add_metric([clock], sum(samples) / len(samples) if samples else 0.0)
        yield from (replicas, values, scaled, tick)


def create_status_app(controller: Controller, lifespan: Any = None) -> Starlette:
    registry = CollectorRegistry()
    registry.register(ControllerCollector(controller))

    async def status(request: Request) -> Response:
        events = controller.recent_events()
        last = events[-1] if events else None
        changes = [_event(e) for e in events if e.direction != "none" or e.error or e.vm_steps][-20:]
        return JSONResponse(
            {
                "policy": dataclasses.asdict(controller.policy),
                "current": last.current if last else None,
                "desired": last.desired if last else None,
                "ready": last.ready if last else None,
                "metrics": last.metrics if last else {},
                "reasons": list(last.reasons) if last else [],
                "servers": last.servers if last else {},
                "vms": last.vms if last else {},
                "vms_running": last.vms_running if last else None,
                "last_changes": changes,
            }
        )

    async def events(request: Request) -> Response:
        raw = request.query_params.get("since", "0")
        if not raw.isdigit() or len(raw) > 18:
            return JSONResponse(
                {"error": f"since must be a non-negative integer, got {raw[:40]!r}"}, status_code=422
            )
        return JSONResponse({"events": [_event(e) for e in controller.events_since(int(raw))]})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/status", status), Route("/events", events), Route("/metrics", metrics)],
        lifespan=lifespan,
    )
