"""cloud-init user-data for a worker VM: a pure function of typed settings.

The VM boots, starts Docker and joins the Swarm as a worker. The join token arrives in a root-only file on a
tmpfs, goes from there into the Engine API's request body (components/guest_swarm_join.py), never onto a
command line (which `ps`, /proc and cloud-init's logs would show), and is deleted once used, with cloud-init's
own copies of the user-data. The seed ISO keeps it, but the manager rotates the token once the workers have
joined (components/hypervisor.py), so what is left there no longer admits anyone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TOKEN_FILE = "/run/hostscale/swarm-join-token"  # noqa: S105 (a path, not a token)
JOIN_SCRIPT = "/usr/local/lib/hostscale/swarm-join.py"
# Where cloud-init keeps the user-data it ran: its text, its processed form, its pickled datasource cache (a
# cache: cloud-init reads the seed again at the next boot and, the instance id unchanged, reruns nothing).
CLOUD_INIT_COPIES = (
    "/var/lib/cloud/instance/user-data.txt",
    "/var/lib/cloud/instance/user-data.txt.i",
    "/var/lib/cloud/instance/obj.pkl",
)


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
            {"path": JOIN_SCRIPT, "content": join_script_source(), "permissions": "0700"},
        ],
        "runcmd": [
            ["systemctl", "enable", "docker"],
            ["systemctl", "restart", "docker"],  # pick up daemon.json written after Docker's first start
            *(["sh", "-c", _pull(image)] for image in s.prefetch),
            ["python3", JOIN_SCRIPT, f"{s.manager_addr}:2377", TOKEN_FILE],
            # Runs whether the join worked or not (runcmd goes on after a failed command).
            ["rm", "-f", TOKEN_FILE, *CLOUD_INIT_COPIES],
        ],
    }
    body: str = yaml.safe_dump(doc, sort_keys=False, width=1000)
    return "#cloud-config\n" + body


def join_script_source() -> str:
    return (Path(__file__).parent / "guest_swarm_join.py").read_text()


def _pull(image: str) -> str:
    # The registry may still be starting when the VM boots: retry for up to ten minutes.
    return f"for attempt in $(seq 120); do docker pull -q {image} && exit 0; sleep 5; done; exit 1"
