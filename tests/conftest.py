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
from playwright.sync_api import Browser

from images.build import build_all
from testbed.browser import headless_chromium
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
def browser() -> Iterator[Browser]:
    """The host's headless Chromium (testbed/browser.py), one per module: Playwright's sync API runs an event
    loop of its own, which should not outlive the module's tests."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def module_testbed(
    docker_client: docker.DockerClient, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestBed]:
    bed = TestBed(docker_client, images, tmp_path_factory.mktemp("testbed"))
    yield bed
    bed.teardown()


# Tests that need the engine are marked by the fixtures they use, so `-m "not docker"` selects the unit tests
# (what scripts/prove-debian13 runs in a Debian 13 root filesystem, which has no engine).
ENGINE_FIXTURES = frozenset({"docker_client"})
# Tests that drive a page in the host's Chromium are marked `browser`: the Debian 13 proof runs the unit tests in
# a root filesystem that has no browser, and leaves them out (scripts/prove-debian13).
BROWSER_FIXTURES = frozenset({"browser"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a page in the host's headless Chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
