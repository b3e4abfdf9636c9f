"""`scripts/dev-stack up|down <stack>`: deploy a stack of the Pulumi program to the real Docker engine without
the Pulumi CLI, through the engine-less apply harness. `up` prints the stack outputs as JSON on its last line.

State (what was created, for `down`) lives in .state/dev-stack/<stack>.json. `up` on a stack that is up refuses:
run `down` first. A failed `up` removes what it had created.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import runpy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pulumi
from pulumi.runtime.sync_await import _sync_await

from harness import libvirt_apply
from harness.engine_apply import Applied, EngineApplyMocks, load, save
from harness.program import ROOT, stack_config

STATE_DIR = ROOT / ".state" / "dev-stack"


def state_file(stack: str) -> Path:
    return STATE_DIR / f"{stack}.json"


def _outputs() -> dict[str, Any]:
    root = pulumi.runtime.get_root_resource()
    outputs: dict[str, Any] = {}
    for key, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        secret = _sync_await(output.is_secret())
        outputs[key] = "[secret]" if secret else _sync_await(output.future())
    return outputs


def up(stack: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    path = state_file(stack)
    if path.exists():
        raise SystemExit(
            f"dev-stack: stack {stack} is up ({path}); run `scripts/dev-stack down {stack}` first"
        )
    values = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in (config or stack_config(stack)).items()
    }
    pulumi.runtime.set_all_config(values, [])
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = EngineApplyMocks(docker.from_env())
    pulumi.runtime.set_mocks(mocks, project="hostscale", stack=stack, preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi's decorator has no annotations
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    try:
        program()
        outputs = _outputs()
    except BaseException:
        remove(mocks.client, mocks.applied)
        raise
    save(path, mocks.applied)
    return outputs


def remove(client: docker.DockerClient, applied: list[Applied]) -> None:
    """Remove what `up` created, dependents first."""
    by_kind = {
        kind: [a for a in applied if a.type == kind]
        for kind in (
            *("container", "service", "secret", "network", "volume", "command"),
            *("libvirt-domain", "libvirt-volume", "libvirt-network", "libvirt-pool"),
        )
    }
    for item in by_kind["container"]:
        _gone(lambda item=item: client.containers.get(item.id).remove(force=True))
    for item in by_kind["service"]:
        _gone(lambda item=item: client.services.get(item.id).remove())
    for item in by_kind["libvirt-domain"]:
        libvirt_apply.remove(item.type, str(item.docker_name), str(item.id), str(item.uri))
    for item in reversed(by_kind["command"]):
        if item.docker_name:  # the command's delete step
            subprocess.run(["bash", "-c", item.docker_name], cwd=item.id, check=False, capture_output=True)
    names = [item.docker_name for item in by_kind["service"]]
    deadline = time.monotonic() + 90
    # Secrets, networks and volumes are in use until the services' task containers are gone.
    while time.monotonic() < deadline and any(
        client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={n}"})
        for n in names
    ):
        time.sleep(0.5)
    for item in by_kind["secret"]:
        _gone(lambda item=item: client.secrets.get(item.id).remove())
    for item in by_kind["network"]:
        _gone(lambda item=item: client.networks.get(item.id).remove())
    for item in by_kind["volume"]:
        _gone(lambda item=item: client.volumes.get(item.id).remove(force=True))
    for kind in ("libvirt-volume", "libvirt-network", "libvirt-pool"):
        for item in reversed(by_kind[kind]):
            libvirt_apply.remove(item.type, str(item.docker_name), str(item.id), str(item.uri))


def _gone(action: Any) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        action()


def down(stack: str) -> None:
    path = state_file(stack)
    if not path.exists():
        print(f"dev-stack: stack {stack} is not up", file=sys.stderr)
        return
    remove(docker.from_env(), load(path))
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("stack", choices=["local", "lab", "lab-emulated"])
    args = parser.parse_args()
    if args.action == "up":
        print(json.dumps(up(args.stack)))
    else:
        down(args.stack)
        print(f"dev-stack: {args.stack} is down")


if __name__ == "__main__":
    main()
