"""The apply harness is strict: what it does not apply fails loudly, naming the resource and the property,
before anything of that resource is created."""

from __future__ import annotations

import docker
import pulumi
import pytest

from harness.engine_apply import EngineApplyMocks, Unsupported


def resource(typ: str, name: str, inputs: dict[str, object]) -> pulumi.runtime.MockResourceArgs:
    return pulumi.runtime.MockResourceArgs(typ, name, inputs, "", "")


def test_unknown_resource_type_is_refused(docker_client: docker.DockerClient) -> None:
    mocks = EngineApplyMocks(docker_client)
    with pytest.raises(
        Unsupported, match="vm: the apply harness does not apply resource type libvirt:index/domain:Domain"
    ):
        mocks.new_resource(resource("libvirt:index/domain:Domain", "vm", {}))


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
