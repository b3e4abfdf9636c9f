"""The virsh rules: the autoscaler's power verbs on the stack's domains pass, everything else is refused with
its reason; in the gate (over its unix socket, as autoscaler/libvirt.py calls it) and as an SSH forced command.
Real virsh runs against libvirt's test driver (test:///default: one domain, "test", in the virsh process
itself), so these tests touch no hypervisor."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler import virsh_rules
from autoscaler.gate import LibvirtGate, server
from autoscaler.libvirt import GATE_ENV, Virsh
from autoscaler.virsh_rules import Refused, allowed, visible
from testbed.waiting import wait_for

DOMAINS = frozenset({"hs-1-worker-0", "hs-1-worker-1"})

ALLOWED = {
    "the state of every domain": ["list", "--all"],
    "the state of every domain, a parked one as saved": ["list", "--all", "--managed-save"],
    "whether a domain has a managed-save image": ["dominfo", "hs-1-worker-0"],
    "one domain's state": ["domstate", "hs-1-worker-0"],
    "a power-on": ["start", "hs-1-worker-1"],
    "a park": ["managedsave", "hs-1-worker-0"],
    "a shutdown": ["shutdown", "hs-1-worker-0"],
    "a power-off of a guest that ignores ACPI": ["destroy", "hs-1-worker-0"],
    "a restored guest's clock read": ["domtime", "hs-1-worker-0"],
    "a restored guest's clock set from the host's": ["domtime", "hs-1-worker-0", "--sync"],
}


@pytest.mark.parametrize("args", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_autoscalers_virsh_calls_on_its_domains_pass(args: list[str]) -> None:
    assert allowed(args, DOMAINS) == args


REFUSED = {
    "an undefine": (
        ["undefine", "hs-1-worker-0"],
        "'undefine hs-1-worker-0' is not a virsh call the autoscaler makes",
    ),
    "a shell": (["sh"], "'sh' is not a virsh call the autoscaler makes"),
    "a device attached": (
        ["attach-disk", "hs-1-worker-0", "/dev/sda", "vdb"],
        "'attach-disk hs-1-worker-0 /dev/sda vdb' is not a virsh call the autoscaler makes",
    ),
    "another domain started": (
        ["start", "database-vm"],
        "'database-vm' is not one of this stack's VM domains",
    ),
    "a second verb smuggled as an argument": (
        ["start", "hs-1-worker-0", "--console"],
        "start takes exactly one domain name",
    ),
    "a list that is not the plain one": (
        ["list", "--all", "--uuid"],
        "'list --all --uuid' is not a virsh call the autoscaler makes",
    ),
    "nothing": ([], "'' is not a virsh call the autoscaler makes"),
    "a guest clock set to a time of the caller's choosing": (
        ["domtime", "hs-1-worker-0", "--time", "0"],
        "domtime takes one domain name and at most --sync",
    ),
    "another domain's clock set": (
        ["domtime", "database-vm", "--sync"],
        "'database-vm' is not one of this stack's VM domains",
    ),
    "a clock sync with the domain after the flag": (
        ["domtime", "--sync", "hs-1-worker-0"],
        "domtime takes one domain name and at most --sync",
    ),
}


@pytest.mark.parametrize(("args", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_every_other_virsh_call_is_refused_with_its_reason(args: list[str], reason: str) -> None:
    with pytest.raises(Refused) as refused:
        allowed(args, DOMAINS)
    assert str(refused.value) == reason


@pytest.mark.parametrize("managed_save", [[], ["--managed-save"]], ids=["plain", "with managed saves"])
def test_the_domain_list_shows_the_stacks_domains_only(managed_save: list[str]) -> None:
    output = " 1    hs-1-worker-0   running\n -    other-vm        saved\n -    hs-1-worker-1   shut off\n"
    assert visible(["list", "--all", *managed_save], output, DOMAINS) == (
        " 1    hs-1-worker-0   running\n -    hs-1-worker-1   shut off\n"
    )


@pytest.fixture
def gate_socket(tmp_path: Path) -> Iterator[Path]:
    """The gate's libvirt half on a socket of its own, running virsh against the test driver."""
    socket_path = tmp_path / "libvirt.sock"
    holder: dict[str, Any] = {
        "server": server(LibvirtGate(frozenset({"test"}), "test:///default"), str(socket_path))
    }
    thread = threading.Thread(target=asyncio.run, args=(holder["server"].serve(),), daemon=True)
    thread.start()
    wait_for("the gate to listen", lambda: bool(holder["server"].started), timeout_s=10)
    yield socket_path
    holder["server"].should_exit = True
    thread.join(10)


def test_the_autoscaler_runs_its_virsh_calls_through_the_gate(
    gate_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATE_ENV, str(gate_socket))
    virsh = Virsh("qemu:///system")
    assert virsh.gate == str(gate_socket)
    assert virsh.states(timeout=30) == {"test": "running"}
    assert virsh.state("test", timeout=30) == "running"
    virsh("destroy", "test", timeout=30)  # the test driver's state lives in one virsh process: nothing lasts


def test_the_gate_refuses_what_the_rules_refuse(gate_socket: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATE_ENV, str(gate_socket))
    virsh = Virsh("qemu:///system")
    with pytest.raises(RuntimeError) as refused:
        virsh("undefine", "test", timeout=30)
    assert str(refused.value) == (
        "virsh undefine test: hostscale gate: virsh undefine test refused: "
        "'undefine test' is not a virsh call the autoscaler makes"
    )
    with pytest.raises(RuntimeError) as refused:
        virsh("start", "hs-other", timeout=30)
    assert str(refused.value) == (
        "virsh start hs-other: hostscale gate: virsh start hs-other refused: "
        "'hs-other' is not one of this stack's VM domains"
    )


def forced(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    settings = tmp_path / "virsh-gate.json"
    settings.write_text(json.dumps({"domains": sorted(DOMAINS)}))
    return subprocess.run(
        [sys.executable, virsh_rules.__file__, str(settings)],
        env={"SSH_ORIGINAL_COMMAND": command, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        pytest.param(
            "sh", "hostscale: refused 'sh': 'sh' is not a virsh call the autoscaler makes", id="a shell"
        ),
        pytest.param(
            "virsh undefine x",
            "hostscale: refused 'virsh undefine x': 'virsh undefine x' is not a virsh call the autoscaler makes",
            id="virsh undefine",
        ),
        pytest.param(
            "start hs-1-worker-0; rm -rf /",
            "hostscale: refused 'start hs-1-worker-0; rm -rf /': start takes exactly one domain name",
            id="a command appended with a semicolon",
        ),
        pytest.param(
            "",
            "hostscale: refused '': '' is not a virsh call the autoscaler makes",
            id="an interactive login",
        ),
        pytest.param(
            "start 'hs-1-worker-0",
            'hostscale: refused "start \'hs-1-worker-0": No closing quotation',
            id="a quote",
        ),
    ],
)
def test_the_forced_command_refuses_anything_but_the_rules(
    tmp_path: Path, command: str, message: str
) -> None:
    result = forced(tmp_path, command)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (126, message, "")


def test_the_forced_command_refuses_a_settings_file_without_domains(tmp_path: Path) -> None:
    (tmp_path / "virsh-gate.json").write_text('{"domains": "hs-1-worker-0"}')
    result = subprocess.run(
        [sys.executable, virsh_rules.__file__, str(tmp_path / "virsh-gate.json")],
        env={"SSH_ORIGINAL_COMMAND": "list --all"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr.strip()) == (
        2,
        f"hostscale: {tmp_path / 'virsh-gate.json'}: domains must be a list of domain names, got 'hs-1-worker-0'",
    )
