"""Swarm node access through the Docker API: worker nodes by hostname (a VM's domain name), the tasks that may
still run on one, and its availability."""

from __future__ import annotations

from typing import Any

FINISHED = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})


def node_hostname(attrs: dict[str, Any]) -> str | None:
    """A node that has just joined has not reported its description yet."""
    hostname = attrs.get("Description", {}).get("Hostname")
    return str(hostname) if hostname else None


class SwarmNodes:
    """Worker nodes by hostname (the VM's domain name)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def find(self, hostname: str) -> Any | None:
        nodes = [n for n in self.client.nodes.list() if node_hostname(n.attrs) == hostname]
        # A re-joined VM leaves its old node behind as down: the ready one, else the newest, is the VM.
        nodes.sort(key=lambda n: (n.attrs["Status"]["State"] == "ready", n.attrs["CreatedAt"]))
        return nodes[-1] if nodes else None

    def tasks_on(self, node: Any) -> int:
        """Tasks whose container may still run there, whatever Swarm wants of them: a drained task keeps
        answering its in-flight requests until it has stopped, so it counts until then (freezing the VM earlier
        would leave those requests hanging)."""
        tasks = self.client.api.tasks(filters={"node": node.id})
        return sum(1 for t in tasks if t["Status"]["State"] not in FINISHED)

    def service_tasks_on(self, node: Any, service: str) -> list[dict[str, Any]]:
        """The service's tasks on the node that Swarm still wants running (desired state `running`): a
        drained node's tasks leave this list as soon as Swarm has asked them to stop."""
        tasks = self.client.api.tasks(
            filters={"node": node.id, "service": service, "desired-state": "running"}
        )
        return [t for t in tasks if t["Status"]["State"] not in FINISHED]

    def set_availability(self, hostname: str, availability: str) -> None:
        node = self.find(hostname)
        if node is None:
            raise RuntimeError(f"no Swarm node named {hostname}")
        spec = dict(node.attrs["Spec"], Availability=availability)
        node.update(spec)
