"""While a replica drains, each response closes its connection.

HAProxy keeps idle keep-alive connections to a replica and may send the next request on one at the moment the
replica, shutting down, closes it. For a GET HAProxy replays the request elsewhere; a POST is never replayed
(components/haproxy_cfg.py), so HAProxy closes the client's connection instead and the client's write fails.
A draining replica therefore leaves no connection idle: each request during the drain gets its answer and a
`Connection: close`, HAProxy opens a new connection for the next one, and once the replica stops listening
that connection is refused, which HAProxy retries on another replica whatever the method (nothing was sent).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CloseWhileDraining:
    """Adds `Connection: close` to every response started while `scope["app"].state.draining` is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and state.draining:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)
