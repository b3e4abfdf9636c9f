"""Run the autoscaler: `python -m autoscaler --settings /etc/hostscale/autoscaler.json` (autoscaler/settings.py).

Settings that do not validate stop the process before it touches anything, with the key named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import uvicorn
from starlette.applications import Starlette

from autoscaler.controller import Controller
from autoscaler.haproxy_metrics import HAProxyMetrics
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
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def build_app(controller: Controller) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(run_loop(controller, controller.policy.interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return create_status_app(controller, lifespan=lifespan)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request at INFO: one line per metrics read, every tick, forever, burying the decisions.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoscaler", description="hostscale's scaling controller")
    parser.add_argument("--settings", type=Path, required=True, help="the settings file (JSON)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = read_settings(args.settings)
    except SettingsError as exc:
        print(f"autoscaler: invalid settings: {exc}", file=sys.stderr)
        return 2
    haproxy = settings.haproxy
    source = HAProxyMetrics(haproxy.metrics_url, haproxy.backend, clock=time.monotonic)
    client = docker.from_env()
    fleet = None
    if settings.fleet is not None:
        fleet = (LibvirtFleet(client, settings.fleet.uris, settings.fleet.park), settings.fleet.policy)
    controller = Controller(settings.policy, source, SwarmService(client, settings.service), fleet=fleet)
    log.info(
        "scaling service %s from %s (dry run: %s)",
        settings.service,
        haproxy.metrics_url,
        settings.policy.dry_run,
    )
    uvicorn.run(
        build_app(controller), host=settings.listen_host, port=settings.listen_port, log_level="warning"
    )
    return 0
