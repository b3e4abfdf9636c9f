"""The app and the autoscaler each carry the same JSON log formatter (each image holds only its own package):
the two copies may differ in their docstrings only, so a fix to one cannot silently miss the other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def without_docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body: list[ast.stmt] = getattr(node, "body", None) or []
        first = body[0] if isinstance(body, list) and body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            setattr(node, "body", body[1:] or [ast.Pass()])  # noqa: B010 (ast nodes of several types)
    return ast.dump(tree)


def test_the_app_and_the_autoscaler_format_log_lines_with_the_same_code() -> None:
    assert without_docstrings(ROOT / "app" / "logs.py") == without_docstrings(ROOT / "autoscaler" / "logs.py")
