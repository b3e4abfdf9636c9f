"""The deployment's last step: `up` finishes only when the tier serves, so the first request after it succeeds.

Ready means both: HAProxy counts at least the wanted number of app replicas UP (its own health checks passed),
and a request through the load balancer's frontend answers 200. The step polls both until a deadline and, if
the tier is not ready by then, fails with what is not ready and why, in HAProxy's own words
("2 of 2 replicas DOWN in HAProxy: L7STS 503").

It is a pulumi-command step (`python -m components.readiness ...`), so the real engine and the apply harness
both run it; nothing secret is on its command line.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import socket
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
from pulumi_command import local

from components.haproxy_cfg import BACKEND
from images.build import ROOT

PROBE_TIMEOUT_S = 3.0  # one request; HAProxy itself queues a request for up to its queue timeout
POLL_INTERVAL_S = 0.5
# What HAProxy shows for a server-template slot that no replica's address fills yet.
UNRESOLVED = "MAINT (resolution)"


# (status, error, body) of one GET: a status when the server answered, an error when it did not.
Fetch = Callable[[str], tuple[int | None, str | None, str]]
Connect = Callable[[str], str | None]  # a URL -> None when its host:port accepts a connection, else why not


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reasons: tuple[str, ...]  # what is not ready, in words; empty when ready


def stats_csv_url(stats_url: str) -> str:
    """HAProxy's CSV export of the stats page the stack outputs (`stats_url`)."""
    return f"{stats_url};csv"


def backend_servers(stats_csv: str, backend: str) -> list[dict[str, str]]:
    """The server rows of `backend` in HAProxy's CSV stats export."""
    header, *rows = stats_csv.splitlines()
    reader = csv.DictReader(rows, fieldnames=header.removeprefix("# ").split(","))
    return [r for r in reader if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")]


def servers_up(stats_csv: str, backend: str) -> int:
    """How many servers of `backend` HAProxy has in rotation ("UP", or "UP 1/3": one check failed, still in)."""
    return sum(1 for s in backend_servers(stats_csv, backend) if s["status"].startswith("UP"))


def backend_verdict(stats_csv: str, backend: str, wanted: int) -> Verdict:
    """Whether HAProxy counts at least `wanted` servers of `backend` UP, from its CSV stats export."""
    servers = backend_servers(stats_csv, backend)
    if not servers:
        return Verdict(False, (f"HAProxy has no backend {backend!r} with servers",))
    # "UP 1/3": UP, one check failed; still in rotation. A slot without an address is no replica at all.
    known = [s for s in servers if s["status"] != UNRESOLVED]
    up = [s for s in known if s["status"].startswith("UP")]
    if len(up) >= wanted:
        return Verdict(True, ())
    reasons = []
    not_up = [s for s in known if not s["status"].startswith("UP")]
    if not_up:
        states = Counter(s["status"].split(" ")[0] for s in not_up)
        checks = Counter(" ".join(filter(None, (s["check_status"], s["check_code"]))) for s in not_up)
        state = " or ".join(sorted(states))
        why = ", ".join(
            f"{check or 'no check yet'}" + (f" ({count})" if len(checks) > 1 else "")
            for check, count in sorted(checks.items())
        )
        reasons.append(f"{len(not_up)} of {len(known)} replicas {state} in HAProxy: {why}")
    if len(known) < wanted:
        reasons.append(
            f"HAProxy knows {len(known)} of the {wanted} replicas wanted (the others are not in DNS yet)"
        )
    reasons.append(f"{len(up)} of {wanted} replicas UP")
    return Verdict(False, tuple(reasons))


def probe_verdict(status: int | None, error: str | None, url: str) -> Verdict:
    """Whether one request through the load balancer succeeded (answered 200)."""
    if status == 200:
        return Verdict(True, ())
    if status is not None:
        return Verdict(False, (f"GET {url} through the load balancer answered {status}",))
    return Verdict(False, (f"GET {url} through the load balancer failed: {error}",))


def get(url: str) -> tuple[int | None, str | None, str]:
    """One GET through the stack's own loopback addresses (a Fetch)."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 (the stack's own http URL)
            return int(response.status), None, response.read().decode(errors="replace")
    except urllib.error.HTTPError as answered:
        return int(answered.code), None, ""
    except (urllib.error.URLError, OSError) as failed:
        reason = getattr(failed, "reason", failed)
        return None, f"{type(reason).__name__}: {reason}", ""


@dataclass(frozen=True)
class Target:
    url: str  # the load balancer's frontend, e.g. http://127.0.0.1:8080
    path: str  # what to request through it
    stats_url: str  # HAProxy's stats page
    backend: str
    wanted: int  # replicas that must be UP; 0: only HAProxy itself must answer


def check(target: Target, fetch: Fetch = get, connect: Connect | None = None) -> Verdict:
    """One look at the tier: HAProxy's view of the backend, then one request through the frontend (with no
    replica wanted, one connection to it)."""
    connect = connect or tcp_connect
    status, error, body = fetch(stats_csv_url(target.stats_url))
    if status != 200:
        answer = f"answered {status}" if status is not None else f"failed: {error}"
        backend = Verdict(False, (f"HAProxy's stats at {target.stats_url} {answer}",))
    else:
        backend = backend_verdict(body, target.backend, target.wanted)
    if target.wanted == 0:
        # Nothing to serve: HAProxy's frontend accepting connections is what ready means. No request: with no
        # replica UP, HAProxy holds one until a replica comes (images/haproxy/hold_for_replica.lua), and the
        # autoscaler would count it as demand and start one, for a tier that is meant to idle at zero.
        refused = connect(target.url)
        probe = (
            Verdict(True, ())
            if refused is None
            else Verdict(False, (f"the load balancer at {target.url} accepts no connection: {refused}",))
        )
        return Verdict(backend.ready and probe.ready, backend.reasons + probe.reasons)
    url = target.url + target.path
    if status == 200 and servers_up(body, target.backend) == 0:
        # HAProxy would hold the request for its queue timeout (images/haproxy/hold_for_replica.lua), longer
        # than a probe waits: the answer would be a timeout that says less than the stats already do.
        held = f"no GET {url} sent: with no replica UP, HAProxy holds a request until one is"
        return Verdict(False, (*backend.reasons, held))
    status, error, _ = fetch(url)
    probe = probe_verdict(status, error, url)
    return Verdict(backend.ready and probe.ready, backend.reasons + probe.reasons)


def tcp_connect(url: str) -> str | None:
    """None when `url`'s host and port accept a TCP connection; otherwise why not (a Connect)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def wait_ready(
    target: Target,
    timeout_s: float,
    fetch: Fetch = get,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Verdict, float]:
    """Poll until ready or `timeout_s` passed: the last verdict, and the seconds it took."""
    start = clock()
    while True:
        verdict = check(target, fetch)
        elapsed = clock() - start
        if verdict.ready or elapsed >= timeout_s:
            return verdict, elapsed
        sleep(POLL_INTERVAL_S)


def command(target: Target, timeout_s: int) -> str:
    """The step's command line: the interpreter running the program (it has this project's packages)."""
    argv = [
        sys.executable,
        "-m",
        "components.readiness",
        f"--url={target.url}",
        f"--path={target.path}",
        f"--stats-url={target.stats_url}",
        f"--backend={target.backend}",
        f"--replicas={target.wanted}",
        f"--timeout-seconds={timeout_s}",
    ]
    return shlex.join(argv)


@dataclass
class ReadinessArgs:
    target: Target
    timeout_s: int
    # What, when it changes, makes the step run again (a new app image, a new HAProxy container, ...).
    triggers: Sequence[pulumi.Input[str]]
    depends_on: list[pulumi.Resource]


class Readiness(pulumi.ComponentResource):
    step: local.Command

    def __init__(self, name: str, args: ReadinessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Readiness", name, None, opts)
        self.step = local.Command(
            f"{name}-check",
            create=command(args.target, args.timeout_s),
            dir=str(ROOT),
            triggers=list(args.triggers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.register_outputs({})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.readiness", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--stats-url", required=True)
    parser.add_argument("--backend", default=BACKEND)
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--timeout-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    target = Target(args.url, args.path, args.stats_url, args.backend, args.replicas)
    verdict, elapsed = wait_ready(target, args.timeout_seconds)
    if not verdict.ready:
        print(
            f"the tier is not ready after {elapsed:.0f} s: " + "; ".join(verdict.reasons),
            file=sys.stderr,
        )
        return 1
    print(f"ready after {elapsed:.1f} s: {target.wanted} replicas UP in HAProxy, GET {target.path} 200")
    return 0


if __name__ == "__main__":
    sys.exit(main())
