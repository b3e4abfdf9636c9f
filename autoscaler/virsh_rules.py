"""The virsh calls the autoscaler makes, on this stack's VM domains only.

libvirt's socket is root on the host (a domain that boots with the host's disk attached is enough), so the
autoscaler does not hold it. It may read the state of its domains and power them on and off:

    list --all [--managed-save]  (the output keeps only the declared domains)
    domstate|dominfo|start|managedsave|shutdown|destroy|domtime DOMAIN
    domtime DOMAIN --sync        (the guest clock set from the host's after a restore, through the guest agent)

and nothing else: no define, undefine, attach-device, edit, console, no other domain. These rules run in two
places: in the gate on the host (autoscaler/gate.py), in front of the local libvirt socket; and as the forced
command of the autoscaler's SSH key on a remote hypervisor, where sshd runs

    python3 /usr/local/lib/hostscale/virsh_rules.py /etc/hostscale/virsh-gate.json

for every connection of that key, whatever command the client asked for (it is in SSH_ORIGINAL_COMMAND).
Standard library only, so the remote host needs nothing but python3 and virsh.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

VERBS = frozenset({"domstate", "dominfo", "start", "managedsave", "shutdown", "destroy", "domtime"})
# A restored guest's clock is where it was at the park: set it from the host's, never to a time of the caller's
# choosing (no --time, no --now).
CLOCK_SYNC = "--sync"
# Every domain's state; with --managed-save a parked domain reads "saved" (autoscaler/libvirt.py states()).
LISTS = (["list", "--all"], ["list", "--all", "--managed-save"])
LOCAL_URI = "qemu:///system"
# The name prefix's grammar (components/config.py) and a suffix: what a declared domain name can be.
DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Refused(Exception):
    """A virsh call the rules do not allow; the message says why."""


def read_domains(path: Path) -> frozenset[str]:
    """{"domains": ["hs-worker-0", ...]}: the settings file, never argv (a forced command's argv is fixed)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    domains = raw.get("domains") if isinstance(raw, dict) else None
    if not isinstance(domains, list) or not all(isinstance(d, str) and DOMAIN.match(d) for d in domains):
        raise ValueError(f"{path}: domains must be a list of domain names, got {domains!r}")
    return frozenset(domains)


def allowed(args: Sequence[str], domains: frozenset[str]) -> list[str]:
    """The virsh arguments to run for an allowed call; Refused for anything else."""
    words = list(args)
    if words in LISTS:
        return words
    clock_sync = len(words) == 3 and words[0] == "domtime" and words[2] == CLOCK_SYNC
    if (len(words) == 2 and words[0] in VERBS) or clock_sync:
        if words[1] not in domains:
            raise Refused(f"{words[1]!r} is not one of this stack's VM domains")
        return words
    if words[:1] == ["domtime"]:
        raise Refused(f"domtime takes one domain name and at most {CLOCK_SYNC}")
    if words and words[0] in VERBS:
        raise Refused(f"{words[0]} takes exactly one domain name")
    raise Refused(f"{' '.join(words)[:80]!r} is not a virsh call the autoscaler makes")


def visible(args: Sequence[str], output: str, domains: frozenset[str]) -> str:
    """`list --all` shows every domain of the host: pass on the declared ones only."""
    if list(args) not in LISTS:
        return output
    kept = []
    for line in output.splitlines():
        fields = line.split(maxsplit=2)  # " 1   hs-worker-0   running", " -   other   shut off"
        if len(fields) == 3 and fields[1] in domains:
            kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


def virsh_argv(args: Sequence[str], uri: str = LOCAL_URI) -> list[str]:
    return ["virsh", "-q", "-c", uri, *args]


def forced_command(argv: Sequence[str]) -> int:
    """sshd's forced command: the requested command is SSH_ORIGINAL_COMMAND; an interactive login has none."""
    if len(argv) != 2:
        print("usage: virsh_rules.py SETTINGS_FILE (as the forced command of an SSH key)", file=sys.stderr)
        return 2
    try:
        domains = read_domains(Path(argv[1]))
    except ValueError as exc:
        print(f"hostscale: {exc}", file=sys.stderr)
        return 2
    requested = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        args = allowed(shlex.split(requested), domains)
    except (Refused, ValueError) as exc:
        print(f"hostscale: refused {requested[:80]!r}: {exc}", file=sys.stderr)
        return 126
    result = subprocess.run(virsh_argv(args), capture_output=True, text=True, check=False)  # noqa: S603
    sys.stdout.write(visible(args, result.stdout, domains))
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(forced_command(sys.argv))
