"""This host's libvirt as a remote hypervisor: an sshd of our own on loopback (root, key only), and the
autoscaler's image running virsh over qemu+ssh with the files the Autoscaler component gives it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker

from autoscaler import virsh_rules
from components.autoscaler import KNOWN_HOSTS_PATH, SSH_CONFIG_PATH, SSH_KEY_PATH, authorized_keys_line
from components.settings import HypervisorHostConfig
from testbed.ports import free_loopback_port

AUTOSCALER_UID = 10002


@dataclass
class RemoteHypervisor:
    uri: str
    host_key: str  # "ssh-ed25519 AAAA..."
    client_key: Path  # the autoscaler's private key, owned by its uid

    def known_hosts(self, host_key: str | None = None) -> str:
        """The known_hosts file the component renders for this host (with another key, if given)."""
        host = HypervisorHostConfig(
            name="remote",
            key="hostscale:vms.hosts[1]",
            budget_key="hostscale:vms.hosts[1]",
            libvirt_uri=self.uri,
            network_cidr="10.99.0.0/24",
            network_mode="route",
            budget_memory_mb=1024,
            budget_vcpus=1,
            ssh_host_key=host_key or self.host_key,
        )
        return host.known_hosts_line() + "\n"


def keypair(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@contextlib.contextmanager
def loopback_sshd(home: Path, forced_rules: Path | None = None) -> Iterator[RemoteHypervisor]:
    """With `forced_rules` (the settings file of autoscaler/virsh_rules.py), the client key is installed as
    the component tells the operator to: with the virsh rules as its forced command."""
    host_key = keypair(home / "host_key")
    client_key = keypair(home / "client_key")
    if forced_rules is None:
        (home / "authorized_keys").write_text(client_key + "\n")
    else:
        rules = Path(virsh_rules.__file__).resolve()
        (home / "authorized_keys").write_text(authorized_keys_line(client_key, str(rules), str(forced_rules)))
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
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.DEVNULL)
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


def run_in_autoscaler(
    client: docker.DockerClient,
    image: str,
    remote: RemoteHypervisor,
    files: dict[str, str],  # "ssh_config" and "known_hosts": their contents
    workdir: Path,
    entrypoint: list[str],
    timeout_s: float = 120,
) -> tuple[int, str]:
    """Run a command in the autoscaler's image as its user, with the SSH files at the component's paths."""
    for name, content in files.items():
        (workdir / name).write_text(content)
    container = client.containers.run(
        image,
        entrypoint=entrypoint,
        network_mode="host",
        mounts=[
            docker.types.Mount(SSH_KEY_PATH, str(remote.client_key), type="bind", read_only=True),
            docker.types.Mount(SSH_CONFIG_PATH, str(workdir / "ssh_config"), type="bind", read_only=True),
            docker.types.Mount(KNOWN_HOSTS_PATH, str(workdir / "known_hosts"), type="bind", read_only=True),
        ],
        detach=True,
    )
    try:
        code = container.wait(timeout=timeout_s)["StatusCode"]
        return code, container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)
