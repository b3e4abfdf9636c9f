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


@dataclass(frozen=True)
class ImageSpec:
    name: str
    context: Path
    # Whether the Dockerfile installs from PyPI and so takes build-ca.pem for a TLS-intercepting network.
    takes_ca_bundle: bool = False

    @property
    def repository(self) -> str:
        return f"hostscale/{self.name}"


IMAGES = {
    "app": ImageSpec("app", ROOT / "app", takes_ca_bundle=True),
    "autoscaler": ImageSpec("autoscaler", ROOT / "autoscaler", takes_ca_bundle=True),
    "haproxy": ImageSpec("haproxy", ROOT / "images" / "haproxy"),
    "postgres": ImageSpec("postgres", ROOT / "images" / "postgres"),
    "registry": ImageSpec("registry", ROOT / "images" / "registry"),
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


def context_digest(spec: ImageSpec) -> str:
    digest = hashlib.sha256()
    for path in _context_files(spec.context):
        relative = path.relative_to(spec.context).as_posix()
        digest.update(f"{relative}\0{path.stat().st_mode & 0o111}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def context_tar(spec: ImageSpec, ca_bundle: Path | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in _context_files(spec.context):
            tar.add(path, arcname=path.relative_to(spec.context).as_posix())
        if spec.takes_ca_bundle and ca_bundle is not None:
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
