"""Migration files are found in order and misnamed or clashing files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.schema import load_migrations


def test_load_migrations_orders_by_version(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2;")
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [(1, "0001_first"), (2, "0002_second")]


def test_load_migrations_refuses_a_misnamed_file(tmp_path: Path) -> None:
    (tmp_path / "first.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"'first\.sql' is not named NNNN_description\.sql"):
        load_migrations(tmp_path)


def test_load_migrations_refuses_two_files_with_one_version(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="two migration files share a version number"):
        load_migrations(tmp_path)


def test_shipped_migrations_load() -> None:
    assert [m.version for m in load_migrations()][:1] == [1]
