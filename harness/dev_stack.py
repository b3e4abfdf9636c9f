"""`scripts/dev-stack up|down <stack>`: deploy a stack of the Pulumi program to the real Docker engine without
the Pulumi CLI, through the engine-less apply harness. `up` prints the stack outputs as JSON on its last line.

<stack> is any stack with a stacks/Pulumi.<stack>.yaml. State (what was created, for `down`) lives in
.state/dev-stack/<stack>.json. `up` on a stack that is up refuses: run `down` first. A failed `up` removes what
it had created.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker

from harness import libvirt_apply
from harness.engine_apply import EngineApplyMocks
from harness.program import ROOT, run_program, stack_config, stack_file
from harness.state import Applied, CommandStep, DockerObject, LibvirtObject, load, save

STATE_DIR = ROOT / ".state" / "dev-stack"
TASKS_GONE_TIMEOUT_S = 90


def state_file(stack: str) -> Path:
    return STATE_DIR / f"{stack}.json"


def up(stack: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    path = state_file(stack)
    if path.exists():
        raise SystemExit(
            f"dev-stack: stack {stack} is up ({path}); run `scripts/dev-stack down {stack}` first"
        )
    mocks = EngineApplyMocks(docker.from_env())
    try:
        outputs = run_program(config or stack_config(stack), stack, mocks).outputs
    except BaseException:
        remove(mocks.client, mocks.applied)
        raise
    save(path, mocks.applied)
    return outputs


def remove(client: docker.DockerClient, applied: list[Applied]) -> None:
    """Remove what `up` created, dependents first. An object that is already gone, or goes while this works
    (a service's task containers do), is fine."""
    docker_objects = [item for item in applied if isinstance(item, DockerObject)]
    libvirt_objects = [item for item in applied if isinstance(item, LibvirtObject)]
    commands = [item for item in applied if isinstance(item, CommandStep)]

    def of_kind(kind: str) -> list[DockerObject]:
        return [item for item in docker_objects if item.kind == kind]

    def on_hypervisor(kind: str) -> list[LibvirtObject]:
        return [item for item in libvirt_objects if item.kind == kind]

    for item in of_kind("container"):
        with _gone():
            client.containers.get(item.id).remove(force=True)
    for item in of_kind("service"):
        with _gone():
            client.services.get(item.id).remove()
    for vm in on_hypervisor("domain"):
        libvirt_apply.remove(vm)
    for command in reversed(commands):
        if command.delete:
            subprocess.run(
                ["bash", "-c", command.delete], cwd=command.directory, check=False, capture_output=True
            )
    # Secrets, networks and volumes are in use until the services' task containers are gone.
    services = [item.docker_name for item in of_kind("service")]
    deadline = time.monotonic() + TASKS_GONE_TIMEOUT_S
    while time.monotonic() < deadline and any(_task_containers(client, service) for service in services):
        time.sleep(0.5)
    for item in of_kind("secret"):
        with _gone():
            client.secrets.get(item.id).remove()
    for item in of_kind("network"):
        with _gone():
            client.networks.get(item.id).remove()
    for item in of_kind("volume"):
        with _gone():
            client.volumes.get(item.id).remove(force=True)
    for kind in ("volume", "network", "pool"):
        for libvirt_object in reversed(on_hypervisor(kind)):
            libvirt_apply.remove(libvirt_object)


def _task_containers(client: docker.DockerClient, service: str) -> list[Any]:
    # sparse: the listing only, no inspect of each container, which fails when a task container is removed
    # between the list and its inspect.
    containers: list[Any] = client.containers.list(
        all=True, sparse=True, filters={"label": f"com.docker.swarm.service.name={service}"}
    )
    return containers


def _gone() -> contextlib.suppress:
    """Around one removal: an object already gone is what removing it wants."""
    return contextlib.suppress(docker.errors.NotFound)


def down(stack: str) -> None:
    path = state_file(stack)
    if not path.exists():
        print(f"dev-stack: stack {stack} is not up", file=sys.stderr)
        return
    remove(docker.from_env(), load(path))
    path.unlink()


def _stack(name: str) -> str:
    """A stack name argument: one with a stack file."""
    if not stack_file(name).is_file():
        raise argparse.ArgumentTypeError(
            f"no stack {name!r}: {stack_file(name).relative_to(ROOT)} does not exist"
        )
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/dev-stack", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("stack", type=_stack, help="a stack with a stacks/Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    if args.action == "up":
        print(json.dumps(up(args.stack)))
    else:
        down(args.stack)
        print(f"dev-stack: {args.stack} is down")


if __name__ == "__main__":
    main()
