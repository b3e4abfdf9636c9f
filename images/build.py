"""Build hostscale's images on the local Docker engine: `python -m images.build [app|haproxy|postgres ...]`.

Each image is tagged with a digest of its build context (`hostscale/app:3f2a...`), so an unchanged image is
not rebuilt and a changed one never hides behind a stale tag. Builds go through the engine's classic builder
(the Docker SDK's API), which every engine has; BuildKit is not required.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_SKIP = {"__pycache__", ".mypy_cache", ".pytest_cache"}


PYTHON_BUILD_STAGE = ROOT / "images" / "python-build.Dockerfile"


@dataclass(frozen=True)
class ImageSpec:
    name: str
    context: Path
    # A Python image: its Dockerfile follows the shared build stage, which installs from PyPI and so takes
    # build-ca.pem for a TLS-intercepting network.
    python: bool = False

    @property
    def repository(self) -> str:
        return f"hostscale/{self.name}"


IMAGES = {
    "app": ImageSpec("app", ROOT / "app", python=True),
    "autoscaler": ImageSpec("autoscaler", ROOT / "autoscaler", python=True),
    "haproxy": ImageSpec("haproxy", ROOT / "images" / "haproxy"),
    "postgres": ImageSpec("postgres", ROOT / "images" / "postgres"),
    "prometheus": ImageSpec("prometheus", ROOT / "images" / "prometheus"),
    "registry": ImageSpec("registry", ROOT / "images" / "registry"),
    # A second, non-Python sample app for the bring-your-own-image contract (docs/byo-image.md).
    "sample-go": ImageSpec("sample-go", ROOT / "images" / "sample-go"),
}


def default_ca_bundle() -> Path | None:
    """HOSTSCALE_BUILD_CA_BUNDLE names the bundle ("" turns it off); by default builds trust what the host
    trusts, which on a network with its own TLS-intercepting CA is the only bundle that works."""
    configured = os.environ.get("HOSTSCALE_BUILD_CA_BUNDLE")
    if configured is not None:
        return Path(configured) if configured else None
    return SYSTEM_CA_BUNDLE if SYSTEM_CA_BUNDLE.is_file() else None


def _context_files(context: Path) -> Iterator[Path]:
    for path in sorted(context.rglob("*")):
        if path.is_file() and not _SKIP.intersection(path.relative_to(context).parts):
            yield path


def _context_entries(spec: ImageSpec) -> Iterator[tuple[str, bytes, int]]:
    """The build context as (name, content, mode): the folder's files, and for a Python image its Dockerfile
    behind the shared build stage."""
    for path in _context_files(spec.context):
        name, content = path.relative_to(spec.context).as_posix(), path.read_bytes()
        if spec.python and name == "Dockerfile":
            content = PYTHON_BUILD_STAGE.read_bytes() + b"\n" + content
        yield name, content, path.stat().st_mode


def context_digest(spec: ImageSpec) -> str:
    digest = hashlib.sha256()
    for name, content, mode in _context_entries(spec):
        digest.update(f"{name}\0{mode & 0o111}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


def context_tar(spec: ImageSpec, ca_bundle: Path | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content, mode in _context_entries(spec):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode & 0o777
            tar.addfile(info, io.BytesIO(content))
        if spec.python and ca_bundle is not None:
            tar.add(ca_bundle, arcname="build-ca.pem")
    return buffer.getvalue()


def image_tag(spec: ImageSpec) -> str:
    return f"{spec.repository}:{context_digest(spec)}"


def ensure_base_image() -> None:
    subprocess.run([str(ROOT / "scripts" / "seed-base-image")], check=True)


def build(spec: ImageSpec, client: Any = None, ca_bundle: Path | None = None, force: bool = False) -> str:
    """Build one image unless an image with its context digest exists; returns the tag."""
    client = client or docker.from_env()
    tag = image_tag(spec)
    if not force and client.images.list(name=tag):
        return tag
    log: list[str] = []
    stream = client.api.build(
        fileobj=io.BytesIO(context_tar(spec, ca_bundle)),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "stream" in chunk:
            log.append(chunk["stream"])
        if "error" in chunk:
            tail = "".join(log[-30:])
            raise RuntimeError(f"building {tag} failed: {chunk['error'].strip()}\n{tail}")
    client.images.get(tag).tag(spec.repository, "latest")
    return tag


def build_all(names: list[str] | None = None, force: bool = False) -> dict[str, str]:
    ensure_base_image()
    client = docker.from_env()
    ca_bundle = default_ca_bundle()
    return {name: build(IMAGES[name], client, ca_bundle, force) for name in names or list(IMAGES)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", choices=[*IMAGES, []], help="images to build (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    args = parser.parse_args(argv)
    for name, tag in build_all(args.names or None, args.force).items():
        print(f"{name}\t{tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
