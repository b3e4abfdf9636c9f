"""The lab stack on real libvirt VMs (stacks/Pulumi.lab-emulated.yaml: software emulation, the image from
scripts/build-vm-image), deployed through the apply harness, used from the host through HAProxy on
127.0.0.1:8080, scaled onto its warm-pool VM under load and back, then torn down leaving nothing behind.

Slow by nature (each first boot is a minute or two under emulation), so one deployment serves every test.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from autoscaler.libvirt import Virsh
from autoscaler.nodes import node_hostname
from autoscaler.warm_pool import POWER_ON_PHASES
from harness import dev_stack
from harness.program import ROOT, stack_config
from testbed.load import Load
from testbed.stack import with_served_by_header
from testbed.waiting import wait_for

STACK = "lab-emulated"
PREFIX = "hsemu"
URL = "http://127.0.0.1:8080"
STATUS = "http://127.0.0.1:9100"
URI = "qemu:///system"
RUNNING_VM, WARM_VM = f"{PREFIX}-worker-0", f"{PREFIX}-worker-1"
# The first test carries the module's deployment (a VM image build, then two first boots under emulation): on a
# busy 2-core machine that alone can pass the suite's 10-minute guard against hangs.
pytestmark = pytest.mark.timeout(1800)


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
        yield dev_stack.up(STACK, with_served_by_header(stack_config(STACK)))
    finally:  # also after a failed up (which removes what it made): the tests after these need no lab Swarm
        dev_stack.down(STACK, delete_data=True)
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
    with Load(URL, workers=12, max_seconds=620, work_ms=100) as load:
        # Sessions above the target: the autoscaler wants 3-4 replicas, one worker holds 2, so it powers on
        # the warm VM, and Swarm places the pending tasks there.
        # Bounded, and generous: the restored VM's task starts on a host whose two cores are busy emulating
        # the loaded worker and serving the load (task running 114 s and 208 s after the decision in two runs
        # of 2026-12-02; one CI run did not see it serve within 400 s).
        try:
            wait_for(
                "a replica on the warm VM serving",
                lambda: any(node_of_replica(docker_client, r) == WARM_VM for r in list(load.served)),
                600,
                2,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_what_the_tier_shows(docker_client)}") from None
    assert load.failures == [], load.failures[:5]
    events = httpx.get(f"{STATUS}/events", timeout=5).json()["events"]
    assert any(step.startswith(f"power_on {WARM_VM}") for e in events for step in e["vm_steps"])
    # The power-on's phases, each reached, in order, from a restore (the VM was parked with a managed save).
    wait_for("the power-on's phase record", lambda: bool(_power_ons(WARM_VM)), 300, 2)
    record = _power_ons(WARM_VM)[0]
    print(f"power-on phases: {record}")  # the figures for BENCHMARKS.md, with -s
    assert (record["mode"], record["error"]) == ("restore", None), record
    assert list(record["phases"]) == list(POWER_ON_PHASES), record
    seconds = list(record["phases"].values())
    assert seconds == sorted(seconds), record
    assert all(s > 0 for s in seconds), record
    # The restored guest's clock stood where the park left it, minutes ago; the power-on set it from the host's
    # through the guest agent, so it reads the host's time now.
    assert record["clock_behind_s"] is not None, record
    assert record["clock_behind_s"] > 5, record
    guest_offset = time.time() - float(virsh("domtime", WARM_VM).split(":", 1)[1])
    assert abs(guest_offset) < 3, f"the restored guest's clock is {guest_offset:.1f} s off the host's"
    metrics = httpx.get(f"{STATUS}/metrics", timeout=5).text
    for phase in POWER_ON_PHASES:
        assert (
            f'hostscale_autoscaler_power_on_phase_seconds_count{{mode="restore",phase="{phase}"}}' in metrics
        )
    # Heavy load gone, light load left (below one worker's capacity): back to the minimum, the warm VM handed
    # over (its replicas' replacements UP on the other worker before they stop), then parked again, with the
    # light load on throughout and no failed request meanwhile.
    with Load(URL, workers=2, max_seconds=400, work_ms=20) as light:
        wait_for("the warm VM parked again", lambda: virsh("domstate", WARM_VM) == "shut off", 400, 2)
    assert light.failures == [], light.failures[:5]
    assert sum(light.served.values()) > 100
    assert "Managed save:   yes" in virsh("dominfo", WARM_VM)
    assert (
        docker_client.nodes.get(_node_id(docker_client, RUNNING_VM)).attrs["Spec"]["Availability"] == "active"
    )

    def vm_steps() -> list[str]:
        events = httpx.get(f"{STATUS}/events", timeout=5).json()["events"]
        return [step for e in events for step in e["vm_steps"]]

    # The managed save returns before the hand-over's last note: the tick after it reports "parked".
    wait_for(
        "the park in the events",
        lambda: any(s.startswith(f"hand_over {WARM_VM}: parked") for s in vm_steps()),
        60,
        2,
    )
    steps = vm_steps()
    hand_over = [s.split(" after ")[0] for s in steps if s.startswith(f"hand_over {WARM_VM}: ")]
    assert hand_over[0].startswith(f"hand_over {WARM_VM}: 2 workers for 1 needed"), steps
    done = [s.removeprefix(f"hand_over {WARM_VM}: ") for s in hand_over[1:]]
    moved = int(done[0].removeprefix("paused with ").split()[0])
    raised = [f"{PREFIX}-app 2 -> {2 + moved} replicas", f"{2 + moved} servers UP"] if moved else []
    back = ["stop requested", f"{PREFIX}-app back to 2 replicas"] if moved else []
    assert done[1:] == [*raised, "drained", *back, "no task left", "parked (suspended)"], steps
    # Still served, database included, by the worker that stayed. /readyz also answers 503 from a replica that
    # drains, and once (CI, 2026-12-02) one of 20 right after the park was not 200 while the light load above
    # had no failure: the worker's replicas must all be ready again within a bounded wait, and every read served.
    with httpx.Client(base_url=URL, timeout=10) as client:
        answers: list[int] = []

        def all_ready() -> bool:
            answers[:] = [client.get("/readyz").status_code for _ in range(20)]
            return answers == [200] * 20

        try:
            wait_for("every replica on the worker that stayed ready", all_ready, 60, 2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: the last 20 answers of /readyz: {answers}") from None
        reads = [client.get("/api/items", params={"limit": 1}).status_code for _ in range(20)]
        assert reads == [200] * 20, reads


def _what_the_tier_shows(client: docker.DockerClient) -> str:
    """For a failure message: what the autoscaler saw and did, and where Swarm has the app's tasks."""
    try:
        status = httpx.get(f"{STATUS}/status", timeout=5).json()
        events = httpx.get(f"{STATUS}/events", params={"last": 200}, timeout=5).json()["events"]
    except httpx.HTTPError as exc:
        status, events = {"unreadable": str(exc)}, []
    seen = {
        key: status.get(key)
        for key in ("current", "desired", "ready", "vms", "stuck", "reasons", "power_ons")
    }
    steps = [step for e in events for step in e["vm_steps"]][-20:]
    tasks = [
        (
            node_hostname(client.nodes.get(t["NodeID"]).attrs) if t.get("NodeID") else "-",
            t["Status"]["State"],
            t["DesiredState"],
            t["Status"].get("Err", ""),
        )
        for t in client.services.get(f"{PREFIX}-app").tasks()
    ]
    return f"autoscaler: {seen}\nvm steps: {steps}\napp tasks (node, state, desired, error): {tasks}"


def _power_ons(vm: str) -> list[dict[str, Any]]:
    power_ons = httpx.get(f"{STATUS}/status", timeout=5).json()["power_ons"]
    return [record for record in power_ons if record["vm"] == vm]


def _ready() -> bool:
    try:
        return httpx.get(f"{URL}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _node_id(client: docker.DockerClient, hostname: str) -> str:
    return str(next(n.id for n in client.nodes.list() if node_hostname(n.attrs) == hostname))


def test_down_leaves_no_domain_volume_network_or_pool(lab: dict[str, Any]) -> None:
    dev_stack.down(STACK, delete_data=True)
    assert libvirt_leftovers() == {"domains": [], "networks": [], "pools": []}
    assert not dev_stack.state_file(STACK).exists()
