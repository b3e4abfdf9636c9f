"""What one virsh call over qemu+ssh costs the autoscaler, with and without SSH connection sharing.

The autoscaler reads each VM's power state with one `virsh` call per VM per tick, and each call is a new
libvirt connection: over qemu+ssh that is an SSH handshake per call unless the session is shared
(ControlMaster in the component's ssh_config). Measured inside the autoscaler's own image, against this host's
libvirt behind a loopback sshd (testbed/sshd.py), so the figures leave out the LAN's round trips.

    uv run python -m benchmarks.virsh_over_ssh --calls 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import docker

from components.autoscaler import SSH_CONFIG
from images.build import build_all
from testbed.sshd import loopback_sshd, run_in_autoscaler

# Runs in the image: times `calls` sequential virsh calls, prints the milliseconds as JSON on the last line.
TIMER = """
import json, subprocess, sys, time
uri, calls = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(calls):
    started = time.perf_counter()
    subprocess.run(["virsh", "-q", "-c", uri, "hostname"], check=True, capture_output=True)
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"""


def without_sharing(config: str) -> str:
    return "".join(line for line in config.splitlines(keepends=True) if "Control" not in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=50, help="virsh calls per configuration (at most 500)")
    args = parser.parse_args()
    calls = max(1, min(args.calls, 500))
    client = docker.from_env()
    image = build_all()["autoscaler"]
    with tempfile.TemporaryDirectory() as tmp, loopback_sshd(Path(tmp)) as remote:
        for label, config in (
            ("as shipped (shared session)", SSH_CONFIG),
            ("no sharing", without_sharing(SSH_CONFIG)),
        ):
            workdir = Path(tmp) / label.split()[0]
            workdir.mkdir()
            files = {"ssh_config": config, "known_hosts": remote.known_hosts()}
            entrypoint = ["python3", "-c", TIMER, remote.uri, str(calls)]
            code, output = run_in_autoscaler(client, image, remote, files, workdir, entrypoint, timeout_s=600)
            if code != 0:
                raise SystemExit(f"{label}: exit {code}\n{output}")
            times = json.loads(output.strip().splitlines()[-1])
            rest = sorted(times[1:]) or times
            print(
                f"{label:30} first {times[0]:6.1f} ms | then median {statistics.median(rest):6.1f} ms, "
                f"p95 {rest[int(0.95 * (len(rest) - 1))]:6.1f} ms, min {rest[0]:6.1f} ms ({calls} calls)"
            )


if __name__ == "__main__":
    main()
