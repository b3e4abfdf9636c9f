"""The engine as a Swarm manager for a test: one made here is left again afterwards, one that was there stays."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker


@contextlib.contextmanager
def swarm_manager(client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    was_manager = bool(client.info()["Swarm"].get("ControlAvailable"))
    if not was_manager:
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield client
    finally:
        if not was_manager:
            client.swarm.leave(force=True)
