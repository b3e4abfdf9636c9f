"""The status listener answers only requests whose Host is an IP address or `localhost`: a guard against DNS
rebinding.

A web page the operator opens elsewhere can point a name it controls at 127.0.0.1 and then read
`http://that-name:9100/status` (or the page, the events, the metrics) as its own origin: the browser sees no
cross-origin request. The Host header is what gives it away, since it carries that name. A browser that reaches
the listener by an address (127.0.0.1, ::1, the host's own IP when the operator opens the listener) or by
`localhost` sends that instead, and so do Prometheus, curl and the CLI. An operator who wants a name in front of
it puts a reverse proxy there that sets Host to the address it forwards to.
"""

from __future__ import annotations

import ipaddress
import json

from starlette.types import ASGIApp, Receive, Scope, Send


def is_allowed_host(host_header: str | None) -> bool:
    """True for an IP literal or `localhost`, with or without a port; a request with no Host (HTTP/1.0, which no
    browser sends) cannot be a rebinding and is allowed too."""
    if host_header is None:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # an IPv6 literal: [::1] or [::1]:9100
        name, _, port = host[1:].partition("]")
        port = port.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return False
    return name == "localhost" or _is_ip(name)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class HostGuard:
    """ASGI middleware: 421 with a JSON reason for a request whose Host is a name other than localhost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [value.decode("latin-1") for name, value in scope["headers"] if name == b"host"]
        if len(hosts) <= 1 and is_allowed_host(hosts[0] if hosts else None):
            await self.app(scope, receive, send)
            return
        shown = hosts[0][:80] if hosts else ""
        body = json.dumps(
            {
                "error": f"Host {shown!r} is refused: this listener answers to an IP address or localhost "
                "only (a guard against DNS rebinding; see autoscaler/host_guard.py)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
