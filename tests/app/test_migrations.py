"""Several replicas starting at once against an empty database apply each migration exactly once."""

from __future__ import annotations

from app.schema import load_migrations
from testbed.containers import TestBed, container_ip, published_url, wait_ready
from testbed.postgres import query

REPLICAS = 6


def test_concurrent_replicas_apply_each_migration_exactly_once(testbed: TestBed) -> None:
    pg = testbed.postgres()
    replicas = [testbed.app(f"app-{i}") for i in range(REPLICAS)]
    for replica in replicas:
        wait_ready(published_url(replica), timeout_s=90)

    expected = [(m.version, m.name) for m in load_migrations()]
    applied = query(
        container_ip(pg), testbed.password, "SELECT version, name FROM schema_migrations ORDER BY 1"
    )
    assert applied == expected
    appliers = [r.name for r in replicas if b"applied by this replica: [" in r.logs()]
    assert len(appliers) == 1, f"exactly one replica should apply the migrations, these did: {appliers}"
