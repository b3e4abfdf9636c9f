"""The Postgres image: first start, restart on existing data, authentication, clean shutdown."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from testbed.containers import TestBed, container_ip
from testbed.postgres import query
from testbed.waiting import wait_for


def test_postgres_first_start_creates_role_and_database_with_checksums(testbed: TestBed) -> None:
    pg = testbed.postgres()
    rows = query(container_ip(pg), testbed.password, "SELECT current_user, current_database()")
    assert rows == [("app", "app")]
    assert query(container_ip(pg), testbed.password, "SHOW data_checksums")[0][0] == "on"
    assert query(container_ip(pg), testbed.password, "SHOW password_encryption")[0][0] == "scram-sha-256"
    superuser = query(
        container_ip(pg), testbed.password, "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"
    )
    assert superuser[0][0] is False, "the app role must not be a superuser"


def test_postgres_refuses_a_wrong_password(testbed: TestBed) -> None:
    pg = testbed.postgres()
    with pytest.raises(asyncpg.InvalidPasswordError):
        query(container_ip(pg), "not-" + testbed.password, "SELECT 1")


def test_postgres_superuser_cannot_log_in_over_the_network(testbed: TestBed) -> None:
    pg = testbed.postgres()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="rejects connection"):
        query(container_ip(pg), testbed.password, "SELECT 1", user="postgres", database="postgres")


def test_postgres_restart_keeps_rows_and_does_not_reinitialise(testbed: TestBed) -> None:
    data = testbed.volume("pgdata")
    first = testbed.postgres("pg-first", volume=data)
    query(
        container_ip(first),
        testbed.password,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')",
    )
    first.stop(timeout=20)
    first.remove()

    second = testbed.postgres("pg-second", volume=data)
    assert [tuple(r) for r in query(container_ip(second), testbed.password, "SELECT v FROM kept")] == [
        ("before",)
    ]
    assert b"initialising" not in second.logs(), "a volume holding data must not be initialised again"


def test_postgres_sigterm_is_a_clean_fast_shutdown(testbed: TestBed) -> None:
    data = testbed.volume("pgdata")
    pg = testbed.postgres(volume=data)

    async def hold_a_connection_and_stop() -> None:
        # An idle pooled client that never disconnects is what makes Postgres' own SIGTERM handling hang.
        conn = await asyncpg.connect(
            host=container_ip(pg), user="app", password=testbed.password, database="app"
        )
        try:
            pg.kill(signal="SIGTERM")
            await asyncio.to_thread(
                wait_for, "postgres to exit", lambda: pg.reload() or pg.status == "exited", 15
            )
        finally:
            await conn.close()

    asyncio.run(hold_a_connection_and_stop())
    assert pg.attrs["State"]["ExitCode"] == 0
    assert b"database system is shut down" in pg.logs()
    pg.remove()
    again = testbed.postgres("pg-again", volume=data)
    assert b"automatic recovery in progress" not in again.logs(), "a clean shutdown needs no crash recovery"


def test_postgres_without_its_password_file_refuses_to_initialise(testbed: TestBed) -> None:
    pg = testbed.run(
        "postgres", "pg-nosecret", volumes={testbed.volume("pgdata"): {"bind": "/var/lib/postgresql/data"}}
    )
    result = pg.wait(timeout=30)
    assert result["StatusCode"] == 1
    assert b"APP_DB_PASSWORD_FILE=/run/secrets/db_password is missing or unreadable" in pg.logs()


def test_postgres_password_never_appears_in_environment_or_arguments(testbed: TestBed) -> None:
    pg = testbed.postgres()
    pg.reload()
    config = pg.attrs["Config"]
    assert testbed.password not in " ".join(config["Env"] or [])
    # The image has no ps: read every process' command line from /proc.
    exit_code, cmdlines = pg.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
    assert exit_code == 0
    assert b"postgres -D" in cmdlines, "the check must see the server's own command line"
    assert testbed.password.encode() not in cmdlines
    assert testbed.password.encode() not in pg.logs()
