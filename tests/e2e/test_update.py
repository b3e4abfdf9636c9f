"""The second `up` on the local stack, through the engine stand-in (harness/engine.py): a no-op `up` touches
nothing, a rule change replaces only the autoscaler, a resource dropped from the program is deleted, `preview`
prints exactly each of these plans and changes nothing, and an `up` stopped by SIGTERM leaves a state that
`down` completes."""

from __future__ import annotations

import copy
import io
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from harness import dev_stack
from harness.plan import NotModelled
from harness.program import ROOT
from harness.state import StackState
from testbed.stack import config_for
from testbed.waiting import wait_for

Snapshot = dict[str, Any]


def snapshot(client: docker.DockerClient, prefix: str) -> Snapshot:
    """Every container of the stack (task containers included) with when it started, every service with its
    spec version: a restart or a spec update changes it."""
    return {
        "containers": {
            c.name: (c.id, c.attrs["State"]["StartedAt"])
            for c in client.containers.list(all=True)
            if c.name.startswith(prefix + "-")
        },
        "services": {
            s.name: (s.id, s.attrs["Version"]["Index"])
            for s in client.services.list()
            if s.name.startswith(prefix + "-")
        },
    }


def leftovers(client: docker.DockerClient, prefix: str) -> dict[str, list[str]]:
    def ours(names: list[str]) -> list[str]:
        return [name for name in names if name.startswith(prefix + "-")]

    # Outside a Swarm (the test left the one it made) there can be no service or secret.
    swarm = client.info()["Swarm"]["LocalNodeState"] == "active"
    return {
        "containers": ours([c.name for c in client.containers.list(all=True)]),
        "services": ours([s.name for s in client.services.list()]) if swarm else [],
        "networks": ours([n.name for n in client.networks.list()]),
        "secrets": ours([s.name for s in client.secrets.list()]) if swarm else [],
        "volumes": ours([v.name for v in client.volumes.list()]),
    }


class Stack:
    def __init__(self, client: docker.DockerClient) -> None:
        run_id = secrets.token_hex(4)
        self.client = client
        self.name, self.prefix = f"test-{run_id}", f"hs-{run_id}"
        self.config = config_for(self.prefix)

    def up(self, config: dict[str, Any] | None = None) -> list[str]:
        out = io.StringIO()
        dev_stack.up(self.name, config or self.config, out=out)
        return out.getvalue().splitlines()

    def preview(self, config: dict[str, Any] | None = None) -> tuple[list[str], str]:
        """The plan lines and the summary line; checks that the preview changed nothing."""
        state_before = dev_stack.state_file(self.name).read_bytes()
        objects_before = snapshot(self.client, self.prefix)
        out = io.StringIO()
        lines = dev_stack.preview(self.name, config or self.config, out=out)
        assert dev_stack.state_file(self.name).read_bytes() == state_before, "preview wrote the state"
        assert snapshot(self.client, self.prefix) == objects_before, "preview changed the stack"
        return lines, out.getvalue().splitlines()[-1]

    def settle(self) -> None:
        """Up, and every service running as many tasks as it wants, and nothing starting: what a snapshot
        before and after another `up` compares."""
        self.up()

        def settled() -> bool:
            for service in self.client.services.list():
                if not service.name.startswith(self.prefix + "-"):
                    continue
                wanted = service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"]
                tasks = service.tasks(filters={"desired-state": "running"})
                if len(tasks) != wanted or any(t["Status"]["State"] != "running" for t in tasks):
                    return False
            return True

        wait_for("every service's tasks running", settled, timeout_s=120)

    def state(self) -> StackState:
        return StackState.load(dev_stack.state_file(self.name))

    def resource_names(self) -> list[str]:
        return [r.name for r in self.state().resources]


def _swarm_manager(client: docker.DockerClient) -> bool:
    return bool(client.info()["Swarm"].get("ControlAvailable"))


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient, images: dict[str, str]) -> Iterator[Stack]:
    was_manager = _swarm_manager(docker_client)
    deployed = Stack(docker_client)
    try:
        deployed.up()
        yield deployed
    finally:
        dev_stack.down(deployed.name, delete_data=True, out=io.StringIO())
        if not was_manager and docker_client.info()["Swarm"]["LocalNodeState"] == "active":
            docker_client.swarm.leave(force=True)
    assert not any(leftovers(docker_client, deployed.prefix).values()), leftovers(
        docker_client, deployed.prefix
    )


def test_a_no_op_up_changes_nothing_and_restarts_no_container(stack: Stack) -> None:
    stack.settle()  # from whatever an earlier test left
    before = snapshot(stack.client, stack.prefix)
    count = len(stack.state().resources)
    plan, summary = stack.preview()
    assert plan == []
    assert summary == (
        f"preview {stack.name}: 0 to create, 0 to update, 0 to replace, 0 to delete, {count} unchanged"
    )
    lines = stack.up()
    assert len(lines) == 1, lines
    assert re.fullmatch(rf"up {stack.name}: {count} unchanged in \d+\.\d s", lines[0]), lines
    assert snapshot(stack.client, stack.prefix) == before


def test_a_rule_change_replaces_only_the_autoscaler(stack: Stack) -> None:
    stack.settle()
    before = snapshot(stack.client, stack.prefix)
    changed = copy.deepcopy(stack.config)
    changed["hostscale:autoscaler"]["scale_down"]["stabilization_seconds"] += 1
    plan, _ = stack.preview(changed)
    assert len(plan) == 1, plan
    assert re.fullmatch(
        r"\+- docker:index/container:Container autoscaler-container "
        r"\[uploads\[0\]\.content: \(\d+ characters\) => \(\d+ characters\)\]",
        plan[0],
    ), plan
    lines = stack.up(changed)
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "+- replaced docker:index/container:Container autoscaler-container [uploads[0].content]"
    ]
    after = snapshot(stack.client, stack.prefix)
    autoscaler = f"{stack.prefix}-autoscaler"
    assert after["containers"][autoscaler][0] != before["containers"][autoscaler][0], "not replaced"
    del after["containers"][autoscaler], before["containers"][autoscaler]
    assert after == before, "something besides the autoscaler changed"
    settings = stack.client.containers.get(autoscaler).get_archive("/etc/hostscale/autoscaler.json")
    assert b'"stabilization_seconds": 31' in b"".join(settings[0])


def test_a_resource_dropped_from_the_program_is_deleted(stack: Stack) -> None:
    stack.settle()
    before = snapshot(stack.client, stack.prefix)
    app_image = next(r for r in stack.state().resources if r.name == "app-service").inputs["taskSpec"][
        "containerSpec"
    ]["image"]
    # With an app image given, the program no longer builds one: its build step is not declared.
    changed = copy.deepcopy(stack.config)
    # The same probe as before (an own image is probed by its HEALTHCHECK unless the config says bash).
    changed["hostscale:app"] = {
        **changed.get("hostscale:app", {}),
        "image": app_image,
        "liveness_probe": "bash",
    }
    plan, summary = stack.preview(changed)
    assert plan == ["-  command:local:Command app-build"]
    assert re.fullmatch(rf"preview {stack.name}: 0 to create, 0 to update, 0 to replace, 1 to delete, \d+ unchanged",
                        summary)  # fmt: skip
    lines = stack.up(changed)
    assert [line.split(" (")[0] for line in lines[:-1]] == ["-  deleted  command:local:Command app-build"]
    assert "app-build" not in stack.resource_names()
    assert snapshot(stack.client, stack.prefix) == before, "the app service was touched"


def test_an_up_stopped_by_sigterm_leaves_a_state_that_down_completes(
    docker_client: docker.DockerClient, images: dict[str, str], tmp_path: Path
) -> None:
    was_manager = _swarm_manager(docker_client)
    interrupted = Stack(docker_client)
    config_file = tmp_path / "Pulumi.interrupted.yaml"
    config_file.write_text(yaml.safe_dump({"config": interrupted.config}))
    state = dev_stack.state_file(interrupted.name)
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "dev-stack"), "up", interrupted.name, "--config-file", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # Mid-way: after the networks (the sixth step on), before the services.
        wait_for("six completed steps", lambda: state.exists() and len(StackState.load(state).resources) >= 6,
                 timeout_s=120, every_s=0.02)  # fmt: skip
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 128 + signal.SIGTERM, (stdout, stderr)
        assert "SIGTERM: stopped between two steps" in stderr
        recorded = StackState.load(state)
        assert 6 <= len(recorded.resources) < 15, [r.name for r in recorded.resources]
        assert "autoscaler-container" not in [r.name for r in recorded.resources]
        lines = stdout.splitlines()
        assert not any(line.startswith("{") for line in lines), "an interrupted up printed outputs"
        made = [name for kind in leftovers(docker_client, interrupted.prefix).values() for name in kind]
        assert made, "nothing was made before the signal"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        dev_stack.down(interrupted.name, delete_data=True, out=io.StringIO())
        if not was_manager and docker_client.info()["Swarm"]["LocalNodeState"] == "active":
            docker_client.swarm.leave(force=True)
    assert not state.exists()
    assert not any(leftovers(docker_client, interrupted.prefix).values()), leftovers(
        docker_client, interrupted.prefix
    )


def test_a_step_the_engine_would_refuse_fails_before_anything_changes(stack: Stack) -> None:
    stack.settle()
    before = snapshot(stack.client, stack.prefix)
    path = dev_stack.state_file(stack.name)
    state = stack.state()
    next(r for r in state.resources if r.name == "autoscaler-container").protect = True
    state.save(path)
    recorded = path.read_bytes()
    # The app service (registered first) would be updated, then the protected autoscaler replaced: refused.
    changed = copy.deepcopy(stack.config)
    changed["hostscale:app"] = {**changed.get("hostscale:app", {}), "stop_grace_seconds": 14}
    changed["hostscale:autoscaler"]["scale_down"]["stabilization_seconds"] += 1
    try:
        with pytest.raises(NotModelled) as refused:
            stack.up(changed)
        assert str(refused.value) == (
            "docker:index/container:Container autoscaler-container is protected: the engine refuses to replace "
            "it (changed: uploads[0].content)"
        )
        assert path.read_bytes() == recorded, "the state changed"
        assert snapshot(stack.client, stack.prefix) == before, "something changed before the refusal"
    finally:
        state = stack.state()
        next(r for r in state.resources if r.name == "autoscaler-container").protect = False
        state.save(path)
