"""libvirt access: `virsh` against one hypervisor's URI (the local socket, or qemu+ssh for another host)."""

from __future__ import annotations

import subprocess


class Virsh:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        result = subprocess.run(
            ["virsh", "-q", "-c", self.uri, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.strip()

    def state(self, domain: str) -> str:
        return self("domstate", domain)  # "running", "shut off", "paused", ...
