"""The manager's image registry: where worker VMs that cannot reach a public registry pull the app image.

The same arrangement an air-gapped host uses, in two containers on one data volume:

- the **push** registry listens on loopback only: the host's engine pushes there (Docker trusts plain-HTTP
  registries on 127.0.0.0/8 without configuration), and nothing on the VM network can reach it;
- the **pull** registry serves the same storage read-only (Distribution's maintenance.readonly, and the
  volume mounted read-only) on the VM network's gateway, where the workers pull (their daemon.json lists it
  as an insecure registry). A VM, or a host that routes to that network, can read images but not overwrite
  `hostscale/app:<tag>`.

Services reference the image by digest (`<pull>/hostscale/app:<tag>@sha256:...`): a worker runs exactly the
bytes the host pushed, even over plain HTTP, and a tag moved later changes nothing that runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from pulumi_command import local

from components.settings import VmPoolConfig

REGISTRY_PORT = 5000  # inside the containers
DATA = "/var/lib/docker-registry"
READ_ONLY_CONFIG = "/etc/docker/registry/read-only.yml"


@dataclass
class RegistryArgs:
    name_prefix: str
    image: str
    settings: VmPoolConfig
    depends_on: list[pulumi.Resource]


class Registry(pulumi.ComponentResource):
    pull_address: str  # where workers pull from: <gateway>:<port>, read-only
    push_address: str  # where the host pushes to: 127.0.0.1:<port>
    container: docker.Container  # the push registry
    pull_container: docker.Container

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Registry", name, None, opts)
        s = args.settings
        self.pull_address = f"{s.gateway}:{s.registry_port}"
        self.push_address = f"127.0.0.1:{s.registry_port}"
        data = docker.Volume(
            f"{name}-data", name=f"{args.name_prefix}-registry", opts=pulumi.ResourceOptions(parent=self)
        )
        # Fixed names and host ports: a replacement cannot be created next to the old container (see autoscaler.py).
        after = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, delete_before_replace=True)
        self.container = docker.Container(
            f"{name}-registry",
            name=f"{args.name_prefix}-registry",
            image=args.image,
            ports=[
                docker.ContainerPortArgs(internal=REGISTRY_PORT, external=s.registry_port, ip="127.0.0.1")
            ],
            mounts=[docker.ContainerMountArgs(target=DATA, source=data.name, type="volume")],
            restart="unless-stopped",
            opts=after,
        )
        self.pull_container = docker.Container(
            f"{name}-pull-registry",
            name=f"{args.name_prefix}-registry-pull",
            image=args.image,
            command=["docker-registry", "serve", READ_ONLY_CONFIG],
            ports=[docker.ContainerPortArgs(internal=REGISTRY_PORT, external=s.registry_port, ip=s.gateway)],
            mounts=[docker.ContainerMountArgs(target=DATA, source=data.name, type="volume", read_only=True)],
            restart="unless-stopped",
            opts=after,
        )
        self.register_outputs({"pull_address": self.pull_address})

    def publish(self, name: str, image: str, depends_on: list[pulumi.Resource]) -> pulumi.Output[str]:
        """Push a local image; return the reference workers pull it by: the pull registry's, with its digest."""
        repository_tag = _without_registry(image)
        pushed = f"{self.push_address}/{repository_tag}"
        push = local.Command(
            f"{name}-publish",
            # The registry takes a moment to listen after its container starts. The last push prints the
            # digest the registry stored for exactly this push ("<tag>: digest: sha256:... size: N"): stdout.
            create=(
                f"docker tag {image} {pushed} && for i in $(seq 30); do "
                f"docker push -q {pushed} >/dev/null 2>&1 && break; sleep 1; done && docker push {pushed} "
                "| sed -n 's/.*digest: \\(sha256:[0-9a-f]\\{64\\}\\).*/\\1/p'"
            ),
            triggers=[image],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.container, self.pull_container, *depends_on]
            ),
        )
        return push.stdout.apply(lambda digest: _pinned(f"{self.pull_address}/{repository_tag}", digest))


def _pinned(reference: str, digest: str) -> str:
    if not digest.startswith("sha256:") or len(digest) != len("sha256:") + 64:
        raise ValueError(f"the push of {reference} reported no digest, got {digest!r}")
    return f"{reference}@{digest}"


def _without_registry(image: str) -> str:
    """hostscale/app:1 -> hostscale/app:1; registry.example:5000/team/app:1 -> team/app:1 (Docker's rule: a
    first path component with a dot or a colon, or localhost, names a registry)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    return image
