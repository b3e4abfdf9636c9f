"""Run the autoscaler: `python -m autoscaler --policy policy.json --service NAME --haproxy-metrics URL`.

A policy that does not validate stops the process before it touches anything, with the key named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import uvicorn
from starlette.applications import Starlette

from autoscaler.controller import Controller
from autoscaler.fleet import FleetPolicy
from autoscaler.haproxy_metrics import HAProxyMetrics
from autoscaler.policy import Policy, PolicyError, load_policy
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


def read_policy(path: Path) -> Policy:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"policy file {path}: {exc}") from exc
    return load_policy(raw)


def vm_uris(vms: str, default_uri: str) -> dict[str, str]:
    """`a,b=qemu+ssh://u@h/system` -> {"a": default_uri, "b": "qemu+ssh://u@h/system"}, in order."""
    uris: dict[str, str] = {}
    for entry in vms.split(","):
        name, _, uri = entry.partition("=")
        if not name or name in uris:
            raise SystemExit(f"autoscaler: --vms: empty or repeated VM name in {vms!r}")
        uris[name] = uri or default_uri
    return uris


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoscaler", description="hostscale's scaling controller")
    parser.add_argument("--policy", type=Path, required=True, help="the policy file (JSON)")
    parser.add_argument("--service", required=True, help="the Swarm service whose replicas it scales")
    parser.add_argument("--haproxy-metrics", required=True, help="HAProxy's Prometheus endpoint URL")
    parser.add_argument("--backend", default="app", help="the HAProxy backend serving the service")
    parser.add_argument("--listen", default="127.0.0.1:9100", help="status API address (default: loopback)")
    vms = parser.add_argument_group("warm-pool VMs (stacks with libvirt workers)")
    vms.add_argument("--libvirt-uri", default="qemu:///system", help="the hypervisor of VMs named alone")
    vms.add_argument(
        "--vms",
        help="worker VMs, comma-separated, in the order they are powered on: NAME, or NAME=URI for a VM on "
        "another hypervisor (qemu+ssh://USER@HOST/system)",
    )
    vms.add_argument("--replicas-per-vm", type=int, default=4, help="app tasks one worker holds")
    vms.add_argument("--vm-scale-in-after", type=float, default=120, help="seconds of surplus before parking")
    vms.add_argument("--park", choices=["suspended", "stopped"], default="suspended")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        policy = read_policy(args.policy)
    except PolicyError as exc:
        print(f"autoscaler: invalid policy: {exc}", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    source = HAProxyMetrics(args.haproxy_metrics, args.backend, clock=time.monotonic)
    client = docker.from_env()
    fleet = None
    if args.vms:
        uris = vm_uris(args.vms, args.libvirt_uri)
        fleet_policy = FleetPolicy(tuple(uris), args.replicas_per_vm, args.vm_scale_in_after)
        fleet = (LibvirtFleet(client, uris, args.park), fleet_policy)
    controller = Controller(policy, source, SwarmService(client, args.service), fleet=fleet)
    log.info("scaling service %s from %s (dry run: %s)", args.service, args.haproxy_metrics, policy.dry_run)
    uvicorn.run(build_app(controller), host=host, port=int(port), log_level="warning")
    return 0
