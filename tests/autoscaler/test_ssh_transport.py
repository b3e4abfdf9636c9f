"""The autoscaler's image reaches a remote hypervisor the way the multi-host stack sets it up: virsh over
qemu+ssh, with the mounted key, the stack's ssh_config and known_hosts (the component's own files), and no
other trust. This host plays the remote one: its libvirt behind an sshd of the test's own, on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from components.autoscaler import KNOWN_HOSTS_PATH, SSH_CONFIG, SSH_CONFIG_PATH, SSH_KEY_PATH
from components.config import HypervisorHostConfig
from tests.support.swarm import free_loopback_port

AUTOSCALER_UID = 10002


@dataclass
class RemoteHypervisor:
    uri: str
    host_key: str  # "ssh-ed25519 AAAA..."
    client_key: Path  # the autoscaler's private key, owned by its uid


def keypair(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteHypervisor]:
    home = tmp_path_factory.mktemp("sshd")
    host_key = keypair(home / "host_key")
    (home / "authorized_keys").write_text(keypair(home / "client_key") + "\n")
    os.chown(home / "client_key", AUTOSCALER_UID, AUTOSCALER_UID)
    port = free_loopback_port()
    (home / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {home / 'host_key'}\nPidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
        # The throwaway files live under /tmp, which is world-writable: sshd's path checks would refuse them.
        "StrictModes no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"sshd did not listen on 127.0.0.1:{port}")
        yield RemoteHypervisor(f"qemu+ssh://root@127.0.0.1:{port}/system", host_key, home / "client_key")
    finally:
        process.terminate()
        process.wait(timeout=10)


def virsh_in_autoscaler(
    client: docker.DockerClient, image: str, remote: RemoteHypervisor, known_hosts: str, tmp_path: Path
) -> tuple[int, str]:
    (tmp_path / "ssh_config").write_text(SSH_CONFIG)
    (tmp_path / "known_hosts").write_text(known_hosts)
    container = client.containers.run(
        image,
        entrypoint=["virsh", "-c", remote.uri, "hostname"],
        network_mode="host",
        mounts=[
            docker.types.Mount(SSH_KEY_PATH, str(remote.client_key), type="bind", read_only=True),
            docker.types.Mount(SSH_CONFIG_PATH, str(tmp_path / "ssh_config"), type="bind", read_only=True),
            docker.types.Mount(KNOWN_HOSTS_PATH, str(tmp_path / "known_hosts"), type="bind", read_only=True),
        ],
        detach=True,
    )
    try:
        code = container.wait(timeout=60)["StatusCode"]
        return code, container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)


def host_entry(remote: RemoteHypervisor, host_key: str) -> str:
    host = HypervisorHostConfig(
        name="remote",
        key="hostscale:vms.hosts[1]",
        budget_key="hostscale:vms.hosts[1]",
        libvirt_uri=remote.uri,
        network_cidr="10.99.0.0/24",
        network_mode="route",
        budget_memory_mb=1024,
        budget_vcpus=1,
        ssh_host_key=host_key,
    )
    return host.known_hosts_line() + "\n"


def test_the_autoscaler_reaches_a_remote_hypervisor_with_its_key_and_the_pinned_host_key(
    docker_client: docker.DockerClient, images: dict[str, str], remote: RemoteHypervisor, tmp_path: Path
) -> None:
    code, output = virsh_in_autoscaler(
        docker_client, images["autoscaler"], remote, host_entry(remote, remote.host_key), tmp_path
    )
    expected = subprocess.run(
        ["virsh", "-c", "qemu:///system", "hostname"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert (code, output.strip().splitlines()[-1]) == (0, expected), output


def test_a_host_key_other_than_the_pinned_one_is_refused(
    docker_client: docker.DockerClient, images: dict[str, str], remote: RemoteHypervisor, tmp_path: Path
) -> None:
    impostor = keypair(tmp_path / "impostor")
    code, output = virsh_in_autoscaler(
        docker_client, images["autoscaler"], remote, host_entry(remote, impostor), tmp_path
    )
    assert code != 0, output
    assert "Host key verification failed" in output, output
