"""Settings come from the environment; every error names the variable and the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings


def test_settings_defaults_point_at_the_postgres_service_and_its_secret_file() -> None:
    settings = load_settings({})
    assert (settings.db_host, settings.db_port, settings.db_name, settings.db_user) == (
        "postgres",
        5432,
        "app",
        "app",
    )
    assert settings.db_password_file == Path("/run/secrets/db_password")
    assert settings.db_timeout_s < 1.0, "the 503-within-1-s promise needs a budget under a second"
    assert settings.served_by_header is False, "X-Served-By tells clients container IDs: opt-in only"


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("FALSE", False), ("0", False)])
def test_served_by_header_reads_true_or_false(raw: str, expected: bool) -> None:
    assert load_settings({"SERVED_BY_HEADER": raw}).served_by_header is expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"DB_PORT": "five"}, "DB_PORT must be an integer, got 'five'", id="non-numeric port"),
        pytest.param(
            {"DB_PORT": "70000"}, "DB_PORT must be between 1 and 65535, got 70000", id="port out of range"
        ),
        pytest.param(
            {"DB_TIMEOUT_SECONDS": "0"},
            "DB_TIMEOUT_SECONDS must be between 0.05 and 30.0, got 0.0",
            id="zero budget",
        ),
        pytest.param(
            {"DB_POOL_MAX_SIZE": "x"},
            "DB_POOL_MAX_SIZE must be an integer, got 'x'",
            id="pool size not a number",
        ),
        pytest.param(
            {"SERVED_BY_HEADER": "yes"},
            "SERVED_BY_HEADER must be true or false, got 'yes'",
            id="served-by flag that is not a boolean",
        ),
        pytest.param(
            {"DB_PASSWORD": "hunter2"},
            "DB_PASSWORD is not read: put the password in a file and set DB_PASSWORD_FILE",
            id="password in the environment is refused",
        ),
    ],
)
def test_settings_reject_bad_values_naming_them(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert str(error.value) == message


def test_settings_read_password_strips_the_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert load_settings({"DB_PASSWORD_FILE": str(secret)}).read_db_password() == "s3cret"
