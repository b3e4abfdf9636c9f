"""Image builds: content-addressed tags, the optional CA bundle kept out of the final image, and the app's
hash-pinned requirements in step with uv.lock."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from images.build import IMAGES, PYTHON_BUILD_STAGE, ROOT, ImageSpec, context_digest, context_tar


def test_context_digest_changes_with_content_and_ignores_caches(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    spec = ImageSpec("probe", tmp_path)
    first = context_digest(spec)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert context_digest(spec) == first, "bytecode caches must not change the tag"
    (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL x=1\n")
    assert context_digest(spec) != first


def test_a_python_image_builds_behind_the_shared_build_stage(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY --from=build /opt/venv /opt/venv\n")
    python, plain = ImageSpec("probe", tmp_path, python=True), ImageSpec("probe", tmp_path)
    with tarfile.open(fileobj=io.BytesIO(context_tar(python, None))) as tar:
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert dockerfile == PYTHON_BUILD_STAGE.read_text() + "\n" + (tmp_path / "Dockerfile").read_text()
    assert "FROM debian:bookworm-slim AS build" in dockerfile
    with tarfile.open(fileobj=io.BytesIO(context_tar(plain, None))) as tar:
        assert tar.extractfile("Dockerfile").read() == (tmp_path / "Dockerfile").read_bytes()  # type: ignore[union-attr]
    # The shared stage is part of what the tag digests: editing it rebuilds every Python image.
    assert context_digest(python) != context_digest(plain)


def test_ca_bundle_goes_only_into_contexts_that_take_it(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    for name, spec in IMAGES.items():
        with tarfile.open(fileobj=io.BytesIO(context_tar(spec, bundle))) as tar:
            assert ("build-ca.pem" in tar.getnames()) == spec.python, name


@pytest.mark.parametrize("name", [name for name, spec in IMAGES.items() if spec.python])
def test_image_holds_no_trace_of_the_build_ca(
    name: str, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    output = docker_client.containers.run(
        images[name],
        ["-c", "find / -xdev -name 'build-ca*' 2>/dev/null; echo done"],
        entrypoint="sh",
        remove=True,
    )
    assert output == b"done\n"
    history = " ".join(
        str(layer.get("CreatedBy", "")) for layer in docker_client.images.get(images[name]).history()
    )
    assert "build-ca" not in history
    assert "PIP_CERT" not in history


@pytest.mark.parametrize("group", ["app", "autoscaler"])
def test_image_requirements_match_the_lock_file(group: str) -> None:
    exported = subprocess.run(
        [
            "uv",
            "export",
            "--frozen",
            "--only-group",
            group,
            "--format",
            "requirements-txt",
            "--no-emit-project",
            "--no-annotate",
            "--quiet",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    shipped = (ROOT / group / "requirements.txt").read_text()
    body = [line for line in shipped.splitlines() if not line.startswith("#")]
    assert [line for line in exported.splitlines() if not line.startswith("#")] == body, (
        f"{group}/requirements.txt is stale: regenerate it with the command at its top"
    )
