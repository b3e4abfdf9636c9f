"""Versioned SQL migrations, applied at start-up exactly once however many replicas start together.

Files in `migrations/` are named `NNNN_description.sql` and applied in order. A replica takes a Postgres
advisory lock before looking at what is applied, so ten replicas starting at once queue on the lock and
only the first applies anything; each migration and its bookkeeping row commit in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to differ from other advisory locks taken on the same database.
MIGRATION_LOCK_KEY = 0x686F737473636C65  # "hostscle"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_description.sql")
        migrations.append(Migration(int(match.group(1)), path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migration files share a version number: {versions}")
    return migrations


async def apply_migrations(
    conn: asyncpg.Connection | PoolConnectionProxy, migrations: list[Migration], timeout_s: float = 120.0
) -> list[int]:
    """Apply what is not applied yet; returns the versions this call applied.

    Waiting for the lock and running a migration may take far longer than a request's budget, so every call
    passes its own timeout and the server-side statement timeout is lifted for this session.
    """
    await conn.execute("SET statement_timeout = 0", timeout=timeout_s)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=timeout_s)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text        NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())""",
            timeout=timeout_s,
        )
        rows = await conn.fetch("SELECT version FROM schema_migrations", timeout=timeout_s)
        done = {row["version"] for row in rows}
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql, timeout=timeout_s)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                    timeout=timeout_s,
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY, timeout=timeout_s)
