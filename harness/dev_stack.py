"""`scripts/dev-stack up|preview|down <stack>`: deploy a stack of the Pulumi program to the real Docker engine
(and libvirt) without the Pulumi CLI, through the engine stand-in (harness/engine.py).

  up       create, update, replace and delete what the program declares against the stack's state; one line
           per step, a summary, then the stack outputs as JSON on the last line (`--json`: only the outputs on
           stdout, progress on stderr). On a stack that is up, an unchanged resource is not touched.
  preview  the plan (`+` create, `~` update, `+-` replace, `-` delete, with the changed properties; secrets as
           [secret]); changes nothing.
  down     delete everything in the state, dependents first. What the program marks retain_on_delete (the
           database's data volume) is kept and listed; `--delete-data` deletes it too.

<stack> is any stack with a stacks/Pulumi.<stack>.yaml. State lives in .state/dev-stack/<stack>.json, written
after every completed step: an interrupted `up` (SIGINT, SIGTERM: it stops between steps) or a failed one
keeps what it completed, and `down` or the next `up` completes it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from harness.engine import Deployment, Interrupted, delete_all, new_deployment, run, stop_between_steps
from harness.plan import MISSING, Change, NotModelled, Step
from harness.program import ROOT, stack_config, stack_file
from harness.progress import SYMBOLS, Progress
from harness.state import StackState, load

STATE_DIR = ROOT / ".state" / "dev-stack"
VALUE_WIDTH = 60  # a changed value longer than this is shown by its length


def state_file(stack: str) -> Path:
    return STATE_DIR / f"{stack}.json"


def retained_file(stack: str) -> Path:
    """Objects kept by retain_on_delete (the data volume): `down --delete-data` deletes them."""
    return STATE_DIR / f"{stack}.retained.json"


def _load_state(stack: str) -> StackState:
    path = state_file(stack)
    return StackState.load(path) if path.exists() else StackState()


def up(
    stack: str,
    config: dict[str, Any] | None = None,
    out: TextIO | None = None,
    secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Bring `stack` to what the program declares; returns the stack outputs."""
    progress = Progress(out or sys.stdout)
    config = stack_config(stack) if config is None else config
    state = _load_state(stack)
    if any(r.type == "legacy" for r in state.pending_deletes):
        raise SystemExit(
            f"dev-stack: {state_file(stack)} was written by an older harness (no per-resource state): run "
            f"`scripts/dev-stack down {stack}` once, then `up`"
        )
    # The plan first, as `pulumi up` previews: anything not modelled fails before anything changes.
    plan = new_deployment(stack, _load_state(stack), Progress(io.StringIO()), True, None, None)
    run(plan, config, secrets)
    delete_all_check(plan)
    deployment = new_deployment(stack, state, progress, False, state_file(stack), retained_file(stack))
    with stop_between_steps(deployment):
        outputs = run(deployment, config, secrets)
        deployment.delete_leftovers()
    unchanged = deployment.unchanged
    progress.summary("up", stack, unchanged)
    return outputs


def delete_all_check(plan: Deployment) -> None:
    protected = [r for r in plan.leftovers() if r.protect]
    if protected:
        names = ", ".join(f"{r.type} {r.name}" for r in protected)
        raise NotModelled(
            f"{names}: protected, the engine refuses to delete it (drop `protect` and run `up`)"
        )


def preview(stack: str, config: dict[str, Any] | None = None, out: TextIO | None = None) -> list[str]:
    """The plan of an `up`, one line per step (printed and returned); changes nothing."""
    stream = out or sys.stdout
    plan = new_deployment(stack, _load_state(stack), Progress(io.StringIO()), True, None, None)
    run(plan, stack_config(stack) if config is None else config)
    delete_all_check(plan)
    lines = [plan_line(step) for step in plan.steps]
    lines += [f"-  {r.type} {r.name}" for r in plan.leftovers() if r.type != "legacy"]
    counts = {op: sum(1 for step in plan.steps if step.op == op) for op in ("create", "update", "replace")}
    summary = (
        f"preview {stack}: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['replace']} to replace, {len(plan.leftovers())} to delete, {plan.unchanged} unchanged"
    )
    for line in [*lines, summary]:
        print(line, file=stream)
    return lines


def plan_line(step: Step) -> str:
    symbol = SYMBOLS[step.op]
    if not step.changes:
        return f"{symbol:<2} {step.type} {step.name}"
    changes = "; ".join(_change(change) for change in step.changes)
    return f"{symbol:<2} {step.type} {step.name} [{changes}]"


def _change(change: Change) -> str:
    return f"{change.path}: {_value(change.old, change.secret)} => {_value(change.new, change.secret)}"


def _value(value: Any, secret: bool) -> str:
    if value is MISSING:
        return "(none)"
    if secret:
        return "[secret]"
    if type(value).__name__ == "Unknown":
        return "(known after up)"
    text = json.dumps(value)
    return text if len(text) <= VALUE_WIDTH else f"({len(text)} characters)"


def down(stack: str, delete_data: bool = False, out: TextIO | None = None) -> None:
    """Delete everything in the state (dependents first). Retained objects stay unless `delete_data`."""
    progress = Progress(out or sys.stdout)
    path = state_file(stack)
    state = _load_state(stack)
    deployment = new_deployment(stack, state, progress, False, path, retained_file(stack))
    if not path.exists() and not (delete_data and retained_file(stack).exists()):
        progress.line(f"dev-stack: stack {stack} is not up")
        return
    with stop_between_steps(deployment):
        delete_all(
            deployment, [*state.resources, *state.pending_deletes], delete_data, retain_on_delete=False
        )
        if delete_data and retained_file(stack).exists():
            kept = load(retained_file(stack))
            with progress.step("delete", "retained", f"{len(kept)} objects"):
                deployment.mocks.delete(kept)
            retained_file(stack).unlink()
    if path.exists():
        path.unlink()
    progress.summary("down", stack, 0)
    if retained_file(stack).exists():
        names = ", ".join(item.name for item in load(retained_file(stack)))
        progress.line(
            f"dev-stack: kept {names} (retain_on_delete): `scripts/dev-stack down --delete-data {stack}` "
            "deletes it"
        )


def _stack(name: str) -> str:
    """A stack name argument: one with a stack file."""
    if not stack_file(name).is_file():
        raise argparse.ArgumentTypeError(
            f"no stack {name!r}: {stack_file(name).relative_to(ROOT)} does not exist"
        )
    return name


def _config_file(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"dev-stack: --config-file {path}: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise SystemExit(f"dev-stack: --config-file {path}: no `config:` mapping")
    config: dict[str, Any] = document["config"]
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/dev-stack", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("action", choices=["up", "preview", "down"])
    parser.add_argument("stack", help="a stack with a stacks/Pulumi.<stack>.yaml")
    parser.add_argument(
        "--config-file",
        type=Path,
        help="the stack's config from this file (its `config:` mapping) instead of stacks/Pulumi.<stack>.yaml, "
        "as `pulumi up --config-file`",
    )
    parser.add_argument("--json", action="store_true", help="up: only the outputs JSON on stdout")
    parser.add_argument("--delete-data", action="store_true", help="down: delete retained objects too")
    args = parser.parse_args(argv)
    if args.config_file is None:
        try:
            _stack(args.stack)
        except argparse.ArgumentTypeError as error:
            parser.error(f"argument stack: {error}")
        config = stack_config(args.stack)
    else:
        config = _config_file(args.config_file)
    if args.json and args.action != "up":
        parser.error("--json goes with up")
    if args.delete_data and args.action != "down":
        parser.error("--delete-data goes with down")
    try:
        if args.action == "up":
            outputs = up(args.stack, config, out=sys.stderr if args.json else sys.stdout)
            print(json.dumps(outputs))
        elif args.action == "preview":
            preview(args.stack, config)
        else:
            down(args.stack, delete_data=args.delete_data)
    except Interrupted as stopped:
        print(f"dev-stack: {stopped}", file=sys.stderr)
        raise SystemExit(128 + stopped.signum) from None  # as a shell reports a process a signal ended
    except NotModelled as refused:
        print(f"dev-stack: refused: {refused}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
