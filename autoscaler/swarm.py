"""Read and set a Swarm service's replica count through the Docker engine API."""

from __future__ import annotations

from typing import Any


class SwarmService:
    """The actuator: the service's desired replica count is the autoscaler's only write."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def _service(self) -> Any:
        return self.client.services.get(self.name)

    def get(self) -> int:
        mode = self._service().attrs["Spec"]["Mode"]
        if "Replicated" not in mode:
            raise ValueError(f"service {self.name!r} is not replicated: {mode}")
        return int(mode["Replicated"].get("Replicas", 1))

    def set(self, count: int) -> None:
        """Change the replica count and nothing else.

        Not docker-py's Service.scale(): it rebuilds the spec from its own defaults (restart policy, stop
        grace period), and any other difference makes Swarm roll *every* task, killing the replicas that
        carry the load. The spec goes back exactly as read, with the service's version, so a concurrent
        update (pulumi up) makes this call fail rather than be overwritten; the next tick reads again.
        """
        service = self._service()
        spec = service.attrs["Spec"]
        spec["Mode"]["Replicated"]["Replicas"] = count
        api = self.client.api
        url = f"{api.base_url}/v{api.api_version}/services/{service.id}/update"
        response = api.post(url, params={"version": service.version}, json=spec)
        if response.status_code >= 400:
            raise RuntimeError(
                f"scaling {self.name} to {count}: {response.status_code} {response.text.strip()}"
            )

    def running(self) -> int:
        tasks = self._service().tasks(filters={"desired-state": "running"})
        return sum(1 for task in tasks if task["Status"]["State"] == "running")
