"""Warm-pool power-on time: from the autoscaler's decision to power a warm VM on, to the first request served
by a replica on that VM through HAProxy. Deploys the lab-emulated stack (or another lab stack) with the warm
pool parked the chosen way, runs the cycle several times, tears the stack down.

    uv run python -m benchmarks.vm_power_on --warm-pool suspended --runs 3
    uv run python -m benchmarks.vm_power_on --warm-pool stopped --runs 3
    uv run python -m benchmarks.vm_power_on --stack lab --warm-pool suspended --clients 80   # on a KVM host

Each run: 12 clients (--clients) of /api/work?ms=100 against the running workers (lab-emulated: one, holding 2
replicas; the lab stack's two hold 8, so it needs --clients 80 at 8 sessions per replica); the autoscaler asks
for more, powers on the warm VM, Swarm places the pending tasks there. Recorded per run:
  decision -> vm running:  `virsh start` done (restore or boot),
  decision -> node ready:  the VM's Swarm node heartbeats again,
  decision -> serving:     first response from a replica on that VM.
Then the load stops; the next run starts once the VM is parked again and every replica serves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from typing import Any

import docker
import httpx

from autoscaler.libvirt import Virsh
from autoscaler.nodes import node_hostname
from harness import dev_stack
from harness.program import stack_config
from testbed.load import Load
from testbed.stack import with_served_by_header
from testbed.waiting import wait_for

STATUS = "http://127.0.0.1:9100"
URL = "http://127.0.0.1:8080"


def virsh_state(vm: str) -> str:
    return Virsh("qemu:///system").state(vm)


def node_of(client: docker.DockerClient, service: str, served_by: str) -> str | None:
    for task in client.services.get(service).tasks():
        container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
        if container.startswith(served_by):
            return node_hostname(client.nodes.get(task["NodeID"]).attrs)
    return None


def node_ready(client: docker.DockerClient, vm: str) -> bool:
    return any(
        node_hostname(n.attrs) == vm and n.attrs["Status"]["State"] == "ready" for n in client.nodes.list()
    )


def power_on_decision(since_seq: int, vm: str) -> float | None:
    events = httpx.get(f"{STATUS}/events", params={"since": since_seq}, timeout=5).json()["events"]
    for event in events:
        if any(step.startswith(f"power_on {vm}") for step in event["vm_steps"]):
            return float(event["time"])
    return None


def _all_ready() -> bool:
    status = httpx.get(f"{STATUS}/status", timeout=5).json()
    return bool(status["ready"] == status["current"] == status["desired"])


def one_run(client: docker.DockerClient, service: str, vm: str, clients: int) -> dict[str, float]:
    wait_for(f"{vm} parked", lambda: virsh_state(vm) == "shut off", 600, 2)
    # A drain moves the parked VM's last replicas to the other worker: start only once every one serves again.
    wait_for("every replica serving", lambda: _all_ready(), 600, 2)
    last_seq = httpx.get(f"{STATUS}/events", timeout=5).json()["events"][-1]["seq"]
    marks: dict[str, float] = {}
    with Load(URL, workers=clients, max_seconds=600, work_ms=100) as load:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and "serving" not in marks:
            now = time.time()
            if "decision" not in marks and (decided := power_on_decision(last_seq, vm)) is not None:
                marks["decision"] = decided
            if "decision" in marks:
                if "running" not in marks and virsh_state(vm) == "running":
                    marks["running"] = now
                if "ready" not in marks and node_ready(client, vm):
                    marks["ready"] = now
                if any(node_of(client, service, r) == vm for r in list(load.served)):
                    marks["serving"] = now
            time.sleep(0.25)
        failures = len(load.failures)
        if failures:  # what failed, most frequent first, so a run with failures explains itself
            kinds = Counter(message[:80] for message in load.failures)
            print(f"failures: {kinds.most_common(3)}", flush=True)
    if "serving" not in marks:
        raise RuntimeError(f"no replica on {vm} served within 600 s: {marks}")
    return {
        "decision_to_running_s": marks["running"] - marks["decision"],
        "decision_to_node_ready_s": marks["ready"] - marks["decision"],
        "decision_to_serving_s": marks["serving"] - marks["decision"],
        "failed_requests": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack", default="lab-emulated")
    parser.add_argument("--warm-pool", choices=["suspended", "stopped"], default="suspended")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--clients", type=int, default=12, help="enough sessions to need one more worker than are running"
    )
    args = parser.parse_args()
    config: dict[str, Any] = with_served_by_header(stack_config(args.stack))  # which VM served
    config["hostscale:vms"] = {**config["hostscale:vms"], "warm_pool": args.warm_pool}
    prefix = config["hostscale:host"]["name_prefix"]
    vms = config["hostscale:vms"]
    vm = f"{prefix}-worker-{vms['running']}"  # the first warm VM
    client = docker.from_env()
    was_swarm = client.info()["Swarm"]["LocalNodeState"] == "active"
    started = time.monotonic()
    outputs = dev_stack.up(args.stack, config)
    print(f"stack up in {time.monotonic() - started:.0f} s", flush=True)
    try:
        wait_for("the app serving", lambda: httpx.get(f"{URL}/readyz", timeout=5).status_code == 200, 600, 2)
        runs = []
        for index in range(args.runs):
            result = one_run(client, outputs["app_service"], vm, args.clients)
            print(f"run {index + 1}: {json.dumps({k: round(v, 1) for k, v in result.items()})}", flush=True)
            runs.append(result)
        summary = {
            key: round(statistics.median(r[key] for r in runs), 1)
            for key in ("decision_to_running_s", "decision_to_node_ready_s", "decision_to_serving_s")
        }
        print(
            json.dumps(
                {"stack": args.stack, "warm_pool": args.warm_pool, "runs": args.runs, "median": summary}
            )
        )
    finally:
        dev_stack.down(args.stack)
        if not was_swarm:  # the lab's Swarm advertises on a network that is gone now
            client.swarm.leave(force=True)


if __name__ == "__main__":
    main()
