"""The manager's image registry: where worker VMs that cannot reach a public registry pull the app image.

The same arrangement an air-gapped host uses. The registry listens on loopback (the host's engine pushes there:
Docker trusts plain-HTTP registries on 127.0.0.0/8 without configuration) and on the VM network's gateway,
where the workers pull it (their daemon.json lists it as an insecure registry: it is reachable only from the
host's private VM network, or from the other hosts' routed VM networks). Same repository, same tag, two
addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from pulumi_command import local

from components.settings import VmPoolConfig

REGISTRY_PORT = 5000  # inside the container


@dataclass
class RegistryArgs:
    name_prefix: str
    image: str
    settings: VmPoolConfig
    depends_on: list[pulumi.Resource]


class Registry(pulumi.ComponentResource):
    pull_address: str  # where workers pull from: <gateway>:<port>
    push_address: str  # where the host pushes to: 127.0.0.1:<port>
    container: docker.Container

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Registry", name, None, opts)
        s = args.settings
        self.pull_address = f"{s.gateway}:{s.registry_port}"
        self.push_address = f"127.0.0.1:{s.registry_port}"
        data = docker.Volume(
            f"{name}-data", name=f"{args.name_prefix}-registry", opts=pulumi.ResourceOptions(parent=self)
        )
        self.container = docker.Container(
            f"{name}-registry",
            name=f"{args.name_prefix}-registry",
            image=args.image,
            ports=[
                docker.ContainerPortArgs(internal=REGISTRY_PORT, external=s.registry_port, ip="127.0.0.1"),
                docker.ContainerPortArgs(internal=REGISTRY_PORT, external=s.registry_port, ip=s.gateway),
            ],
            mounts=[
                docker.ContainerMountArgs(target="/var/lib/docker-registry", source=data.name, type="volume")
            ],
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.register_outputs({"pull_address": self.pull_address})

    def publish(self, name: str, image: str, depends_on: list[pulumi.Resource]) -> pulumi.Output[str]:
        """Push a local image and return the reference workers pull it by."""
        repository_tag = _without_registry(image)
        pushed = f"{self.push_address}/{repository_tag}"
        push = local.Command(
            f"{name}-publish",
            # The registry takes a moment to listen after its container starts.
            create=(
                f"docker tag {image} {pushed} && for i in $(seq 30); do "
                f"docker push -q {pushed} >/dev/null 2>&1 && exit 0; sleep 1; done; docker push {pushed}"
            ),
            triggers=[image],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.container, *depends_on]),
        )
        return push.stdout.apply(lambda _: f"{self.pull_address}/{repository_tag}")


def _without_registry(image: str) -> str:
    """hostscale/app:1 -> hostscale/app:1; registry.example:5000/team/app:1 -> team/app:1 (Docker's rule: a
    first path component with a dot or a colon, or localhost, names a registry)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    return image
