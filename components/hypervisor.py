"""Every libvirt resource of the project lives here (docs/architecture.md: a later move to the newer provider stays
local): each hypervisor host's storage pool, VM network and base image, and the pool of worker VMs.

Two components, because the Swarm sits between them: the manager advertises on its own host's VM network
gateway (so the networks exist first), and the VMs' cloud-init carries the Swarm's join token (so they come
after). With several hosts, one Hypervisor per host, each with its own provider; the VmPool puts each VM on the
host components/spread.py chose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_libvirt as libvirt
from pulumi_command import local

from components.cloud_init import WorkerSettings, render_user_data
from components.settings import HypervisorHostConfig, VmPoolConfig
from images.build import ROOT

DISK_BYTES = 20 * 2**30

# Software emulation (domain type qemu) gives each guest a 1 GiB translation cache by default: 256 MiB halves
# the qemu process's memory with no visible slowdown of these workers. Applied to the provider's domain XML.
TCG_CACHE_XSLT = """<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output omit-xml-declaration="yes" indent="yes"/>
  <xsl:template match="node()|@*">
    <xsl:copy><xsl:apply-templates select="node()|@*"/></xsl:copy>
  </xsl:template>
  <xsl:template match="/domain/features">
    <xsl:copy>
      <xsl:apply-templates select="node()|@*"/>
      <tcg><tb-cache unit="MiB">256</tb-cache></tcg>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
"""


@dataclass
class HypervisorArgs:
    name_prefix: str
    host: HypervisorHostConfig  # its URI, VM network and budget
    settings: VmPoolConfig  # what every host shares: the base image, the storage pool's path


class Hypervisor(pulumi.ComponentResource):
    host: HypervisorHostConfig
    provider: libvirt.Provider
    pool: libvirt.Pool
    network: libvirt.Network
    base_volume: libvirt.Volume

    def __init__(self, name: str, args: HypervisorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        s, host = args.settings, args.host
        self.host = host
        # The host and its budget are the component's inputs: the policy pack checks the VMs against them.
        budget = {
            "libvirtUri": host.libvirt_uri,
            "budgetMemoryMb": host.budget_memory_mb,
            "budgetVcpus": host.budget_vcpus,
        }
        super().__init__("hostscale:index:Hypervisor", name, budget, opts)
        self.provider = libvirt.Provider(
            f"{name}-provider", uri=host.libvirt_uri, opts=pulumi.ResourceOptions(parent=self)
        )
        on_host = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.pool = libvirt.Pool(
            f"{name}-pool",
            name=f"{args.name_prefix}-pool",
            type="dir",
            target=libvirt.PoolTargetArgs(path=s.pool_path),
            opts=on_host,
        )
        self.network = libvirt.Network(
            f"{name}-network",
            name=f"{args.name_prefix}-net",
            mode=host.network_mode,
            addresses=[host.network_cidr],
            autostart=True,
            dhcp=libvirt.NetworkDhcpArgs(enabled=True),
            dns=libvirt.NetworkDnsArgs(enabled=True),
            opts=on_host,
        )
        self.base_volume = libvirt.Volume(
            f"{name}-base",
            name=f"{args.name_prefix}-base.qcow2",
            pool=self.pool.name,
            source=s.base_image,
            format="qcow2",
            opts=on_host,
        )
        self.register_outputs({"network": self.network.name, "pool": self.pool.name})


def _user_data_for(vm: str, hypervisor: str, s: VmPoolConfig, registry: str) -> Callable[[list[str]], str]:
    def render(values: list[str]) -> str:
        token, app_image = values
        return render_user_data(
            WorkerSettings(
                hostname=vm,
                ssh_public_key=s.ssh_public_key,
                manager_addr=s.gateway,
                join_token=token,
                labels={"dev.hostscale.vm": vm, "dev.hostscale.hypervisor": hypervisor},
                insecure_registries=(registry,),
                prefetch=(app_image,),
            )
        )

    return render


def _first_addresses(nics: Sequence[Any] | None) -> list[str]:
    return list(nics[0].addresses or []) if nics else []


def _direct_boot(s: VmPoolConfig) -> dict[str, Any]:
    """An image without a bootloader (scripts/build-vm-image) boots its own kernel, root found by label."""
    if s.kernel is None:
        return {}
    return {
        "kernel": s.kernel,
        "initrd": s.initrd,
        "cmdlines": [{"root": "LABEL=hostscale-root"}, {"_": "rw"}, {"console": "ttyS0"}],
    }


# Both steps handle the token: pulumi-command logs a command's stdout and stderr unless told not to (the
# `pulumi up` output, CI logs); the apply harness never prints a command's output.
QUIET = local.Logging.NONE
READ_JOIN_TOKEN = "docker swarm join-token -q worker"  # noqa: S105 (a command, not a token)
ROTATE_JOIN_TOKEN = "docker swarm join-token --rotate -q worker > /dev/null"  # noqa: S105


@dataclass
class VmPoolArgs:
    name_prefix: str
    settings: VmPoolConfig
    hypervisors: list[Hypervisor]  # one per host in settings.hosts, in that order
    registry: str  # where the workers pull the app image: <gateway>:<port>, plain HTTP on the VM network
    app_image: pulumi.Input[str]  # pulled at first boot, before the join
    depends_on: list[pulumi.Resource]  # the Swarm: its manager must exist before a token can be read


class VmPool(pulumi.ComponentResource):
    """The worker VMs, and the join token's life: read for the VMs being created, rotated once they joined.

    After the rotation the token on the seed ISOs (still attached: the provider has no way to detach one) and in
    the state no longer admits a node. Both steps are keyed to the VM names, so an `up` that adds a VM reads
    the current token for it and rotates again; the seeds of the VMs that exist already are left as they are
    (ignore_changes: their first boot is over, a new seed would replace the VM).
    """

    domains: list[libvirt.Domain]
    names: list[str]
    addresses: pulumi.Output[dict[str, list[str]]]
    join_token: pulumi.Output[str]  # secret
    rotate_join_token: local.Command

    def __init__(self, name: str, args: VmPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:VmPool", name, None, opts)
        s = args.settings
        self.domains, self.names = [], [f"{args.name_prefix}-worker-{index}" for index in range(s.count)]
        self.joins: list[local.Command] = []
        token = local.Command(
            f"{name}-join-token",
            create=READ_JOIN_TOKEN,
            logging=QUIET,
            triggers=self.names,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=args.depends_on, additional_secret_outputs=["stdout"]
            ),
        )
        self.join_token = pulumi.Output.secret(token.stdout)
        boot = _direct_boot(s)
        for index, vm in enumerate(self.names):
            hv = args.hypervisors[s.placement[index]]
            on_host = pulumi.ResourceOptions(parent=self, provider=hv.provider, depends_on=args.depends_on)
            warm = (
                index >= s.running
            )  # the warm pool: parked after its first boot, powered on by the autoscaler
            disk = libvirt.Volume(
                f"{name}-{index}-disk",
                name=f"{vm}.qcow2",
                pool=hv.pool.name,
                base_volume_id=hv.base_volume.id,
                size=DISK_BYTES,
                format="qcow2",
                opts=on_host,
            )
            # Only the string is computed inside apply(); the resource itself is declared here, outside it.
            user_data = pulumi.Output.all(self.join_token, args.app_image).apply(
                _user_data_for(vm, hv.host.name, s, args.registry)
            )
            cloud_init = libvirt.CloudInitDisk(
                f"{name}-{index}-cloudinit",
                name=f"{vm}-cloudinit.iso",
                pool=hv.pool.name,
                user_data=user_data,
                opts=pulumi.ResourceOptions.merge(
                    on_host, pulumi.ResourceOptions(ignore_changes=["userData"])
                ),
            )
            domain = libvirt.Domain(
                f"{name}-{index}",
                name=vm,
                type=s.domain_type,
                memory=s.memory_mb,
                vcpu=s.vcpus,
                running=True,  # every VM makes its first boot (cloud-init, Swarm join) at up
                cloudinit=cloud_init.id,
                disks=[libvirt.DomainDiskArgs(volume_id=disk.id)],
                network_interfaces=[
                    libvirt.DomainNetworkInterfaceArgs(network_id=hv.network.id, wait_for_lease=True)
                ],
                consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
                **boot,
                xml=libvirt.DomainXmlArgs(xslt=TCG_CACHE_XSLT) if s.domain_type == "qemu" else None,
                # The autoscaler powers warm-pool VMs on and off: pulumi up must not undo that.
                opts=pulumi.ResourceOptions.merge(
                    on_host, pulumi.ResourceOptions(ignore_changes=["running"])
                ),
            )
            park = f" --park {s.warm_pool}" if warm else ""
            self.joins.append(
                local.Command(
                    f"{name}-{index}-join",
                    create=f"./scripts/vm-join --uri {hv.host.libvirt_uri} --vm {vm}{park}",
                    # A destroyed VM's node would stay in the Swarm as "down" forever.
                    delete=f"docker node rm --force {vm}",
                    dir=str(ROOT),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[domain]),
                )
            )
            self.domains.append(domain)
        self.rotate_join_token = local.Command(
            f"{name}-rotate-join-token",
            create=ROTATE_JOIN_TOKEN,
            logging=QUIET,
            triggers=self.names,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.joins),
        )
        per_vm = [d.network_interfaces.apply(_first_addresses) for d in self.domains]
        self.addresses = pulumi.Output.all(*per_vm).apply(
            lambda found: dict(zip(self.names, found, strict=True))
        )
        self.register_outputs({"names": self.names, "addresses": self.addresses})
