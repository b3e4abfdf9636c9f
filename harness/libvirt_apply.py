"""The apply harness's libvirt half: pulumi-libvirt resources applied to a real libvirtd with `virsh`.

Same contract as the Docker half (harness/engine_apply.py): every property is taken and checked before
anything is created, and a property the harness does not apply fails the run with the resource named. What
each resource becomes follows terraform-provider-libvirt 0.8 (the provider pulumi-libvirt 0.5.4 bridges): ids
are UUIDs for pools, networks and domains, the volume key (its path) for volumes, "<key>;<uuid>" for cloud-init
disks; the network hands out DHCP from the address after the gateway; the cloud-init ISO (label cidata) rides
on an IDE CD-ROM of an i440fx machine.
"""

from __future__ import annotations

import ipaddress
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, assert_never
from xml.etree import ElementTree as ET

import autoscaler.libvirt
from harness.props import Props, Unsupported
from harness.state import Applied, LibvirtObject

LEASE_TIMEOUT_S = 300  # a guest under software emulation takes a minute or two to ask for its address


class Virsh(autoscaler.libvirt.Virsh):
    """The autoscaler's virsh runner, plus defining objects from generated XML."""

    def define(self, command: str, xml: ET.Element | str, *extra: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".xml") as f:
            f.write(xml if isinstance(xml, str) else ET.tostring(xml, encoding="unicode"))
            f.flush()
            return self(command, *extra, f.name)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


class LibvirtApplier:
    """Applies one libvirt resource at a time, appending what it made to `applied` (shared with the Docker half,
    so `down` sees one list in the order things were made)."""

    def __init__(self, applied: list[Applied]) -> None:
        self.applied = applied
        self.uris: dict[str, str] = {}  # provider resource id -> libvirt URI
        self.check_only = False  # a preview: the provider's id may not be known yet

    def remember_provider(self, provider_id: str, uri: str) -> None:
        """A provider recorded in state, unchanged: its resources find their hypervisor by its id."""
        self.uris[provider_id] = uri

    def appliers(self) -> dict[str, Callable[[str, Props, str | None], tuple[str, dict[str, Any]]]]:
        return {
            "pulumi:providers:libvirt": self.provider,
            "libvirt:index/pool:Pool": self.pool,
            "libvirt:index/network:Network": self.network,
            "libvirt:index/volume:Volume": self.volume,
            "libvirt:index/cloudInitDisk:CloudInitDisk": self.cloud_init_disk,
            "libvirt:index/domain:Domain": self.domain,
        }

    def _virsh(self, name: str, provider: str | None) -> Virsh:
        provider_id = (provider or "").rsplit("::", 1)[-1]
        if self.check_only and provider:
            return Virsh(self.uris.get(provider_id, "qemu:///system"))
        if provider_id not in self.uris:
            raise Unsupported(f"{name}: libvirt resources need an explicit libvirt.Provider")
        return Virsh(self.uris[provider_id])

    def provider(self, name: str, p: Props, _: str | None) -> tuple[str, dict[str, Any]]:
        uri = p.take("uri")
        p.take("version")  # the plugin version the SDK asks for: nothing to apply
        p.done()
        provider_id = f"{name}-{uuid.uuid4()}"
        self.uris[provider_id] = uri
        return provider_id, {}

    def pool(self, name: str, p: Props, provider: str | None) -> tuple[str, dict[str, Any]]:
        virsh = self._virsh(name, provider)
        pool_name, kind, path = p.take("name"), p.take("type"), p.child("target").take("path")
        p.done()
        if kind != "dir":
            raise Unsupported(f"{name}: the harness applies pools of type dir, got {kind!r}")
        virsh("pool-define-as", pool_name, "dir", "--target", path)
        self.applied.append(LibvirtObject("pool", name, pool_name, virsh.uri, None))
        virsh("pool-build", pool_name)
        virsh("pool-start", pool_name)
        return virsh("pool-uuid", pool_name), {}

    def network(self, name: str, p: Props, provider: str | None) -> tuple[str, dict[str, Any]]:
        virsh = self._virsh(name, provider)
        net_name, mode, addresses = p.take("name"), p.take("mode"), p.take("addresses") or []
        autostart = p.take("autostart", False)
        dhcp, dns = p.child("dhcp"), p.child("dns")
        dhcp_enabled, dns_enabled = dhcp.take("enabled", True), dns.take("enabled", True)
        for finished in (dhcp, dns, p):
            finished.done()
        if mode != "nat" or len(addresses) != 1:
            raise Unsupported(f"{name}: the harness applies nat networks with one IPv4 CIDR")
        cidr = ipaddress.IPv4Network(addresses[0])
        xml = ET.Element("network")
        _sub(xml, "name", net_name)
        _sub(xml, "forward", mode="nat")
        _sub(xml, "dns", enable="yes" if dns_enabled else "no")
        ip = _sub(xml, "ip", address=str(cidr.network_address + 1), netmask=str(cidr.netmask))
        if dhcp_enabled:
            _sub(
                _sub(ip, "dhcp"),
                "range",
                start=str(cidr.network_address + 2),
                end=str(cidr.broadcast_address - 1),
            )
        virsh.define("net-define", xml)
        self.applied.append(LibvirtObject("network", name, net_name, virsh.uri, None))
        virsh("net-start", net_name)
        if autostart:
            virsh("net-autostart", net_name)
        return virsh("net-uuid", net_name), {}

    def volume(self, name: str, p: Props, provider: str | None) -> tuple[str, dict[str, Any]]:
        virsh = self._virsh(name, provider)
        vol_name, pool, fmt = p.take("name"), p.take("pool"), p.take("format", "qcow2")
        source, base, size = p.take("source"), p.take("baseVolumeId"), p.take("size")
        p.done()
        if source is not None:
            if not str(source).startswith("/"):
                raise Unsupported(
                    f"{name}: the harness uploads local files only, got source {source!r} "
                    "(scripts/build-vm-image makes a local image)"
                )
            if not Path(source).is_file():
                raise RuntimeError(f"{name}: source {source} does not exist: run scripts/build-vm-image")
            virsh("vol-create-as", pool, vol_name, str(Path(source).stat().st_size), "--format", fmt)
            self.applied.append(LibvirtObject("volume", name, vol_name, virsh.uri, pool))
            virsh("vol-upload", "--pool", pool, vol_name, source)
        elif base is not None:
            xml = ET.Element("volume")
            _sub(xml, "name", vol_name)
            _sub(xml, "capacity", str(int(size)), unit="bytes")
            _sub(_sub(xml, "target"), "format", type=fmt)
            backing = _sub(xml, "backingStore")
            _sub(backing, "path", base)
            _sub(backing, "format", type="qcow2")
            virsh.define("vol-create", xml, pool)
            self.applied.append(LibvirtObject("volume", name, vol_name, virsh.uri, pool))
        else:
            raise Unsupported(f"{name}: a volume needs source or baseVolumeId in the harness")
        return virsh("vol-key", "--pool", pool, vol_name), {}

    def cloud_init_disk(self, name: str, p: Props, provider: str | None) -> tuple[str, dict[str, Any]]:
        virsh = self._virsh(name, provider)
        iso_name, pool, user_data = p.take("name"), p.take("pool"), p.take("userData")
        meta_data = p.take("metaData") or f"instance-id: {iso_name}-{uuid.uuid4()}\n"
        p.done()
        with tempfile.TemporaryDirectory() as tmp:
            seed = Path(tmp)
            (seed / "user-data").write_text(user_data)
            (seed / "meta-data").write_text(meta_data)
            iso = seed / "seed.iso"
            subprocess.run(
                ["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock",
                 str(seed / "user-data"), str(seed / "meta-data")],
                check=True, capture_output=True,
            )  # fmt: skip
            virsh("vol-create-as", pool, iso_name, str(iso.stat().st_size), "--format", "raw")
            self.applied.append(LibvirtObject("volume", name, iso_name, virsh.uri, pool))
            virsh("vol-upload", "--pool", pool, iso_name, str(iso))
        return f"{virsh('vol-key', '--pool', pool, iso_name)};{uuid.uuid4()}", {}

    def domain(self, name: str, p: Props, provider: str | None) -> tuple[str, dict[str, Any]]:
        virsh = self._virsh(name, provider)
        dom_name, dom_type = p.take("name"), p.take("type", "kvm")
        memory, vcpu, running = int(p.take("memory", 512)), int(p.take("vcpu", 1)), p.take("running", True)
        cloudinit, kernel, initrd = p.take("cloudinit"), p.take("kernel"), p.take("initrd")
        cmdline = " ".join(
            value if key == "_" else f"{key}={value}"  # the provider's "_" key: a bare flag
            for entry in (p.take("cmdlines") or [])
            for key, value in entry.items()
        )
        disks = []
        for disk in p.children("disks"):
            disks.append(disk.take("volumeId"))
            disk.done()
        nics = []
        for nic in p.children("networkInterfaces"):
            nics.append((nic.take("networkId"), bool(nic.take("waitForLease", False))))
            nic.done()
        xml_args = p.child("xml")
        xslt = xml_args.take("xslt")
        xml_args.done()
        consoles = []
        for console in p.children("consoles"):
            consoles.append((console.take("type"), console.take("targetType"), console.take("targetPort")))
            console.done()
        p.done()

        xml = ET.Element("domain", type=dom_type)
        _sub(xml, "name", dom_name)
        _sub(xml, "memory", str(memory), unit="MiB")
        _sub(xml, "vcpu", str(vcpu))
        os_ = _sub(xml, "os")
        _sub(os_, "type", "hvm", arch="x86_64", machine="pc")
        for tag, value in (("kernel", kernel), ("initrd", initrd), ("cmdline", cmdline or None)):
            if value:
                _sub(os_, tag, value)
        features = _sub(xml, "features")
        _sub(features, "acpi")  # a clean ACPI shutdown
        _sub(features, "apic")
        devices = _sub(xml, "devices")
        for index, volume_key in enumerate(disks):
            disk_xml = _sub(devices, "disk", type="file", device="disk")
            _sub(disk_xml, "driver", name="qemu", type="qcow2")
            _sub(disk_xml, "source", file=volume_key)
            _sub(disk_xml, "target", dev=f"vd{chr(ord('a') + index)}", bus="virtio")
        if cloudinit:
            cdrom = _sub(devices, "disk", type="file", device="cdrom")
            _sub(cdrom, "driver", name="qemu", type="raw")
            _sub(cdrom, "source", file=cloudinit.split(";", 1)[0])
            _sub(cdrom, "target", dev="hdd", bus="ide")
            _sub(cdrom, "readonly")
        networks = {}
        for network_id, _wait in nics:
            network_name = virsh("net-name", network_id)
            networks[network_id] = network_name
            interface = _sub(devices, "interface", type="network")
            _sub(interface, "source", network=network_name)
            _sub(interface, "model", type="virtio")
        for kind, target_type, target_port in consoles:
            if kind != "pty":
                raise Unsupported(f"{name}: the harness applies pty consoles only, got {kind!r}")
            console_xml = _sub(devices, "console", type="pty")
            _sub(console_xml, "target", type=target_type or "serial", port=str(target_port or "0"))
        _provider_default_devices(devices)
        virsh.define("define", _transform(xml, xslt) if xslt else xml)
        self.applied.append(LibvirtObject("domain", name, dom_name, virsh.uri, None))
        leases: list[dict[str, Any]] = [
            {"networkId": network_id, "waitForLease": wait, "addresses": []} for network_id, wait in nics
        ]
        if running:
            virsh("start", dom_name)
            for lease in leases:
                if lease["waitForLease"]:
                    lease["addresses"] = self._wait_for_lease(virsh, dom_name)
        return virsh("domuuid", dom_name), {"networkInterfaces": leases}

    @staticmethod
    def _wait_for_lease(virsh: Virsh, domain: str) -> list[str]:
        deadline = time.monotonic() + LEASE_TIMEOUT_S
        while time.monotonic() < deadline:
            lines = virsh("domifaddr", domain, "--source", "lease").splitlines()
            found = [line.split()[3].split("/")[0] for line in lines if "ipv4" in line]
            if found:
                return found
            time.sleep(2)
        raise RuntimeError(f"{domain}: no DHCP lease in {LEASE_TIMEOUT_S} s")


def _provider_default_devices(devices: ET.Element) -> None:
    """What the provider puts in every domain it defines (terraform-provider-libvirt's newDomainDef): the guest
    agent's virtio channel, which `virsh domtime --sync` needs to set a restored guest's clock, and a virtio RNG
    fed from the host's /dev/urandom. Its SPICE display is left out: these guests are headless and nothing reads
    a display (docs/harness.md lists it among what the harness does not model)."""
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")


def _transform(xml: ET.Element, xslt: str) -> str:
    """The provider's `xml.xslt`: the stylesheet applied to the generated domain XML (libxslt, as it does)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "domain.xml").write_text(ET.tostring(xml, encoding="unicode"))
        (Path(tmp) / "transform.xsl").write_text(xslt)
        result = subprocess.run(
            ["xsltproc", str(Path(tmp) / "transform.xsl"), str(Path(tmp) / "domain.xml")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return result.stdout


def remove(item: LibvirtObject) -> None:
    """Remove one recorded libvirt object; one that is already gone is fine."""
    virsh, name = Virsh(item.uri), item.libvirt_name
    match item.kind:
        case "domain":
            virsh("destroy", name, check=False)
            virsh("undefine", name, "--managed-save", check=False)
        case "volume":
            if item.pool is None:
                raise ValueError(f"{item.name}: a libvirt volume record needs the pool it lives in")
            virsh("vol-delete", "--pool", item.pool, name, check=False)
        case "network":
            virsh("net-destroy", name, check=False)
            virsh("net-undefine", name, check=False)
        case "pool":
            virsh("pool-destroy", name, check=False)
            virsh("pool-delete", name, check=False)
            virsh("pool-undefine", name, check=False)
        case _:
            assert_never(item.kind)
