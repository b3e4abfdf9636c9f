"""The lab stack on real libvirt VMs (stacks/Pulumi.lab-emulated.yaml: software emulation, the image from
scripts/build-vm-image), deployed through the apply harness, used from the host through HAProxy on
127.0.0.1:8080, scaled onto its warm-pool VM under load and back, then torn down leaving nothing behind.

Slow by nature (each first boot is a minute or two under emulation), so one deployment serves every test.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from autoscaler.libvirt import Virsh
from autoscaler.nodes import node_hostname
from harness import dev_stack
from harness.program import ROOT
from testbed.load import Load
from testbed.waiting import wait_for

STACK = "lab-emulated"
PREFIX = "hsemu"
URL = "http://127.0.0.1:8080"
STATUS = "http://127.0.0.1:9100"
URI = "qemu:///system"
RUNNING_VM, WARM_VM = f"{PREFIX}-worker-0", f"{PREFIX}-worker-1"


def virsh(*args: str) -> str:
    return Virsh(URI)(*args, timeout=60, check=False)


def libvirt_leftovers() -> dict[str, list[str]]:
    return {
        "domains": [d for d in virsh("list", "--all", "--name").split() if d.startswith(PREFIX)],
        "networks": [n for n in virsh("net-list", "--all", "--name").split() if n.startswith(PREFIX)],
        "pools": [p for p in virsh("pool-list", "--all", "--name").split() if p.startswith(PREFIX)],
    }


def node_of_replica(client: docker.DockerClient, served_by: str) -> str:
    """The Swarm node (VM hostname) running the task whose container answered (X-Served-By)."""
    service = client.services.get(f"{PREFIX}-app")
    for task in service.tasks():
        container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
        if container and container.startswith(served_by):
            return str(node_hostname(client.nodes.get(task["NodeID"]).attrs))
    raise AssertionError(f"no task of {PREFIX}-app has container {served_by}")


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[dict[str, Any]]:
    subprocess.run(["./scripts/build-vm-image"], cwd=ROOT, check=True)
    assert not any(libvirt_leftovers().values()), f"a lab stack is already up: {libvirt_leftovers()}"
    # The local stack's Swarm advertises on loopback; the lab's manager advertises on the VM network.
    if docker_client.info()["Swarm"]["LocalNodeState"] == "active":
        docker_client.swarm.leave(force=True)
    try:
        yield dev_stack.up(STACK)
    finally:  # also after a failed up (which removes what it made): the tests after these need no lab Swarm
        dev_stack.down(STACK)
        if docker_client.info()["Swarm"]["LocalNodeState"] == "active":
            docker_client.swarm.leave(force=True)


def test_the_running_worker_joined_and_the_warm_vm_is_parked(
    lab: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    assert lab["vm_names"] == [RUNNING_VM, WARM_VM]
    nodes = {node_hostname(n.attrs): n.attrs for n in docker_client.nodes.list()}
    worker = nodes[RUNNING_VM]
    assert (worker["Spec"]["Role"], worker["Status"]["State"], worker["Spec"]["Availability"]) == (
        "worker", "ready", "active",
    )  # fmt: skip
    assert worker["Description"]["Engine"]["Labels"]["dev.hostscale.vm"] == RUNNING_VM
    # The warm VM made its first boot, joined, then was drained and suspended (libvirt managed save).
    assert nodes[WARM_VM]["Spec"]["Availability"] == "drain"
    assert virsh("domstate", WARM_VM) == "shut off"
    assert "Managed save:   yes" in virsh("dominfo", WARM_VM)


def test_a_request_through_haproxy_is_served_on_the_vm_and_reads_postgres_on_the_host(
    lab: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    wait_for("the app on the VM", _ready, 600, 2)
    name = f"lab-{uuid.uuid4().hex[:8]}"
    created = httpx.post(f"{URL}/api/items", json={"name": name, "payload": {"from": "lab"}}, timeout=10)
    assert created.status_code == 201, created.text
    read = httpx.get(f"{URL}/api/items/{created.json()['id']}", timeout=10)
    assert read.status_code == 200
    assert read.json()["name"] == name
    assert node_of_replica(docker_client, read.headers["x-served-by"]) == RUNNING_VM
    # The app image came from the manager's registry, over the VM network.
    image = docker_client.services.get(f"{PREFIX}-app").attrs["Spec"]["TaskTemplate"]["ContainerSpec"][
        "Image"
    ]
    assert image.startswith("10.78.0.1:5000/hostscale/app:")


def test_load_powers_the_warm_vm_on_and_off_again_with_no_failed_request(
    lab: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    wait_for("the app on the VM", _ready, 600, 2)
    with Load(URL, workers=12, max_seconds=420, work_ms=100) as load:
        # Sessions above the target: the autoscaler wants 3-4 replicas, one worker holds 2, so it powers on
        # the warm VM, and Swarm places the pending tasks there.
        wait_for(
            "a replica on the warm VM serving",
            lambda: any(node_of_replica(docker_client, r) == WARM_VM for r in list(load.served)),
            400,
            2,
        )
    assert load.failures == [], load.failures[:5]
    events = httpx.get(f"{STATUS}/events", timeout=5).json()["events"]
    assert any(step.startswith(f"power_on {WARM_VM}") for e in events for step in e["vm_steps"])
    # Heavy load gone, light load left (below one worker's capacity): back to the minimum, the warm VM's node
    # drained (its replicas move to the other worker), then parked again, with no failed request meanwhile.
    with Load(URL, workers=2, max_seconds=400, work_ms=20) as light:
        wait_for("the warm VM parked again", lambda: virsh("domstate", WARM_VM) == "shut off", 400, 2)
    assert light.failures == [], light.failures[:5]
    assert sum(light.served.values()) > 100
    assert "Managed save:   yes" in virsh("dominfo", WARM_VM)
    assert (
        docker_client.nodes.get(_node_id(docker_client, RUNNING_VM)).attrs["Spec"]["Availability"] == "active"
    )
    events = httpx.get(f"{STATUS}/events", timeout=5).json()["events"]
    steps = [step for e in events for step in e["vm_steps"]]
    assert any(s.startswith(f"drain {WARM_VM}") for s in steps), steps
    assert any(s.startswith(f"power_off {WARM_VM}") for s in steps), steps
    with httpx.Client(base_url=URL, timeout=10) as client:  # still served, by the worker that stayed
        assert all(client.get("/readyz").status_code == 200 for _ in range(20))


def _ready() -> bool:
    try:
        return httpx.get(f"{URL}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _node_id(client: docker.DockerClient, hostname: str) -> str:
    return str(next(n.id for n in client.nodes.list() if node_hostname(n.attrs) == hostname))


def test_down_leaves_no_domain_volume_network_or_pool(lab: dict[str, Any]) -> None:
    dev_stack.down(STACK)
    assert libvirt_leftovers() == {"domains": [], "networks": [], "pools": []}
    assert not dev_stack.state_file(STACK).exists()
