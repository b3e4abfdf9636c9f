"""scripts/setup-host's decisions (which Docker engine, which packages, what it changes in the system's
configuration, which daemons it starts and how), read from its --dry-run plan on fake hosts: the host's
commands (docker, dpkg-query, systemctl, virsh, getent, uv) are stubs that answer as that host would, and its
files live under SETUP_HOST_ROOT."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = [
    "iptables",
    "ca-certificates",
    "python3",
    "python3-venv",
    "libvirt-daemon-system",
    "libvirt-clients",
    "qemu-system-x86",
    "qemu-utils",
    "dnsmasq-base",
    "genisoimage",
    "e2fsprogs",
    "debootstrap",
]
# What the script itself runs besides the host's commands stubbed below.
TOOLS = ("bash", "sort", "head", "awk", "grep", "cut", "sed", "dirname", "cat", "seq")


@dataclass(frozen=True)
class Host:
    systemd: bool = False
    engine: str = ""  # the running engine's version; empty when none answers
    engine_package: str = ""  # docker-ce, docker.io or moby-engine when one is installed
    dockerd: bool = False  # a dockerd binary on PATH
    installed: tuple[str, ...] = tuple(BASE)
    units: tuple[str, ...] = ()  # the enabled systemd units
    libvirt_up: bool = True
    autoscaler_user: bool = True
    uv: str = "0.13.9"
    python: str = "3.11"  # what the host's python3 is
    other_pythons: tuple[str, ...] = ()  # python3.X binaries beside it
    files: tuple[str, ...] = ()  # paths that exist under the host's root
    os_release: str = ""  # /etc/os-release under the host's root, when set
    state_dir: bool = True


@dataclass(frozen=True)
class Case:
    id: str
    host: Host
    plan: list[str]
    args: tuple[str, ...] = ()
    facts: str = ""
    unchanged: list[str] = field(default_factory=list)


def fake_host(tmp_path: Path, host: Host) -> tuple[Path, dict[str, str]]:
    """A copy of the script in an empty checkout, a PATH of stubs and the host's root."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup-host", checkout / "scripts" / "setup-host")
    if host.state_dir:
        (checkout / ".state" / "pulumi").mkdir(parents=True)
    root = tmp_path / "root"
    root.mkdir()
    if host.systemd:
        (root / "run" / "systemd" / "system").mkdir(parents=True)
    for path in host.files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).touch()
    if host.os_release:
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc" / "os-release").write_text(host.os_release)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not on PATH"
        (bin_dir / tool).symlink_to(found)
    installed = " ".join((*host.installed, host.engine_package))
    stubs = {
        "docker": f'[ -n "{host.engine}" ] && echo "{host.engine}"',
        "dpkg-query": f'case " {installed} " in *" ${{@: -1}} "*) printf "install ok installed" ;; *) exit 1 ;; esac',
        "systemctl": f'[ "$1" = is-enabled ] && case " {" ".join(host.units)} " in *" ${{@: -1}} "*) exit 0 ;; esac; exit 1',
        "virsh": "exit 0" if host.libvirt_up else "exit 1",
        "getent": 'echo "hostscale-autoscaler:x:10002:10002::/nonexistent:/usr/sbin/nologin"'
        if host.autoscaler_user
        else "exit 2",
        "uv": f'echo "uv {host.uv}"' if host.uv else "exit 127",
    }
    if host.dockerd:
        stubs["dockerd"] = "exit 0"
    stubs["python3"] = f'echo "{host.python}"'
    for other in host.other_pythons:
        stubs[other] = "exit 0"
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!{shutil.which('bash')}\n{body}\n")
        stub.chmod(0o755)
    return checkout, {"PATH": str(bin_dir), "SETUP_HOST_ROOT": str(root), "LANG": "C.UTF-8"}


def dry_run(tmp_path: Path, host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    checkout, env = fake_host(tmp_path, host)
    return subprocess.run(
        [shutil.which("bash") or "bash", checkout / "scripts" / "setup-host", "--dry-run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


SYNC = "plan: the project's environment from uv.lock (the program's dependencies only), on the host's python3"
SYNC_311 = (
    "plan: the project's environment from uv.lock (the program's dependencies only), on the host's python3.11"
)
SYNC_ALL = (
    "plan: the project's environment from uv.lock with every dependency group (tests), on the host's python3"
)
PROMETHEUS_TOOLS = (
    "plan: unpack prometheus and promtool from Debian's prometheus package into /opt/hostscale-prometheus"
    " (linked in /usr/local/bin; the package is not installed, no service starts)"
)
POLKIT = (
    "plan: system configuration: add /etc/polkit-1/rules.d/50-hostscale.rules (and a .pkla where polkit is "
    "0.105): the user hostscale-autoscaler may manage libvirt's VMs"
)
CI = Host(engine="20.10.24+dfsg1", engine_package="docker.io", dockerd=True)

CASES = [
    Case(
        "a CI container with Debian's docker.io running and everything in place changes nothing but the environment",
        CI,
        [SYNC],
        facts="host: no systemd; python3 3.11; Docker engine 20.10.24+dfsg1 (running, from docker.io); libvirt running (libvirtd); uv 0.13.9",
    ),
    Case(
        "the tests' set-up adds the SSH server, xsltproc, Chromium, Prometheus' binaries and every dependency group",
        CI,
        ["plan: install packages: openssh-server xsltproc chromium", PROMETHEUS_TOOLS, SYNC_ALL],
        args=("--for-tests",),
    ),
    Case(
        "the tests' set-up on Ubuntu, which has no chromium deb, installs the rest and says what the browser tests need",
        replace(CI, os_release='NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'),
        [
            "plan: install packages: openssh-server xsltproc",
            PROMETHEUS_TOOLS,
            SYNC_ALL,
            "note: Ubuntu has no chromium deb (only a snap): the status page's browser tests need a chromium or "
            "chromium-browser on PATH",
        ],
        args=("--for-tests",),
    ),
    Case(
        "the tests' set-up on Debian installs Debian's chromium",
        replace(CI, os_release='PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'),
        ["plan: install packages: openssh-server xsltproc chromium", PROMETHEUS_TOOLS, SYNC_ALL],
        args=("--for-tests",),
    ),
    Case(
        "a systemd host running Docker CE keeps it, installs no docker.io, and starts libvirt by its unit",
        Host(
            systemd=True,
            engine="27.3.1",
            engine_package="docker-ce",
            installed=tuple(pkg for pkg in BASE if not pkg.startswith(("libvirt", "qemu"))),
            units=("libvirtd.socket",),
            libvirt_up=False,
        ),
        [
            "plan: install packages: libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils",
            POLKIT,
            "plan: start libvirt: systemctl enable --now libvirtd.socket",
            SYNC,
        ],
        facts="host: systemd; python3 3.11; Docker engine 27.3.1 (running, from docker-ce); libvirt not running (libvirtd); uv 0.13.9",
    ),
    Case(
        "a systemd host that enabled the modular libvirt daemons starts virtqemud's socket, not libvirtd",
        Host(
            systemd=True,
            engine="26.1.5+dfsg1",
            engine_package="docker.io",
            units=("virtqemud.socket",),
            libvirt_up=False,
        ),
        [POLKIT, "plan: start libvirt: systemctl enable --now virtqemud.socket", SYNC],
    ),
    Case(
        "a systemd host with no engine gets Debian's docker.io, started by its unit",
        Host(systemd=True, files=("etc/polkit-1/rules.d/50-hostscale.rules",)),
        [
            "plan: install packages: docker.io",
            "plan: start the Docker engine: systemctl enable --now docker.service",
            SYNC,
        ],
        facts="host: systemd; python3 3.11; no Docker engine; libvirt running (libvirtd); uv 0.13.9",
    ),
    Case(
        "a systemd host whose installed engine is stopped gets it started by its unit",
        Host(
            systemd=True,
            engine_package="docker-ce",
            dockerd=True,
            files=("etc/polkit-1/rules.d/50-hostscale.rules",),
        ),
        ["plan: start the Docker engine: systemctl enable --now docker.service", SYNC],
        facts="host: systemd; python3 3.11; Docker engine installed from docker-ce but not running; libvirt running (libvirtd); uv 0.13.9",
    ),
    Case(
        "a host whose python3 is 3.10 (Ubuntu 22.04) gets python3.11 beside it for the environment",
        replace(CI, python="3.10"),
        ["plan: install packages: python3.11 python3.11-venv", SYNC_311],
        facts="host: no systemd; python3 3.10; Docker engine 20.10.24+dfsg1 (running, from docker.io); libvirt running (libvirtd); uv 0.13.9",
    ),
    Case(
        "a host whose python3 is 3.10 and that has python3.11 uses it and installs no Python",
        replace(CI, python="3.10", other_pythons=("python3.11",)),
        [SYNC_311],
    ),
    Case(
        "a container without systemd and a stopped engine starts dockerd in the background",
        Host(engine_package="docker.io", dockerd=True),
        ["plan: start dockerd in the background (no systemd; log in /var/log/hostscale/dockerd.log)", SYNC],
    ),
    Case(
        "without systemd a stopped libvirt gets a config file of its own and the distribution's stays untouched",
        replace(CI, libvirt_up=False),
        [
            "plan: system configuration: add /etc/hostscale/libvirtd.conf (socket for root and the libvirt group, "
            "no polkit: this host has no D-Bus)",
            "plan: start libvirtd in the background with --config /etc/hostscale/libvirtd.conf (no systemd)",
            SYNC,
        ],
    ),
    Case(
        "a fresh host also gets the autoscaler's user, uv and the Pulumi backend's directory, each announced",
        replace(CI, autoscaler_user=False, uv="", state_dir=False),
        [
            "plan: system configuration: add the system user hostscale-autoscaler (uid 10002, no login, no home, "
            "group libvirt), the autoscaler container's user, which libvirt must know to let it power VMs on and off",
            "plan: install uv 0.13.9 into /opt/hostscale-uv (linked as /usr/local/bin/uv)",
            "plan: create .state/pulumi, the Pulumi file backend's directory (Pulumi.yaml)",
            SYNC,
        ],
        facts="host: no systemd; python3 3.11; Docker engine 20.10.24+dfsg1 (running, from docker.io); libvirt running (libvirtd); uv absent",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_plan_for(tmp_path: Path, case: Case) -> None:
    result = dry_run(tmp_path, case.host, *case.args)
    assert result.returncode == 0, result.stderr
    lines = [line.removeprefix("setup-host: ") for line in result.stdout.splitlines()]
    assert lines[1:] == [*case.plan, "dry run: nothing changed"]
    if case.facts:
        assert lines[0] == case.facts


def test_an_engine_older_than_20_10_is_refused_with_its_version(tmp_path: Path) -> None:
    result = dry_run(tmp_path, Host(engine="19.03.13", engine_package="docker-ce"))
    assert result.returncode == 1
    assert result.stderr == (
        "setup-host: the Docker engine here is 19.03.13; hostscale needs 20.10 or newer (setup-host does not "
        "replace an engine it did not install)\n"
    )


def test_an_unknown_argument_is_refused_by_name(tmp_path: Path) -> None:
    result = dry_run(tmp_path, CI, "--for-test")
    assert result.returncode == 2
    assert result.stderr == "setup-host: unknown argument --for-test (expected --for-tests or --dry-run)\n"


def test_the_dry_run_on_this_host_changes_nothing() -> None:
    # The real host (CI's: no systemd, Docker running): the probe must work with its real commands.
    result = subprocess.run(
        [ROOT / "scripts" / "setup-host", "--dry-run", "--for-tests"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "setup-host: dry run: nothing changed"


def _probe_fd(tmp_path: Path, wrapped: bool) -> str:
    """Whether a program started by setup-host's daemon starter still has a descriptor its caller held."""
    script = (ROOT / "scripts" / "setup-host").read_text()
    starter = script[script.index("without_inherited_fds() {") :]
    starter = starter[: starter.index("\n}\n") + 3]
    probe = 'bash -c "[ -e /proc/self/fd/$HELD ] && echo leaked || echo closed"'
    with (tmp_path / "held").open("w") as held:
        result = subprocess.run(
            [
                shutil.which("bash") or "bash",
                "-c",
                f"{starter}\n{'without_inherited_fds ' if wrapped else ''}{probe}",
            ],
            env={"PATH": "/usr/bin:/bin", "HELD": str(held.fileno())},
            pass_fds=(held.fileno(),),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_daemon_it_starts_keeps_none_of_the_callers_descriptors(tmp_path: Path) -> None:
    # A dockerd that inherits the caller's descriptors holds a CI runner's pipe, or a lock, for its whole life.
    assert _probe_fd(tmp_path, wrapped=False) == "leaked"  # the probe can see a leak
    assert _probe_fd(tmp_path, wrapped=True) == "closed"
