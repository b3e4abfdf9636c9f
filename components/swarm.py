"""Swarm bootstrap on the host (the manager) and the two overlay networks of the request path.

pulumi-docker has no swarm init/join resource, so the bootstrap is a pulumi-command step that initialises
the swarm only when the engine is not already a manager. The worker join token is read, and rotated, by the
VM pool that uses it (components/hypervisor.py): the local stack has no worker and never reads it.
HAProxy joins `web` only; Postgres joins `db` only; the app joins both, so HAProxy can never reach Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from pulumi_command import local

# The node label the manager sets on a worker VM's node, by node ID, once that node proved to be the VM
# (components/vm_join.py). App tasks, and with them the database secret, go only to nodes that carry it: a node
# that joins with a leaked token gets neither. A worker cannot set a node label (engine labels it can).
ADMITTED_LABEL = "dev.hostscale.admitted"
ADMITTED_CONSTRAINT = f"node.labels.{ADMITTED_LABEL}==true"


@dataclass
class SwarmArgs:
    name_prefix: str
    advertise_addr: str  # where workers reach the manager (2377/tcp, 7946/tcp+udp, 4789/udp)


class Swarm(pulumi.ComponentResource):
    init: local.Command  # Swarm objects (secrets, services) can be created once this has run
    web_network: docker.Network
    db_network: docker.Network

    def __init__(self, name: str, args: SwarmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Swarm", name, None, opts)
        addr = args.advertise_addr
        self.init = init = local.Command(
            f"{name}-init",
            create=(
                "if [ \"$(docker info -f '{{.Swarm.LocalNodeState}}')\" = active ]; then"
                " now=$(docker info -f '{{.Swarm.NodeAddr}}');"
                f' [ "$now" = {addr} ] || {{ echo "this engine is already in a Swarm that advertises $now,'
                f' not {addr}: set hostscale:host.advertise_addr to $now, or leave that Swarm" >&2; exit 1; }};'
                f" else docker swarm init --advertise-addr {addr} --listen-addr {addr}:2377 >/dev/null; fi"
            ),
            # No delete: leaving the swarm would take every other service on this host with it.
            opts=pulumi.ResourceOptions(parent=self),
        )
        after_init = pulumi.ResourceOptions(parent=self, depends_on=[init])
        labels = [docker.NetworkLabelArgs(label="dev.hostscale.stack", value=args.name_prefix)]
        self.web_network = docker.Network(
            f"{name}-web",
            name=f"{args.name_prefix}-web",
            driver="overlay",
            attachable=True,  # HAProxy runs as a plain container (published on loopback) and attaches here
            labels=labels,
            opts=after_init,
        )
        self.db_network = docker.Network(
            f"{name}-db",
            name=f"{args.name_prefix}-db",
            driver="overlay",
            attachable=False,  # services only: no stray container can join the database's network
            labels=labels,
            opts=after_init,
        )
        self.register_outputs({"web_network": self.web_network.name, "db_network": self.db_network.name})
