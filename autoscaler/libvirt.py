"""libvirt access: `virsh` against one hypervisor's URI.

The local hypervisor is reached through the gate (autoscaler/gate.py), which holds the libvirt socket and runs
only the calls autoscaler/virsh_rules.py allows; HOSTSCALE_LIBVIRT_GATE names its socket. A remote one is
reached over SSH with the autoscaler's own key, whose forced command on that host runs the same rules
(docs/security.md): `forced_command`. The program and the harness, which run as the operator on the host, use
virsh's own qemu+ssh transport with the operator's key. Without a gate (the program, or a development run on
the host itself), virsh is run directly.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
from urllib.parse import urlsplit

GATE_ENV = "HOSTSCALE_LIBVIRT_GATE"
LOCAL_URI = "qemu:///system"


class Virsh:
    def __init__(self, uri: str, forced_command: bool = False) -> None:
        self.uri = uri
        self.forced_command = forced_command
        self.gate = os.environ.get(GATE_ENV) if uri == LOCAL_URI else None

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        if self.gate is not None:
            returncode, stdout, stderr = self._through_gate(self.gate, args, timeout)
        else:
            result = subprocess.run(
                self.argv(args), capture_output=True, text=True, check=False, timeout=timeout
            )
            returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
        if check and returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)}: {stderr.strip() or stdout.strip()}")
        return stdout.strip()

    def argv(self, args: tuple[str, ...]) -> list[str]:
        parts = urlsplit(self.uri)
        if parts.scheme != "qemu+ssh" or not self.forced_command:
            return ["virsh", "-q", "-c", self.uri, *args]
        # The remote key's forced command runs virsh on that host's own libvirt with these words, once the
        # rules allow them: a qemu+ssh tunnel would speak libvirt's whole RPC protocol past any filter.
        # ssh_config (components/autoscaler.py) gives the key, the pinned host key and the shared session.
        destination = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
        port = ["-p", str(parts.port)] if parts.port else []
        return ["ssh", *port, "--", destination, *args]

    @staticmethod
    def _through_gate(gate: str, args: tuple[str, ...], timeout: float) -> tuple[int, str, str]:
        connection = _UnixHTTPConnection(gate, timeout + 5)
        try:
            body = json.dumps({"args": list(args), "timeout": timeout})
            connection.request("POST", "/virsh", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        finally:
            connection.close()
        try:
            answer = json.loads(text)
        except ValueError:
            return 1, "", text
        if response.status != 200:
            return 1, "", str(answer.get("message", text))
        return int(answer["returncode"]), str(answer["stdout"]), str(answer["stderr"])

    def state(self, domain: str, timeout: float = 600) -> str:
        return self("domstate", domain, timeout=timeout)  # "running", "shut off", "paused", ...

    def states(self, timeout: float) -> dict[str, str]:
        """Every domain of this hypervisor and its state, in one call: `virsh list --all --managed-save`, where a
        shut-off domain with a managed-save image (a warm one) reads "saved"."""
        states = {}
        for line in self("list", "--all", "--managed-save", timeout=timeout).splitlines():
            fields = line.split(maxsplit=2)  # " 1   test   running", " -   w2   shut off"
            if len(fields) == 3:
                states[fields[1]] = fields[2]
        return states


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to the gate's unix socket with the standard library: the program imports this module too, and its
    environment has no HTTP client library (tests/hosts/test_dependencies.py)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("gate", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock
