"""The operator's commands: check a policy before it is deployed, and ask the running autoscaler what it sees.

    python -m autoscaler check-policy stacks/Pulumi.local.yaml   # or a file holding only the policy
    python -m autoscaler status  [--url http://127.0.0.1:9100]
    python -m autoscaler explain [--url http://127.0.0.1:9100] [--last 5]

check-policy reads `hostscale:autoscaler` the way the stack config's loader does at preview
(components/config.py): `listen` as an `ADDRESS:PORT`, the rest through load_policy() with the same prefix, so
the errors are the ones preview prints. Checks against the rest of the stack config (ports, initial replicas, VM
capacity) need the whole program and run at preview only.

status and explain read the status API (loopback by default) and put it in words.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from autoscaler.policy import Policy, PolicyError, Reader, load_policy

SECTION = "hostscale:autoscaler"
DEFAULT_URL = "http://127.0.0.1:9100"


def check_policy(raw: Any) -> Policy:
    """A parsed file: a Pulumi stack config (`config: {hostscale:autoscaler: ...}`) or the policy mapping alone."""
    if isinstance(raw, Mapping) and isinstance(raw.get("config"), Mapping):
        if SECTION not in raw["config"]:
            raise PolicyError(f"config.{SECTION} is missing: no autoscaler policy in this stack config")
        raw = raw["config"][SECTION]
    section = Reader(raw, SECTION)
    section.listen("listen", "127.0.0.1:9100")
    return load_policy({key: value for key, value in raw.items() if key != "listen"}, prefix=SECTION)


def describe_policy(policy: Policy) -> list[str]:
    lines = [
        f"replicas {policy.min_replicas} to {policy.max_replicas}, a decision every {policy.interval_s:g} s"
        + (" (dry run)" if policy.dry_run else "")
    ]
    for target in policy.targets:
        lines.append(f"target rule '{target.name}': keep {target.metric} near {target.target:g}")
    for step in policy.steps:
        change = f"add {step.change}" if step.change > 0 else f"remove {-step.change}"
        lines.append(
            f"step rule '{step.name}': {change} when {step.metric} is {step.comparison} {step.threshold:g} "
            f"for {step.for_s:g} s"
        )
    if policy.windows:
        w = policy.windows
        lines.append(
            f"windows: reads every {w.sample_interval_s:g} s, stable {w.stable_s:g} s, panic {w.panic_s:g} s "
            f"at {w.panic_threshold:g}x the ready replicas"
        )
    for schedule in policy.schedules:
        workers = f" and {schedule.min_workers} worker VMs" if schedule.min_workers else ""
        lines.append(
            f"schedule '{schedule.name}': at least {schedule.min_replicas} replicas{workers} for "
            f"{schedule.duration_s:g} s from each '{schedule.start}' ({schedule.timezone})"
        )
    return lines


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _count(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    return "unknown" if value is None else str(value)


def describe_status(body: Mapping[str, Any], url: str) -> list[str]:
    lines = [f"autoscaler at {url}"]
    if body.get("current") is None:
        return [*lines, "no decision yet: the loop has not ticked"]
    lines.append(
        f"replicas: {body['current']} asked of Swarm, {body['ready']} ready (UP in HAProxy), "
        f"{body['desired']} desired"
    )
    metrics = body.get("metrics") or {}
    seen = ", ".join(f"{name} {value:.4g}" for name, value in sorted(metrics.items()))
    lines.append(f"metrics: {seen or 'none readable'}")
    vms = body.get("vms") or {}
    if vms:
        states = ", ".join(f"{name} {state}" for name, state in vms.items())
        lines.append(f"VMs: {_count(body, 'vms_running')} of {len(vms)} running: {states}")
    lines.extend(_describe_schedules(body.get("schedules") or {}))
    stuck = body.get("stuck") or []
    lines.append("stuck: " + ("; ".join(stuck) if stuck else "nothing"))
    reasons = body.get("reasons") or []
    lines.append("last decision: " + ("; ".join(reasons) if reasons else "no reason recorded"))
    return lines


def _describe_schedules(schedules: Mapping[str, Any]) -> list[str]:
    states = schedules.get("states") or []
    if not states:
        return []
    held = schedules.get("reason") or f"the policy's minimum, {schedules.get('effective_min_replicas')}"
    open_ = [state["name"] for state in states if state["active"]]
    lines = [f"schedules: {held}; open: {', '.join(open_) or 'none'}"]
    change = schedules.get("next_change")
    if change:
        verb = "opens" if change["change"] == "start" else "closes"
        lines.append(
            f"next schedule change: '{change['schedule']}' {verb} at {change['at']} ({change['at_utc']})"
        )
    return lines


def _when(unix_time: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix_time))


def describe_changes(body: Mapping[str, Any], last: int) -> list[str]:
    """The latest changes, each as what happened and every reason the decision gave, in order."""
    changes = list(body.get("last_changes") or [])[-last:]
    lines = describe_status(body, "")[1:2]
    if not changes:
        return [*lines, "no change recorded: every recent decision held the count"]
    for change in changes:
        if change["direction"] == "none":
            what = f"kept {change['current']} replicas"
        else:
            verb = "scaled out" if change["direction"] == "up" else "scaled in"
            done = "" if change["acted"] else " (decided, not written: dry run or a failed write)"
            what = f"{verb} from {change['current']} to {change['desired']}{done}"
        lines.append(f"{_when(change['time'])} {what}, with {change['ready']} ready, because:")
        lines.extend(f"  - {reason}" for reason in change["reasons"])
        lines.extend(f"  - VM: {step}" for step in change.get("vm_steps") or [])
        if change.get("error"):
            lines.append(f"  ! {change['error']}")
    return lines


def _fetch(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url.rstrip('/')}/status", timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


COMMANDS = ("check-policy", "status", "explain")


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="autoscaler", description="hostscale's autoscaler: operator commands"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-policy", help="validate a policy as `pulumi preview` does")
    check.add_argument(
        "file", type=Path, help="a stack config (Pulumi.<stack>.yaml) or a policy (YAML or JSON)"
    )
    for name, text in (("status", "what it sees now"), ("explain", "why it changed what it changed")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--url", default=DEFAULT_URL, help=f"its status API (default {DEFAULT_URL})")
    commands.choices["explain"].add_argument(
        "--last", type=int, default=5, help="how many changes (default 5)"
    )
    args = parser.parse_args(argv)
    if args.command == "check-policy":
        try:
            policy = check_policy(_parse(args.file))
        except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
            print(f"{args.file}: cannot read: {exc}", file=sys.stderr)
            return 2
        except PolicyError as exc:
            print(f"{args.file}: {exc}", file=sys.stderr)
            return 2
        print(f"{args.file}: valid policy")
        print("\n".join(f"  {line}" for line in describe_policy(policy)))
        return 0
    try:
        body = _fetch(args.url)
    except httpx.HTTPError as exc:
        print(f"autoscaler at {args.url} did not answer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    lines = describe_status(body, args.url) if args.command == "status" else describe_changes(body, args.last)
    print("\n".join(lines))
    return 0
