"""The registry image as the lab stack runs it: a push registry on loopback and a read-only pull registry on
the same storage (components/registry.py). A push to the pull endpoint is refused, by the registry and by
the read-only volume; an image pushed on loopback is pulled from it by digest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import httpx
import pytest

from components.registry import DATA, READ_ONLY_CONFIG, REGISTRY_PORT
from testbed.containers import TestBed
from testbed.ports import free_loopback_port
from testbed.waiting import wait_for


@dataclass
class Registries:
    push: str  # 127.0.0.1:<port>
    pull: str
    repository: str  # this test's own repository name
    tagged: list[str]  # the references the test added to the engine, removed after it

    def tag(self, client: docker.DockerClient, image: str, reference: str) -> None:
        assert client.images.get(image).tag(reference)
        self.tagged.append(reference)


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/v2/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def registries(testbed: TestBed) -> Iterator[Registries]:
    data = testbed.volume("registry-data")
    push, pull = f"127.0.0.1:{free_loopback_port()}", f"127.0.0.1:{free_loopback_port()}"
    testbed.run(
        "registry",
        "registry",
        ports={f"{REGISTRY_PORT}/tcp": ("127.0.0.1", int(push.rsplit(":", 1)[1]))},
        volumes={data: {"bind": DATA, "mode": "rw"}},
    )
    testbed.run(
        "registry",
        "registry-pull",
        command=["docker-registry", "serve", READ_ONLY_CONFIG],
        ports={f"{REGISTRY_PORT}/tcp": ("127.0.0.1", int(pull.rsplit(":", 1)[1]))},
        volumes={data: {"bind": DATA, "mode": "ro"}},
    )
    wait_for("both registries", lambda: _answers(push) and _answers(pull), 30)
    found = Registries(push, pull, f"hs-{testbed.run_id}/probe", [])
    yield found
    for reference in found.tagged:  # only these: the image itself stays in the engine's cache
        with contextlib.suppress(docker.errors.ImageNotFound):  # a digest goes with the repository's last tag
            testbed.client.images.remove(reference, noprune=True)


def _push(client: docker.DockerClient, reference: str) -> list[str]:
    """docker push; the errors it reported."""
    repository, tag = reference.rsplit(":", 1)
    events = client.images.push(repository, tag, stream=True, decode=True)
    return [event["error"] for event in events if "error" in event]


def test_a_push_to_the_pull_endpoint_is_refused_and_an_image_pushed_on_loopback_is_pulled_there_by_digest(
    testbed: TestBed, registries: Registries
) -> None:
    client = testbed.client
    probe = client.images.get(testbed.images["registry"])
    pushed = f"{registries.push}/{registries.repository}:1"
    registries.tag(client, probe.id, pushed)
    assert _push(client, pushed) == []
    [digest] = [
        d.split("@", 1)[1]
        for d in client.images.get(pushed).attrs["RepoDigests"]
        if d.startswith(registries.push)
    ]

    refused = f"{registries.pull}/{registries.repository}:overwritten"
    registries.tag(client, probe.id, refused)
    errors = _push(client, refused)
    assert errors, "a push to the read-only endpoint must fail"
    assert "HTTP 405" in errors[-1], errors  # Distribution: "Method not allowed" for any write when read-only
    with httpx.Client(timeout=5) as http:
        upload = http.post(f"http://{registries.pull}/v2/{registries.repository}/blobs/uploads/")
        assert upload.status_code == 405, upload.text
        assert (
            http.post(f"http://{registries.push}/v2/{registries.repository}/blobs/uploads/").status_code
            == 202
        )
        tags = http.get(f"http://{registries.pull}/v2/{registries.repository}/tags/list").json()["tags"]
        assert tags == ["1"], "the refused push left no tag"

    by_digest = f"{registries.pull}/{registries.repository}@{digest}"
    pulled = client.images.pull(by_digest)
    registries.tagged.append(by_digest)
    assert pulled.id == probe.id
