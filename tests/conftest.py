"""Fixtures shared by every test that runs the real images on the real Docker engine."""

from __future__ import annotations

import os

# Importing locust monkey-patches the whole process for gevent, which breaks ssl and asyncio in the other
# tests. The tests import locust only for its data types; load runs are separate processes.
os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from images.build import build_all
from testbed.containers import TestBed


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    # No skip when the engine is missing: every test here is about real containers, so a missing engine is
    # a broken set-up that must fail loudly (.ci/run starts dockerd).
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """The project's images, built (or found by their context digest) once per test session."""
    return build_all()


@pytest.fixture
def testbed(docker_client: docker.DockerClient, images: dict[str, str], tmp_path: Path) -> Iterator[TestBed]:
    bed = TestBed(docker_client, images, tmp_path)
    yield bed
    bed.teardown()


@pytest.fixture(scope="module")
def module_testbed(
    docker_client: docker.DockerClient, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestBed]:
    bed = TestBed(docker_client, images, tmp_path_factory.mktemp("testbed"))
    yield bed
    bed.teardown()
