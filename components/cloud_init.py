"""cloud-init user-data for a worker VM: a pure function of typed settings.

The VM boots, starts Docker and joins the Swarm as a worker. The join token arrives in a root-only file that
is deleted once used, never on a command line (which `ps` and cloud-init's logs would show).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import yaml

TOKEN_FILE = "/run/hostscale/swarm-join-token"  # noqa: S105 (a path, not a token)


@dataclass(frozen=True)
class WorkerSettings:
    hostname: str
    ssh_public_key: str
    manager_addr: str  # the host's address on the VM network: the Swarm manager
    join_token: str
    # Engine labels, usable in placement constraints as engine.labels.<key> (a worker cannot label its node).
    labels: dict[str, str] = field(default_factory=dict)
    insecure_registries: tuple[str, ...] = ()  # the manager's local registry, for hosts without internet
    # Pulled before joining, so a joined worker can start the app at once (and a warm VM's power-on never
    # waits for a pull: under emulation, pulling the app image takes minutes).
    prefetch: tuple[str, ...] = ()


def render_user_data(s: WorkerSettings) -> str:
    daemon = {"labels": [f"{k}={v}" for k, v in sorted(s.labels.items())]}
    if s.insecure_registries:
        daemon["insecure-registries"] = list(s.insecure_registries)
    # The manager may not answer yet (or the VM's address may come late): retry for up to ten minutes.
    join = (
        "for attempt in $(seq 120); do"
        " docker info -f '{{.Swarm.LocalNodeState}}' | grep -qx active && exit 0;"
        f' docker swarm join --token "$(cat {TOKEN_FILE})" {s.manager_addr}:2377 && exit 0;'
        " sleep 5; done; exit 1"
    )
    doc = {
        "hostname": s.hostname,
        "locale": False,  # minimal images have no locales: generating one fails the boot's config stage
        "users": [
            {
                "name": "hostscale",
                "groups": ["docker"],
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "ssh_authorized_keys": [s.ssh_public_key],
            }
        ],
        "write_files": [
            {
                "path": "/etc/docker/daemon.json",
                "content": json.dumps(daemon, indent=2) + "\n",
                "permissions": "0644",
            },
            {"path": TOKEN_FILE, "content": s.join_token + "\n", "permissions": "0600"},
        ],
        "runcmd": [
            ["systemctl", "enable", "docker"],
            ["systemctl", "restart", "docker"],  # pick up daemon.json written after Docker's first start
            *(["sh", "-c", _pull(image)] for image in s.prefetch),
            ["sh", "-c", join],
            ["rm", "-f", TOKEN_FILE],
        ],
    }
    body: str = yaml.safe_dump(doc, sort_keys=False, width=1000)
    return "#cloud-config\n" + body


def _pull(image: str) -> str:
    # The registry may still be starting when the VM boots: retry for up to ten minutes.
    return f"for attempt in $(seq 120); do docker pull -q {image} && exit 0; sleep 5; done; exit 1"
