"""The autoscaler's status API (bound to loopback by default): /status, /events?since=, /metrics, /healthz, and
the live status page at / (autoscaler/status_page.py)."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autoscaler import schedule
from autoscaler.controller import Controller, Event
from autoscaler.host_guard import HostGuard
from autoscaler.status_page import page_routes

# A loop that has not finished a tick for this many intervals (and at least this many seconds) is stuck: a
# tick that hangs on Swarm or virsh, or a loop that died. /healthz fails, so Docker marks the container
# unhealthy; Prometheus sees the same age through hostscale_autoscaler_last_tick_timestamp_seconds.
STUCK_AFTER_INTERVALS = 5
STUCK_AFTER_MIN_S = 15.0
# How the warm pool reports a failed power-on in an event's error (autoscaler/warm_pool.py: "<verb> <vm> failed").
_POWER_ON_FAILED = re.compile(r"(?:^|; )power_on \S+ failed:")
# The VM states of /status ("active (3 tasks)" -> active), as hostscale_autoscaler_vms' state label.
VM_STATES = ("off", "booting", "active", "drained", "handing_over")
POWER_ONS_SHOWN = 5
# Seconds from the power-on decision to each phase: a restore on KVM takes seconds, a boot under emulation minutes.
PHASE_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900)


def _event(event: Event) -> dict[str, Any]:
    return dataclasses.asdict(event)


def stuck_after_s(controller: Controller) -> float:
    return max(STUCK_AFTER_INTERVALS * controller.policy.interval_s, STUCK_AFTER_MIN_S)


class ControllerCollector(Collector):
    """Prometheus view of the controller, computed at scrape time from its last event."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        # Power-on failures counted as events arrive (each event is seen once, by its seq), so the counter
        # never falls when the event buffer wraps.
        self._lock = threading.Lock()
        self._seen_seq = 0
        self._power_on_failures = 0

    def _count_power_on_failures(self, events: list[Event]) -> int:
        with self._lock:
            for event in events:
                if event.seq > self._seen_seq:
                    self._seen_seq = event.seq
                    self._power_on_failures += len(_POWER_ON_FAILED.findall(event.error or ""))
            return self._power_on_failures

    def collect(self) -> Iterator[Metric]:
        events = self.controller.recent_events()
        replicas = GaugeMetricFamily(
            "hostscale_autoscaler_replicas", "Replica counts seen and set.", labels=["kind"]
        )
        values = GaugeMetricFamily(
            "hostscale_autoscaler_metric_value", "Metric values the rules see.", labels=["metric"]
        )
        policy = self.controller.policy
        replicas.add_metric(["min"], policy.min_replicas)
        replicas.add_metric(["max"], policy.max_replicas)
        last_tick = GaugeMetricFamily(
            "hostscale_autoscaler_last_tick_timestamp_seconds", "Unix time of the last finished evaluation."
        )
        vms = GaugeMetricFamily(
            "hostscale_autoscaler_vms", "Warm-pool VMs by state (stacks with VMs only).", labels=["state"]
        )
        if events:
            last = events[-1]
            for kind, count in (("current", last.current), ("desired", last.desired), ("ready", last.ready)):
                replicas.add_metric([kind], count)
            for metric, value in last.metrics.items():
                values.add_metric([metric], value)
            last_tick.add_metric([], last.time)
            if last.vms_running is not None:
                states = [label.split(" ", 1)[0] for label in last.vms.values()]
                for state in VM_STATES:
                    vms.add_metric([state], states.count(state))
        power_on_failures = CounterMetricFamily(
            "hostscale_autoscaler_vm_power_on_failures",
            "Warm-pool VM power-ons that failed (virsh start or restore).",
        )
        power_on_failures.add_metric([], self._count_power_on_failures(events))
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
        sample = GaugeMetricFamily(
            "hostscale_autoscaler_sample_cpu_seconds_avg",
            "Mean CPU time of one fast read of HAProxy into the windows (policy.windows), over the last reads.",
        )
        reads = self.controller.sample_cpu_seconds
        sample.add_metric([], sum(reads) / len(reads) if reads else 0.0)
        yield from (replicas, values, scaled, tick, sample, last_tick, vms, power_on_failures)
        yield self._power_on_phases()
        yield from self._schedules()

    def _power_on_phases(self) -> Metric:
        """Every power-on kept (the fleet keeps 10,000: power-ons are minutes apart), as a histogram per phase
        and mode."""
        family = HistogramMetricFamily(
            "hostscale_autoscaler_power_on_phase_seconds",
            "Seconds from a VM power-on decision to each phase (restore or boot, node ready, task running, "
            "UP in HAProxy, first request served).",
            labels=["phase", "mode"],
        )
        seen: dict[tuple[str, str], list[float]] = {}
        for record in self.controller.power_on_records():
            for phase, seconds in record.phases.items():
                seen.setdefault((phase, record.mode), []).append(seconds)
        for (phase, mode), values in sorted(seen.items()):
            buckets = [(f"{b:g}", float(sum(1 for v in values if v <= b))) for b in PHASE_BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            family.add_metric([phase, mode], buckets, sum(values))
        return family

    def _schedules(self) -> Iterator[Metric]:
        held = self.controller.schedules.last()
        effective = GaugeMetricFamily(
            "hostscale_autoscaler_effective_min_replicas",
            "The minimum replicas in force: the policy's, or more while a schedule holds it.",
        )
        active = GaugeMetricFamily(
            "hostscale_autoscaler_schedule_active",
            "1 while the schedule's window is open.",
            labels=["schedule"],
        )
        held_min = GaugeMetricFamily(
            "hostscale_autoscaler_schedule_min_replicas",
            "The minimum replicas each schedule holds now (0 while its window is closed).",
            labels=["schedule"],
        )
        next_change = GaugeMetricFamily(
            "hostscale_autoscaler_schedule_next_change_timestamp_seconds",
            "Unix time at which the schedule next opens or closes (absent: no change within a day).",
            labels=["schedule", "change"],
        )
        if held is not None:
            effective.add_metric([], held.minimum.replicas)
            for state in held.states:
                name = state.schedule.name
                active.add_metric([name], 1 if state.active else 0)
                held_min.add_metric([name], state.schedule.min_replicas if state.active else 0)
                if state.next_change is not None:
                    next_change.add_metric([name, state.change], state.next_change.timestamp())
        yield from (effective, active, held_min, next_change)


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
                # The last evaluation's sequence number: a reader of /events?since= sees a restart by it falling.
                "seq": last.seq if last else 0,
                "current": last.current if last else None,
                "desired": last.desired if last else None,
                "ready": last.ready if last else None,
                "metrics": last.metrics if last else {},
                "reasons": list(last.reasons) if last else [],
                "servers": last.servers if last else {},
                "vms": last.vms if last else {},
                "vms_running": last.vms_running if last else None,
                "stuck": list(last.stuck) if last else [],
                # Predictive power-on (autoscaler/forecast.py): the trend and the power-ons it is measured by.
                "forecast": last.forecast if last else None,
                "power_on_seconds": list(controller.power_on_seconds),
                # The last power-ons' phases (autoscaler/warm_pool.py POWER_ON_PHASES), seconds after the decision.
                "power_ons": [
                    dataclasses.asdict(r) for r in controller.power_on_records()[-POWER_ONS_SHOWN:]
                ],
                "schedules": schedule.status(controller.schedules.last()),
                "last_changes": changes,
            }
        )

    async def events(request: Request) -> Response:
        raw = request.query_params.get("since", "0")
        if not raw.isdigit() or len(raw) > 18:
            return JSONResponse(
                {"error": f"since must be a non-negative integer, got {raw[:40]!r}"}, status_code=422
            )
        raw_last = request.query_params.get("last")
        if raw_last is not None and (not raw_last.isdigit() or len(raw_last) > 18 or int(raw_last) == 0):
            return JSONResponse(
                {"error": f"last must be a positive integer, got {raw_last[:40]!r}"}, status_code=422
            )
        selected = controller.events_since(int(raw))
        # `last` keeps only the newest: the status page's first read of the last minutes, not all 5,000 kept.
        if raw_last is not None:
            selected = selected[-int(raw_last) :]
        return JSONResponse({"events": [_event(e) for e in selected]})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        # Docker's health check: the loop finishes ticks. Before the first one the container's start period
        # covers the wait; a loop that stopped ticking answers 503 with how long ago the last tick was.
        events = controller.recent_events()
        if not events:
            return JSONResponse({"status": "starting"}, status_code=503)
        age = controller.wall_clock() - events[-1].time
        limit = stuck_after_s(controller)
        if age > limit:
            body = {"status": "stuck", "last_tick_age_seconds": round(age, 1), "limit_seconds": limit}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "last_tick_age_seconds": round(age, 1)})

    return Starlette(
        middleware=[Middleware(HostGuard)],
        routes=[
            Route("/status", status),
            Route("/events", events),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            *page_routes(),
        ],
        lifespan=lifespan,
    )
