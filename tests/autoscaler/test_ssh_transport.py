"""The autoscaler's image reaches a remote hypervisor the way the multi-host stack sets it up: virsh over
qemu+ssh, with the mounted key, the component's ssh_config and known_hosts, and no other trust. This host
plays the remote one: its libvirt behind an sshd of the test's own, on loopback.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from components.autoscaler import SSH_CONFIG
from testbed.sshd import RemoteHypervisor, keypair, loopback_sshd, run_in_autoscaler


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteHypervisor]:
    with loopback_sshd(tmp_path_factory.mktemp("sshd")) as hypervisor:
        yield hypervisor


def virsh_hostname(
    client: docker.DockerClient, image: str, remote: RemoteHypervisor, known_hosts: str, workdir: Path
) -> tuple[int, str]:
    files = {"ssh_config": SSH_CONFIG, "known_hosts": known_hosts}
    return run_in_autoscaler(client, image, remote, files, workdir, ["virsh", "-c", remote.uri, "hostname"])


def test_the_autoscaler_reaches_a_remote_hypervisor_with_its_key_and_the_pinned_host_key(
    docker_client: docker.DockerClient, images: dict[str, str], remote: RemoteHypervisor, tmp_path: Path
) -> None:
    code, output = virsh_hostname(docker_client, images["autoscaler"], remote, remote.known_hosts(), tmp_path)
    expected = subprocess.run(
        ["virsh", "-c", "qemu:///system", "hostname"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert (code, output.strip().splitlines()[-1]) == (0, expected), output


def test_a_host_key_other_than_the_pinned_one_is_refused(
    docker_client: docker.DockerClient, images: dict[str, str], remote: RemoteHypervisor, tmp_path: Path
) -> None:
    impostor = keypair(tmp_path / "impostor")
    code, output = virsh_hostname(
        docker_client, images["autoscaler"], remote, remote.known_hosts(impostor), tmp_path
    )
    assert code != 0, output
    assert "Host key verification failed" in output, output


def test_calls_to_one_host_share_one_ssh_session(
    docker_client: docker.DockerClient, images: dict[str, str], remote: RemoteHypervisor, tmp_path: Path
) -> None:
    port = remote.uri.split(":")[-1].split("/")[0]
    script = (
        f"virsh -q -c {remote.uri} hostname >/dev/null && virsh -q -c {remote.uri} hostname >/dev/null"
        f" && ssh -O check -p {port} root@127.0.0.1"
    )
    files = {"ssh_config": SSH_CONFIG, "known_hosts": remote.known_hosts()}
    code, output = run_in_autoscaler(
        docker_client, images["autoscaler"], remote, files, tmp_path, ["sh", "-c", script]
    )
    assert code == 0, output
    assert "Master running" in output, output
