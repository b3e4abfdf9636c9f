"""Run the autoscaler: `python -m autoscaler --settings /etc/hostscale/autoscaler.json` (autoscaler/settings.py).
The operator's commands (`check-policy`, `status`, `explain`) are autoscaler/cli.py.

Settings that do not validate stop the process before it touches anything, with the key named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import uvicorn
from starlette.applications import Starlette

from autoscaler import logs
from autoscaler.cli import COMMANDS, run
from autoscaler.controller import Controller
from autoscaler.forecast import PredictivePolicy
from autoscaler.haproxy_metrics import HAProxyMetrics, HAProxyStats, ServerRow, parse_server_table
from autoscaler.settings import SettingsError, read_settings
from autoscaler.status import create_status_app
from autoscaler.swarm import SwarmService
from autoscaler.warm_pool import LibvirtFleet

log = logging.getLogger("hostscale.autoscaler")


async def run_loop(controller: Controller, interval_s: float) -> None:
    while True:
        started = time.monotonic()
        try:
            await asyncio.to_thread(controller.tick)
        except Exception:  # Swarm unreachable for a tick: log and try again next tick
            log.exception("tick failed")
        # A burst seen by the sampler (policy.windows) ends the wait early: the panic decision is not held
        # back until the next interval.
        await asyncio.to_thread(controller.wait_for_tick, max(0.0, interval_s - (time.monotonic() - started)))


def build_app(controller: Controller) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        sampler = None
        if controller.windows is not None:
            sampler = threading.Thread(
                target=controller.sample_forever, args=(stop,), name="sampler", daemon=True
            )
            sampler.start()
        task = asyncio.create_task(run_loop(controller, controller.policy.interval_s))
        try:
            yield
        finally:
            stop.set()
            controller.wake.set()  # release a loop thread waiting for its next tick
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return create_status_app(controller, lifespan=lifespan)


def up_servers(metrics_url: str, backend: str) -> int:
    """How many of the backend's servers HAProxy counts UP now: a read of its own, apart from the loop's
    reader, whose counters make rates between the loop's reads."""
    stats = HAProxyStats(metrics_url, backend, clock=time.monotonic)
    try:
        return stats.read().ready
    finally:
        stats.close()


def server_table(metrics_url: str, backend: str) -> dict[str, ServerRow]:
    """Each of the backend's servers as HAProxy's stats CSV has it (state, address, sessions served), for the
    power-on phase records."""
    stats = HAProxyStats(metrics_url, backend, clock=time.monotonic)
    try:
        return parse_server_table(stats.fetch(), backend)
    finally:
        stats.close()


def configure_logging() -> None:
    logs.configure_logging(logging.INFO)  # one JSON object per line
    # httpx logs every request at INFO: one line per metrics read, every tick, forever, burying the decisions.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else argv
    if args_given and args_given[0] in COMMANDS:
        return run(args_given)
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="hostscale's scaling controller",
        epilog="operator commands: check-policy FILE, status, explain (e.g. python -m autoscaler status --help)",
    )
    parser.add_argument("--settings", type=Path, required=True, help="the settings file (JSON)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = read_settings(args.settings)
    except SettingsError as exc:
        print(f"autoscaler: invalid settings: {exc}", file=sys.stderr)
        return 2
    haproxy = settings.haproxy
    # Several reads a second need the cheap reader (the backend's stats CSV, a few KB); one read per tick keeps
    # the Prometheus exposition.
    reader = HAProxyStats if settings.policy.windows else HAProxyMetrics
    source = reader(haproxy.metrics_url, haproxy.backend, clock=time.monotonic)
    client = docker.from_env()
    replicas = SwarmService(client, settings.service)
    fleet = None
    if settings.fleet is not None:
        deadlines = settings.policy.deadlines
        libvirt = LibvirtFleet(
            client,
            settings.fleet.uris,
            settings.fleet.park,
            read_timeout_s=deadlines.virsh_read_s,
            action_timeout_s=deadlines.virsh_action_s,
            forced_command=True,  # the autoscaler's SSH key runs only the virsh rules on a remote hypervisor
            replicas=replicas,
            up_servers=functools.partial(up_servers, haproxy.metrics_url, haproxy.backend),
            haproxy_servers=functools.partial(server_table, haproxy.metrics_url, haproxy.backend),
        )
        fleet = (libvirt, settings.fleet.policy)
    predictive = settings.fleet.predictive if settings.fleet is not None else PredictivePolicy()
    controller = Controller(settings.policy, source, replicas, fleet=fleet, predictive=predictive)
    log.info(
        "scaling service %s from %s (dry run: %s)",
        settings.service,
        haproxy.metrics_url,
        settings.policy.dry_run,
    )
    uvicorn.run(
        build_app(controller),
        host=settings.listen_host,
        port=settings.listen_port,
        log_level="warning",
        log_config=None,  # uvicorn's own lines go through the root logger's JSON formatter (autoscaler/logs.py)
    )
    return 0
