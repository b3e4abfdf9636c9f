"""The step that makes the app role's password in Postgres the one in the stack's Docker secret.

Postgres' entrypoint sets the password only when it initialises an empty volume; on a volume that holds data
(every `up` after the first, now that the volume is kept) a new `hostscale:db_password` would reach the app's
secret file but not the role, and every replica would be refused. So, once the Postgres task that mounts the
new secret runs, this step sets the role's password from that mounted file, inside the container, as the
postgres OS user over the local socket (peer authentication: no password needed for it). The password is on no
command line and in no environment variable: psql reads the file itself (`\\set ... `cat file``).

Run by the program as a pulumi-command step: `python -m components.role_password --service S --secret N`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import docker

POLL_INTERVAL_S = 1.0
SOCKET_DIR = "/var/run/postgresql"

# The image's own settings (images/postgres/Dockerfile): APP_DB_USER, APP_DB_PASSWORD_FILE. Terse errors and
# no statement in the server's log on error: an error message must never echo the statement with the password.
ALTER_ROLE = f"""psql --quiet --no-psqlrc -v ON_ERROR_STOP=1 -v VERBOSITY=terse --host={SOCKET_DIR} \
--username=postgres --dbname=postgres -v app_user="$APP_DB_USER" <<'SQL'
SET log_min_error_statement TO panic;
\\set app_password `cat "$APP_DB_PASSWORD_FILE"`
ALTER ROLE :"app_user" PASSWORD :'app_password';
SQL"""


class NotApplied(RuntimeError):
    """The password could not be set; the message says what was waited for."""


def mounts_secret(task: dict[str, Any], secret_name: str) -> bool:
    secrets = task["Spec"]["ContainerSpec"].get("Secrets") or []
    return any(secret.get("SecretName") == secret_name for secret in secrets)


def _running_container(client: docker.DockerClient, service: str, secret_name: str) -> tuple[Any, str]:
    """(the container of a running task that mounts the secret, or None; what the tasks are doing)."""
    tasks = client.services.get(service).tasks(filters={"desired-state": "running"})
    seen = [
        f"{task['Status']['State']}{'' if mounts_secret(task, secret_name) else ' (old secret)'}"
        for task in tasks
    ]
    for task in tasks:
        if task["Status"]["State"] == "running" and mounts_secret(task, secret_name):
            container_id = task["Status"]["ContainerStatus"]["ContainerID"]
            return client.containers.get(container_id), ", ".join(seen)
    return None, ", ".join(seen) or "no task"


def apply_role_password(
    client: docker.DockerClient, service: str, secret_name: str, timeout_s: float
) -> float:
    """Set the role's password from the secret once Postgres runs with it and answers; the seconds it took."""
    start = time.monotonic()
    state = "not looked yet"
    while time.monotonic() - start < timeout_s:
        container, state = _running_container(client, service, secret_name)
        if container is not None:
            ready, _ = container.exec_run(["pg_isready", "-q", "-h", SOCKET_DIR], user="postgres")
            if ready == 0:
                code, output = container.exec_run(["sh", "-c", ALTER_ROLE], user="postgres")
                if code != 0:
                    raise NotApplied(
                        f"setting the password in {service} failed ({code}): {output.decode().strip()}"
                    )
                return time.monotonic() - start
            state = f"{state}; Postgres does not accept connections yet"
        time.sleep(POLL_INTERVAL_S)
    raise NotApplied(
        f"no running task of {service} with secret {secret_name} accepted connections within {timeout_s:.0f} s"
        f" (tasks: {state})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.role_password", description=__doc__)
    parser.add_argument("--service", required=True, help="the Postgres Swarm service")
    parser.add_argument("--secret", required=True, help="the Docker secret (by name) holding the password")
    parser.add_argument("--timeout-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    client = docker.from_env()
    try:
        took = apply_role_password(client, args.service, args.secret, args.timeout_seconds)
    except NotApplied as failed:
        print(f"role_password: {failed}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"the app role's password is the one in {args.secret} ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
