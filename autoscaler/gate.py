"""The gate: it holds the Docker socket (and the local libvirt socket) so that the autoscaler does not, and
offers it a Docker API that lets through only the calls autoscaler/docker_rules.py allows.

    python3 -m autoscaler.gate --settings /etc/hostscale/gate.json

It serves on a unix socket in a volume it shares with the autoscaler only. HTTP is parsed by uvicorn's h11
(strict: a request with both Content-Length and Transfer-Encoding, or a malformed one, gets a 400 before it
reaches this code); requests to the engine are built anew by httpx with only the method, path, query and body
the rules allowed, none of the caller's headers. Bodies are bounded, and so is every wait on the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from autoscaler.docker_rules import Call, Forward, Refused, check_service_answer, decide
from autoscaler.docker_rules import Scope as DockerScope
from autoscaler.logs import configure_logging
from autoscaler.virsh_rules import LOCAL_URI, allowed, virsh_argv, visible
from autoscaler.virsh_rules import Refused as VirshRefused

log = logging.getLogger("hostscale.gate")

DOCKER_SOCKET = "/var/run/docker.sock"
LISTEN_DIR = "/run/hostscale/gate"
# A service spec with its secrets and mounts is a few KB; a megabyte is far more than any call it lets through.
MAX_BODY_BYTES = 1 << 20
ENGINE_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Headers passed back from the engine: what docker-py reads (the API version on /_ping), no more.
ANSWER_HEADERS = ("api-version", "content-type", "docker-experimental", "ostype")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class GateSettings:
    docker: DockerScope
    # The VMs on this host's libvirt; none: no libvirt socket is mounted, and no libvirt gate serves.
    libvirt_domains: frozenset[str] = frozenset()
    docker_socket: str = DOCKER_SOCKET
    listen_dir: str = LISTEN_DIR
    libvirt_uri: str = LOCAL_URI

    @property
    def docker_listen(self) -> str:
        return f"{self.listen_dir}/docker.sock"

    @property
    def libvirt_listen(self) -> str:
        return f"{self.listen_dir}/libvirt.sock"


KEYS = ("service", "worker_nodes", "libvirt_domains", "docker_socket", "listen_dir", "libvirt_uri")


def read_settings(path: Path) -> GateSettings:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: not a JSON object")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise SettingsError(f"{path}: unknown key {unknown[0]!r}")
    service = raw.get("service")
    if not isinstance(service, str) or not service:
        raise SettingsError(f"{path}: service must be the app service's name, got {service!r}")
    names = {}
    for key in ("worker_nodes", "libvirt_domains"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
            raise SettingsError(f"{path}: {key} must be a list of VM names, got {value!r}")
        names[key] = frozenset(value)
    paths = {key: raw[key] for key in ("docker_socket", "listen_dir") if key in raw}
    for key, value in paths.items():
        if not isinstance(value, str) or not value.startswith("/"):
            raise SettingsError(f"{path}: {key} must be an absolute path, got {value!r}")
    uri = raw.get("libvirt_uri", LOCAL_URI)
    if not isinstance(uri, str) or not uri.startswith("qemu:///"):
        raise SettingsError(f"{path}: libvirt_uri must be a local qemu:/// URI, got {uri!r}")
    return GateSettings(
        DockerScope(service, names["worker_nodes"]), names["libvirt_domains"], libvirt_uri=uri, **paths
    )


def refusal(call: Call, reason: str) -> JSONResponse:
    # Docker's own error shape: docker-py shows "message" as the APIError's explanation.
    message = f"hostscale gate: {call} refused: {reason}"
    log.warning(message)
    return JSONResponse({"message": message}, status_code=403)


class DockerGate:
    """An ASGI app: each request is checked against the rules, then sent to the engine as the rules built it."""

    def __init__(self, scope: DockerScope, engine: httpx.AsyncClient) -> None:
        self.scope = scope
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        request = Request(scope, receive)
        response = await self.answer(request)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        call = Call(request.method, request.url.path, tuple(request.query_params.multi_items()), b"")
        try:
            body = await bounded_body(request)
        except ClientDisconnect:
            return Response(status_code=400)
        except Refused as refused:
            return refusal(call, str(refused))
        call = Call(call.method, call.path, call.query, body)
        try:
            forward = await decide(call, self.scope, self.fetch)
            answer = await self.send(forward)
            if forward.expect_service and answer.status_code == 200:
                check_service_answer(answer.json(), self.scope)
        except Refused as refused:
            return refusal(call, str(refused))
        except httpx.HTTPError as exc:
            log.warning("hostscale gate: %s: the engine did not answer: %r", call, exc)
            return JSONResponse({"message": f"hostscale gate: the engine did not answer: {exc!r}"}, 502)
        if call.method == "POST":
            log.info("hostscale gate: %s let through: %s", call, answer.status_code)
        headers = {k: v for k, v in answer.headers.items() if k.lower() in ANSWER_HEADERS}
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    async def send(self, forward: Forward) -> httpx.Response:
        headers = {"Content-Type": "application/json"} if forward.body else {}
        return await self.engine.request(
            forward.method, forward.path, params=list(forward.query), content=forward.body, headers=headers
        )

    async def fetch(self, path: str) -> dict[str, Any]:
        answer = await self.engine.get(path)
        if answer.status_code != 200:
            raise Refused(f"{path}: the engine answered {answer.status_code}")
        value = answer.json()
        if not isinstance(value, dict):
            raise Refused(f"{path}: the engine's answer is not an object")
        return value


async def bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > MAX_BODY_BYTES:
        raise Refused(f"a body of {declared} bytes, more than {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(f"a body of more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class LibvirtGate:
    """An ASGI app: POST /virsh {"args": [...], "timeout": seconds} runs an allowed virsh call on the local
    libvirt and answers {"returncode", "stdout", "stderr"} (autoscaler/libvirt.py is its client)."""

    def __init__(self, domains: frozenset[str], uri: str = LOCAL_URI) -> None:
        self.domains = domains
        self.uri = uri

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.answer(request)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        call = Call(request.method, request.url.path, (), b"")
        if (request.method, request.url.path) != ("POST", "/virsh"):
            return refusal(call, "not a call the autoscaler makes")
        try:
            raw = json.loads(await bounded_body(request))
        except (Refused, ValueError, ClientDisconnect):
            return refusal(call, "the body is not a JSON object of at most a megabyte")
        args, timeout = (raw.get("args"), raw.get("timeout", 600)) if isinstance(raw, dict) else (None, None)
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return refusal(call, f"args {args!r} is not a list of words")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 3600:
            return refusal(call, f"timeout {timeout!r} is not a number of seconds up to 3600")
        call = Call("virsh", " ".join(args)[:120], (), b"")
        try:
            words = allowed(args, self.domains)
        except VirshRefused as refused:
            return refusal(call, str(refused))
        process = await asyncio.create_subprocess_exec(
            *virsh_argv(words, self.uri), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning("hostscale gate: %s: no answer from libvirt within %s s", call, timeout)
            return JSONResponse({"message": f"hostscale gate: {call}: timed out after {timeout} s"}, 504)
        if words[0] != "list" and words[0] != "domstate":
            log.info("hostscale gate: %s let through: exit %s", call, process.returncode)
        return JSONResponse(
            {
                "returncode": process.returncode,
                "stdout": visible(words, stdout.decode(errors="replace"), self.domains),
                "stderr": stderr.decode(errors="replace"),
            }
        )


def engine_client(docker_socket: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=docker_socket),
        base_url="http://docker",
        timeout=ENGINE_TIMEOUT,
    )


def server(app: Any, socket_path: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        uds=socket_path,
        http="h11",  # the strict parser, whatever else is installed
        lifespan="off",
        log_level="warning",
        log_config=None,
        limit_concurrency=32,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,  # request line and headers
    )
    return uvicorn.Server(config)


async def serve(settings: GateSettings) -> None:
    async with engine_client(settings.docker_socket) as engine:
        servers = [server(DockerGate(settings.docker, engine), settings.docker_listen)]
        if settings.libvirt_domains:
            libvirt = LibvirtGate(settings.libvirt_domains, settings.libvirt_uri)
            servers.append(server(libvirt, settings.libvirt_listen))
        await asyncio.gather(*(s.serve() for s in servers))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoscaler.gate", description="the autoscaler's Docker API gate")
    parser.add_argument("--settings", type=Path, required=True, help="the gate's settings file (JSON)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = read_settings(args.settings)
    except SettingsError as exc:
        print(f"gate: invalid settings: {exc}", file=sys.stderr)
        return 2
    log.info(
        "gate for service %s, worker nodes %s", settings.docker.service, sorted(settings.docker.worker_nodes)
    )
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
