"""Images built on the host by the project's own builder (scripts/build-images), as Pulumi resources.

The tag is a digest of the build context, computed from the files when the program runs, so a preview shows
the exact image a change will deploy, and an unchanged image is neither rebuilt nor redeployed. The build
itself is a pulumi-command step: it runs on `pulumi up` only, with the builder's base-image seeding and
optional CA bundle (see the README), which pulumi-docker's Image cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import local

from images.build import IMAGES, ROOT, image_tag


@dataclass
class BuiltImageArgs:
    image: str  # a name from images.build.IMAGES: app, haproxy, postgres, autoscaler


class BuiltImage(pulumi.ComponentResource):
    tag: str  # known at preview: hostscale/<image>:<context digest>
    build: local.Command

    def __init__(self, name: str, args: BuiltImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:BuiltImage", name, None, opts)
        self.tag = image_tag(IMAGES[args.image])
        self.build = local.Command(
            f"{name}-build",
            create=f"./scripts/build-images {args.image}",
            dir=str(ROOT),
            triggers=[self.tag],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"tag": self.tag})
