"""The autoscaler's image reaches a remote hypervisor the way the multi-host stack sets it up: virsh over
qemu+ssh, with the mounted key, the component's ssh_config and known_hosts, and no other trust. This host
plays the remote one: its libvirt behind an sshd of the test's own, on loopback.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def forced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RemoteHypervisor, str]]:
    """This host's libvirt behind the autoscaler key's forced command, declaring one domain: one of this host's
    own if it has any (so the allowed call has a state to show), else a name it does not have."""
    home = tmp_path_factory.mktemp("sshd-forced")
    names = subprocess.run(
        ["virsh", "-q", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    domain = names[0] if names else "hs-absent-worker-0"
    (home / "virsh-gate.json").write_text(json.dumps({"domains": [domain]}))
    with loopback_sshd(home, forced_rules=home / "virsh-gate.json") as hypervisor:
        yield hypervisor, domain


def through_forced_command(
    client: docker.DockerClient, image: str, forced: tuple[RemoteHypervisor, str], workdir: Path, code: str
) -> tuple[int, str]:
    remote, _ = forced
    files = {"ssh_config": SSH_CONFIG, "known_hosts": remote.known_hosts()}
    script = (
        f"from autoscaler.libvirt import Virsh; virsh = Virsh({remote.uri!r}, forced_command=True); {code}"
    )
    return run_in_autoscaler(client, image, remote, files, workdir, ["python3", "-c", script])


def test_the_autoscaler_key_runs_the_allowed_virsh_calls_on_a_remote_hypervisor(
    docker_client: docker.DockerClient,
    images: dict[str, str],
    forced: tuple[RemoteHypervisor, str],
    tmp_path: Path,
) -> None:
    _, domain = forced
    script = f"import json; print(json.dumps([virsh.states(30), virsh('domstate', {domain!r}, check=False)]))"
    code, output = through_forced_command(docker_client, images["autoscaler"], forced, tmp_path, script)
    expected = subprocess.run(
        ["virsh", "-q", "-c", "qemu:///system", "domstate", domain],
        capture_output=True,
        text=True,
        check=False,
    )
    assert code == 0, output
    states, state = json.loads(output.strip().splitlines()[-1])
    assert set(states) <= {domain}, f"the list shows the declared domain only: {states}"
    assert state == expected.stdout.strip(), output


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        pytest.param(
            ["sh"], "hostscale: refused 'sh': 'sh' is not a virsh call the autoscaler makes", id="a shell"
        ),
        pytest.param(
            ["virsh", "undefine", "x"],
            "hostscale: refused 'virsh undefine x': 'virsh undefine x' is not a virsh call the autoscaler makes",
            id="virsh undefine",
        ),
        pytest.param(
            ["start", "some-other-vm"],
            "hostscale: refused 'start some-other-vm': 'some-other-vm' is not one of this stack's VM domains",
            id="another domain",
        ),
    ],
)
def test_the_autoscaler_key_runs_nothing_else_on_a_remote_hypervisor(
    docker_client: docker.DockerClient,
    images: dict[str, str],
    forced: tuple[RemoteHypervisor, str],
    tmp_path: Path,
    command: list[str],
    refusal: str,
) -> None:
    remote, _ = forced
    port = remote.uri.split(":")[-1].split("/")[0]
    files = {"ssh_config": SSH_CONFIG, "known_hosts": remote.known_hosts()}
    code, output = run_in_autoscaler(
        docker_client,
        images["autoscaler"],
        remote,
        files,
        tmp_path,
        ["ssh", "-p", port, "root@127.0.0.1", *command],
    )
    assert (code, output.strip().splitlines()[-1]) == (126, refusal), output
