"""The apply harness is strict: what it does not apply fails loudly, naming the resource and the property,
before anything of that resource is created. What it applied is kept as typed records that `down` trusts only
when it wrote them, and `down` finishes even when objects vanish under it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, ClassVar

import docker
import pulumi
import pytest

from harness import libvirt_apply
from harness.dev_stack import _stack, main
from harness.engine_apply import EngineApplyMocks, _duration_ns
from harness.libvirt_apply import Virsh
from harness.plan import plan_step
from harness.props import Unsupported
from harness.state import Applied, CommandStep, DockerObject, LibvirtObject, StateError, load, save


def resource(typ: str, name: str, inputs: dict[str, object]) -> pulumi.runtime.MockResourceArgs:
    return pulumi.runtime.MockResourceArgs(typ, name, inputs, "", "")


def test_unknown_resource_type_is_refused(docker_client: docker.DockerClient) -> None:
    mocks = EngineApplyMocks(docker_client)
    with pytest.raises(
        Unsupported, match="pl: the apply harness does not apply resource type docker:index/plugin:Plugin"
    ):
        mocks.new_resource(resource("docker:index/plugin:Plugin", "pl", {}))


def test_unknown_property_is_refused_before_anything_is_applied(docker_client: docker.DockerClient) -> None:
    mocks = EngineApplyMocks(docker_client)
    args = resource(
        "docker:index/volume:Volume", "data", {"name": "hs-strict-probe", "driverOpts": {"type": "tmpfs"}}
    )
    with pytest.raises(Unsupported, match=r"docker:index/volume:Volume data: .*\['driverOpts'\]"):
        mocks.new_resource(args)
    assert not docker_client.volumes.list(filters={"name": "hs-strict-probe"}), (
        "the volume must not have been made"
    )
    assert mocks.applied == []


def test_provider_function_calls_are_refused(docker_client: docker.DockerClient) -> None:
    mocks = EngineApplyMocks(docker_client)
    with pytest.raises(Unsupported, match="provider function docker:index/getNetwork:getNetwork"):
        mocks.call(pulumi.runtime.MockCallArgs("docker:index/getNetwork:getNetwork", {}, ""))


def _libvirt_provider(mocks: EngineApplyMocks) -> str:
    provider_id, _ = mocks.new_resource(resource("pulumi:providers:libvirt", "hv", {"uri": "qemu:///system"}))
    return f"urn:pulumi:test::hostscale::pulumi:providers:libvirt::hv::{provider_id}"


def test_libvirt_domain_with_an_unknown_property_is_refused_before_it_is_defined(
    docker_client: docker.DockerClient,
) -> None:
    mocks = EngineApplyMocks(docker_client)
    provider = _libvirt_provider(mocks)
    args = pulumi.runtime.MockResourceArgs(
        "libvirt:index/domain:Domain",
        "vm",
        {"name": "hs-strict-probe-vm", "memory": 256, "graphics": {"type": "vnc"}},
        provider,
        "",
    )
    with pytest.raises(Unsupported, match=r"libvirt:index/domain:Domain vm: .*\['graphics'\]"):
        mocks.new_resource(args)
    assert "hs-strict-probe-vm" not in Virsh("qemu:///system")("list", "--all", "--name").split()
    assert mocks.applied == []


def test_libvirt_resources_need_an_explicit_provider(docker_client: docker.DockerClient) -> None:
    mocks = EngineApplyMocks(docker_client)
    with pytest.raises(Unsupported, match=r"pool: libvirt resources need an explicit libvirt\.Provider"):
        mocks.new_resource(resource("libvirt:index/pool:Pool", "pool", {"name": "p", "type": "dir"}))


def test_a_base_image_to_download_is_refused(docker_client: docker.DockerClient) -> None:
    mocks = EngineApplyMocks(docker_client)
    args = pulumi.runtime.MockResourceArgs(
        "libvirt:index/volume:Volume",
        "base",
        {"name": "b.qcow2", "pool": "p", "source": "https://cloud.debian.org/x.qcow2", "format": "qcow2"},
        _libvirt_provider(mocks),
        "",
    )
    with pytest.raises(Unsupported, match="base: the harness uploads local files only"):
        mocks.new_resource(args)


# What `up` applied goes to the state file as typed records and comes back the same; `down` refuses a state file
# it did not write rather than guess what to remove.

RECORDS: list[Applied] = [
    DockerObject("network", "web-network", "hs-local-web", "4f1c9e"),
    DockerObject("volume", "db-data", "hs-local-db", "hs-local-db"),
    CommandStep("app-image", "docker image rm hs-app:1", "/srv/hostscale"),
    CommandStep("swarm-init", None, "/srv/hostscale"),
    LibvirtObject("pool", "vm-pool", "hs-lab", "qemu:///system", None),
    LibvirtObject("volume", "worker-0-disk", "worker-0.qcow2", "qemu+ssh://hv2/system", "hs-lab"),
]


def test_every_kind_of_record_comes_back_from_the_state_file_as_it_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "state" / "local.json"
    save(path, RECORDS)
    assert load(path) == RECORDS
    assert [entry["record"] for entry in json.loads(path.read_text())] == [
        *(
            "docker-object",
            "docker-object",
            "command-step",
            "command-step",
            "libvirt-object",
            "libvirt-object",
        ),
    ]


REFUSED_ENTRIES = [
    pytest.param(
        {"type": "network", "name": "web", "docker_name": "hs-web", "id": "4f1c9e", "uri": None},
        "{path} entry 0: unknown record None, expected one of ['command-step', 'docker-object', 'libvirt-object']",
        id="an entry without a record tag (the old untyped format) is refused",
    ),
    pytest.param(
        {"record": "docker-plugin", "kind": "plugin", "name": "pl", "docker_name": "pl", "id": "1"},
        "{path} entry 0: unknown record 'docker-plugin', "
        "expected one of ['command-step', 'docker-object', 'libvirt-object']",
        id="an unknown record tag is refused",
    ),
    pytest.param(
        {"record": "docker-object", "kind": "plugin", "name": "pl", "docker_name": "pl", "id": "1"},
        "{path} entry 0: a docker-object record of unknown kind 'plugin', "
        "expected one of ['container', 'service', 'secret', 'network', 'volume']",
        id="a docker object of an unknown kind is refused",
    ),
    pytest.param(
        {"record": "libvirt-object", "kind": "snapshot", "name": "s", "libvirt_name": "s", "uri": "qemu:///system",
         "pool": None},
        "{path} entry 0: a libvirt-object record of unknown kind 'snapshot', "
        "expected one of ['domain', 'volume', 'network', 'pool']",
        id="a libvirt object of an unknown kind is refused",
    ),
    pytest.param(
        {"record": "command-step", "name": "swarm-init", "delete": None},
        "{path} entry 0: a command-step record has fields ['delete', 'name'], "
        "expected ['delete', 'directory', 'name']",
        id="a record with a field missing is refused",
    ),
    pytest.param(
        {"record": "command-step", "name": "swarm-init", "delete": None, "directory": "/", "stdout": "x"},
        "{path} entry 0: a command-step record has fields ['delete', 'directory', 'name', 'stdout'], "
        "expected ['delete', 'directory', 'name']",
        id="a record with a field it does not have is refused",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "message"), REFUSED_ENTRIES)
def test_a_state_file_entry_this_harness_did_not_write_is_refused(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    path = tmp_path / "local.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(StateError) as error:
        load(path)
    assert str(error.value) == message.format(path=path)


class _VanishingTaskAPI:
    """The engine's API as `down` sees it while a service winds down: its task container is listed once and
    removed before it can be inspected; everything else is already gone."""

    def __init__(self) -> None:
        self.listings: list[list[dict[str, object]]] = [[{"Id": "task-0", "Names": ["/hs-app.1.x"]}], []]

    def containers(self, **_: object) -> list[dict[str, object]]:
        return self.listings.pop(0) if self.listings else []

    def __getattr__(self, name: str) -> object:
        def gone(*_: object, **__: object) -> object:
            raise docker.errors.NotFound(f"{name}: no such object")

        return gone


def test_down_goes_on_when_a_task_container_vanishes_between_list_and_inspect() -> None:
    client = docker.DockerClient.__new__(docker.DockerClient)  # the real collections over a fake API
    api = _VanishingTaskAPI()
    client.api = api
    # One resource's objects go last made first: the service, then what its tasks used.
    EngineApplyMocks(client).delete(
        [
            DockerObject("network", "web-network", "hs-web", "net-1"),
            DockerObject("secret", "db-password", "hs-db-password", "sec-1"),
            DockerObject("service", "app", "hs-app", "svc-1"),
        ]
    )
    assert api.listings == [], "down waited until the task container was no longer listed"


def test_dev_stack_takes_any_stack_with_a_stack_file() -> None:
    assert _stack("multihost") == "multihost"


def test_dev_stack_refuses_a_stack_without_a_stack_file_naming_the_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["up", "nosuch"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "scripts/dev-stack: error: argument stack: no stack 'nosuch': stacks/Pulumi.nosuch.yaml does not exist"
    )


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        pytest.param("250ms", 250 * 10**6, id="milliseconds are read as milliseconds, not minutes"),
        pytest.param("10s", 10 * 10**9, id="seconds"),
        pytest.param("2m", 120 * 10**9, id="minutes"),
        pytest.param("1h", 3600 * 10**9, id="hours"),
        pytest.param(None, None, id="no duration is left to the engine's default"),
    ],
)
def test_durations_are_applied_in_nanoseconds(text: str | None, nanoseconds: int | None) -> None:
    assert _duration_ns(text) == nanoseconds


@pytest.mark.parametrize("text", ["1m30s", "1.5s", "10", "s"], ids=lambda text: f"{text!r} is refused")
def test_a_duration_the_harness_cannot_read_is_refused(text: str) -> None:
    with pytest.raises(Unsupported) as error:
        _duration_ns(text)
    assert str(error.value) == f"duration {text!r} is not NNms/NNs/NNm/NNh"


class _VirshLog:
    """Stands in for virsh: keeps the commands `down` runs for each hypervisor."""

    calls: ClassVar[list[tuple[str, tuple[str, ...], bool]]] = []

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __call__(self, *args: str, check: bool = True) -> str:
        self.calls.append((self.uri, args, check))
        return ""


@pytest.mark.parametrize(
    ("record", "commands"),
    [
        pytest.param(
            LibvirtObject("domain", "worker-0", "hs-worker-0", "qemu:///system", None),
            [("destroy", "hs-worker-0"), ("undefine", "hs-worker-0", "--managed-save")],
            id="a domain is stopped, then undefined with its saved state",
        ),
        pytest.param(
            LibvirtObject("volume", "worker-0-disk", "worker-0.qcow2", "qemu+ssh://hv2/system", "hs-lab"),
            [("vol-delete", "--pool", "hs-lab", "worker-0.qcow2")],
            id="a volume is deleted from its pool on its own hypervisor",
        ),
        pytest.param(
            LibvirtObject("network", "vm-network", "hs-lab", "qemu:///system", None),
            [("net-destroy", "hs-lab"), ("net-undefine", "hs-lab")],
            id="a network is stopped, then undefined",
        ),
        pytest.param(
            LibvirtObject("pool", "vm-pool", "hs-lab", "qemu:///system", None),
            [("pool-destroy", "hs-lab"), ("pool-delete", "hs-lab"), ("pool-undefine", "hs-lab")],
            id="a pool is stopped, its directory deleted, then undefined",
        ),
    ],
)
def test_down_removes_each_libvirt_object_tolerating_one_already_gone(
    monkeypatch: pytest.MonkeyPatch, record: LibvirtObject, commands: list[tuple[str, ...]]
) -> None:
    monkeypatch.setattr(libvirt_apply, "Virsh", _VirshLog)
    monkeypatch.setattr(_VirshLog, "calls", [])
    libvirt_apply.remove(record)
    assert _VirshLog.calls == [(record.uri, command, False) for command in commands]


def test_a_libvirt_volume_record_without_its_pool_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libvirt_apply, "Virsh", _VirshLog)
    monkeypatch.setattr(_VirshLog, "calls", [])
    with pytest.raises(
        ValueError, match=r"^worker-0-disk: a libvirt volume record needs the pool it lives in$"
    ):
        libvirt_apply.remove(
            LibvirtObject("volume", "worker-0-disk", "worker-0.qcow2", "qemu:///system", None)
        )
    assert _VirshLog.calls == []


SERVICE = "docker:index/service:Service"


def test_a_service_update_sends_the_whole_spec_so_an_ignored_replica_count_goes_back_to_the_recorded_one(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    """What `pulumi up` does to a service the autoscaler scaled: the engine sends the recorded (ignored) replica
    count, and the Docker provider's update replaces the whole spec with it."""
    created_swarm = not docker_client.info()["Swarm"].get("ControlAvailable")
    if created_swarm:
        docker_client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    task: dict[str, Any] = {
        "containerSpec": {"image": "debian:bookworm-slim"},
        "restartPolicy": {"condition": "none"},
    }
    inputs: dict[str, object] = {"name": f"hs-update-probe-{uuid.uuid4().hex[:8]}", "taskSpec": task,
              "mode": {"replicated": {"replicas": 1}}}  # fmt: skip
    mocks = EngineApplyMocks(docker_client)
    service_id, _ = mocks.new_resource(resource(SERVICE, "probe", inputs))
    try:
        docker_client.services.get(service_id).scale(3)  # the autoscaler's move
        new_task = {**task, "containerSpec": {**task["containerSpec"], "env": {"RELEASE": "2"}}}
        new = {**inputs, "taskSpec": new_task, "mode": {"replicated": {"replicas": 1}}}
        step = plan_step(SERVICE, "probe", inputs, new, ["mode.replicated.replicas"])
        assert (step.op, step.changed) == ("update", ["taskSpec.containerSpec.env"])
        mocks.update(SERVICE, "probe", str(service_id), step.inputs)
        spec = docker_client.services.get(service_id).attrs["Spec"]
        assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["RELEASE=2"]
        assert spec["Mode"]["Replicated"]["Replicas"] == 1, (
            "the scaled count survived: not the provider's update"
        )
    finally:
        docker_client.services.get(service_id).remove()
        if created_swarm:
            docker_client.swarm.leave(force=True)
