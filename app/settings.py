"""The application server's settings, read once from the environment.

The database password is never an environment variable: only the *path* of the file that holds it is
(a Docker secret mounted at /run/secrets/...), and the file is read when a connection is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the value."""


@dataclass(frozen=True)
class Settings:
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password_file: Path
    pool_max_size: int
    # Budget for one request's database work, pool wait included: past it the client gets a 503.
    db_timeout_s: float
    port: int
    # After SIGTERM, keep serving this long so the load balancer can take the replica out of rotation.
    shutdown_grace_s: float
    # Then give in-flight requests at most this long to finish.
    shutdown_timeout_s: int
    # X-Served-By (the container's hostname, its ID) on every response: off by default, since it tells every
    # client which containers make up the tier; tests and debugging turn it on.
    served_by_header: bool = False

    def read_db_password(self) -> str:
        return self.db_password_file.read_text(encoding="utf-8").strip()


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = env.get(key, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key} must be between {low} and {high}, got {value}")
    return value


_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None:
        return default
    if raw.lower() not in _FLAGS:
        raise SettingsError(f"{key} must be true or false, got {raw!r}")
    return _FLAGS[raw.lower()]


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    if "DB_PASSWORD" in env:
        raise SettingsError("DB_PASSWORD is not read: put the password in a file and set DB_PASSWORD_FILE")
    return Settings(
        db_host=env.get("DB_HOST", "postgres"),
        db_port=_int(env, "DB_PORT", 5432, 1, 65535),
        db_name=env.get("DB_NAME", "app"),
        db_user=env.get("DB_USER", "app"),
        db_password_file=Path(env.get("DB_PASSWORD_FILE", "/run/secrets/db_password")),
        pool_max_size=_int(env, "DB_POOL_MAX_SIZE", 10, 1, 200),
        db_timeout_s=_float(env, "DB_TIMEOUT_SECONDS", 0.8, 0.05, 30.0),
        port=_int(env, "PORT", 8000, 1, 65535),
        shutdown_grace_s=_float(env, "SHUTDOWN_GRACE_SECONDS", 2.0, 0.0, 60.0),
        shutdown_timeout_s=_int(env, "SHUTDOWN_TIMEOUT_SECONDS", 10, 0, 300),
        served_by_header=_flag(env, "SERVED_BY_HEADER", False),
    )
