"""The Debian 13 proof, in the suite so CI runs it: scripts/prove-debian13 builds (or takes from its cache) a
Debian 13 root filesystem with debootstrap, creates the project's environment in it from uv.lock with Debian's
own python3 (3.13), and runs the unit tests there (`-m "not docker and not browser"`, without tests/e2e) under chroot.

No skip when root or debootstrap is missing: CI has both (setup-host installs debootstrap), and a missing one
is a broken set-up that must fail loudly. It touches neither Docker nor libvirtd, so it takes no lock.
"""

from __future__ import annotations

import re
import subprocess
import sys

from images.build import ROOT

# The selection prove-debian13 runs: its root filesystem has no engine and no browser.
UNIT_TESTS = ("-m", "not docker and not browser", "--ignore=tests/e2e")
SUMMARY = re.compile(r"^(?P<passed>\d+) passed, (?P<deselected>\d+) deselected in [\d.]+s( \([\d:]+\))?$")


def unit_test_count() -> int:
    """How many unit tests this checkout has (collected here, on the host's Python)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *UNIT_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return sum(1 for line in listed.splitlines() if "::" in line)


def test_the_unit_tests_pass_on_debian_13_with_its_own_python() -> None:
    result = subprocess.run(
        [ROOT / "scripts" / "prove-debian13", "-q"],
        capture_output=True,
        text=True,
        timeout=1200,  # a first run downloads Debian (~1.5 min here); a cached one takes 1 to 2 min
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "prove-debian13: Debian GNU/Linux 13 (trixie), Python 3.13." in result.stderr
    assert re.search(r"^prove-debian13: environment from uv\.lock on Python 3\.13\.\d+$", result.stderr, re.M)
    summary = SUMMARY.match(result.stdout.splitlines()[-1])
    assert summary, result.stdout[-2000:]
    # Every unit test this checkout has passed there: none failed, none skipped, none missing.
    assert int(summary["passed"]) == unit_test_count()
