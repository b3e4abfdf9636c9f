"""The one way this project runs the Pulumi program (__main__.py) without the Pulumi CLI: under Pulumi's mock
runtime, with mocks that either apply each resource for real (harness/engine_apply.py, `scripts/dev-stack`) or
record what the program declares (harness/recording.py, the unit tests). Also what both share: the stack files
and the runtime's secret wrapping."""

from __future__ import annotations

import asyncio
import json
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 (how the runtime marks a secret on the wire)
_SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (the marker's value, not a secret)


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` mapping of stacks/Pulumi.<stack>.yaml."""
    config: dict[str, Any] = yaml.safe_load(stack_file(stack).read_text())["config"]
    return config


def stack_file(stack: str) -> Path:
    return ROOT / "stacks" / f"Pulumi.{stack}.yaml"


def unwrap_secrets(value: Any) -> Any:
    """Resource inputs as plain values: the mock runtime hands secrets over wrapped in a signature object."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == _SECRET_VALUE:
            return unwrap_secrets(value["value"])
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


@dataclass
class ProgramRun:
    namespace: dict[str, Any]  # the program's globals: its components, for asserting on Outputs
    outputs: dict[str, Any]  # the stack's exports, resolved; a secret one reads "[secret]"

    def resolve(self, output: pulumi.Output[Any]) -> Any:
        return _sync_await(output.future())

    def is_secret(self, output: pulumi.Output[Any]) -> bool:
        return bool(_sync_await(output.is_secret()))


def run_program(
    config: dict[str, Any],
    stack: str,
    mocks: pulumi.runtime.Mocks,
    secrets: dict[str, str] | None = None,
    monitor: MockMonitor | None = None,
    preview: bool = False,
) -> ProgramRun:
    """Run __main__.py once with `config` (the stack file's `config:` mapping, or an edited copy) and `secrets`
    (full keys, e.g. "hostscale:db_password") as the stack's configuration. The program's own errors propagate.
    `preview`: a dry run, as `pulumi preview` runs the program (values not known yet are unknown Outputs)."""
    values = {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
    values.update(secrets or {})
    pulumi.runtime.set_all_config(values, list(secrets or {}))
    # Pulumi's runtime drives its own loop through asyncio.get_event_loop(); tests that ran asyncio.run()
    # before leave none set in the main thread.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project="hostscale", stack=stack, preview=preview, monitor=monitor)
    namespace: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi's decorator has no annotations
    def program() -> None:
        namespace.update(runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))

    program()
    return ProgramRun(namespace, _outputs())


def _outputs() -> dict[str, Any]:
    root = pulumi.runtime.get_root_resource()
    outputs: dict[str, Any] = {}
    for key, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        outputs[key] = "[secret]" if _sync_await(output.is_secret()) else _sync_await(output.future())
    return outputs
