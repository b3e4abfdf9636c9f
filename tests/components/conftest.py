"""Fixtures of the component tests. (A recorded program sees no live app service unless a test says otherwise:
harness/recording.py record_program.)"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from testbed.swarm import swarm_manager


@pytest.fixture
def swarm(docker_client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    with swarm_manager(docker_client) as client:
        yield client
