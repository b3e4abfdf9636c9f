"""Runs inside a worker VM at its first boot (cloud-init ships this file's source): join the Swarm with the
token read from a root-only file, through the Engine API on the local socket.

Why not `docker swarm join --token ...`: the token would sit on the docker CLI's argv, which every process on
the VM can read in /proc/<pid>/cmdline and which process listings and audit logs record. Here it travels only
from the file into the request body. Standard library only: the VM's image has python3 (cloud-init's own) and
no curl.

    python3 guest_swarm_join.py MANAGER:PORT TOKEN_FILE [ENGINE_SOCKET]
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time

ATTEMPTS = 120  # the manager may not answer yet, or the VM's address may come late: ten minutes in all
PAUSE_S = 5.0


class EngineConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def engine(
    socket_path: str, method: str, path: str, body: dict[str, object] | None = None
) -> tuple[int, bytes]:
    connection = EngineConnection(socket_path)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def joined(socket_path: str) -> bool:
    status, body = engine(socket_path, "GET", "/info")
    return status == 200 and json.loads(body).get("Swarm", {}).get("LocalNodeState") == "active"


def join(
    manager: str, token_file: str, socket_path: str, attempts: int = ATTEMPTS, pause_s: float = PAUSE_S
) -> int:
    with open(token_file, encoding="ascii") as handle:
        token = handle.read().strip()
    request: dict[str, object] = {"ListenAddr": "0.0.0.0:2377", "RemoteAddrs": [manager], "JoinToken": token}
    for attempt in range(1, attempts + 1):
        try:
            if joined(socket_path):
                return 0
            status, answer = engine(socket_path, "POST", "/swarm/join", request)
        except OSError as exc:  # the engine is still starting
            status, answer = 0, str(exc).encode()
        if status == 200:
            return 0
        # The engine's message never repeats the token; it says why (manager unreachable, token refused).
        print(
            f"swarm join, attempt {attempt}: {status} {answer.decode(errors='replace').strip()}",
            file=sys.stderr,
        )
        time.sleep(pause_s)
    return 1


if __name__ == "__main__":
    manager_addr, path = sys.argv[1], sys.argv[2]
    sys.exit(join(manager_addr, path, sys.argv[3] if len(sys.argv) > 3 else "/var/run/docker.sock"))
