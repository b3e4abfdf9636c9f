"""The apply harness is strict: what it does not apply fails loudly, naming the resource and the property,
before anything of that resource is created."""

from __future__ import annotations

import docker
import pulumi
import pytest

from harness.engine_apply import EngineApplyMocks
from harness.libvirt_apply import Virsh
from harness.props import Unsupported


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
