"""What the harness and the mock-runtime tests share: the stack files and the runtime's secret wrapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 (how the runtime marks a secret on the wire)
_SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (the marker's value, not a secret)


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` mapping of stacks/Pulumi.<stack>.yaml."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return config


def unwrap_secrets(value: Any) -> Any:
    """Resource inputs as plain values: the mock runtime hands secrets over wrapped in a signature object."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == _SECRET_VALUE:
            return unwrap_secrets(value["value"])
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value
