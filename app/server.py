"""Run the app under uvicorn with a graceful drain.

On SIGTERM the replica first keeps serving for `shutdown_grace_s` with /readyz answering 503, because the
load balancer needs a moment (a health check or a DNS re-resolution) to stop sending it new requests; only
then does uvicorn stop accepting connections and wait up to `shutdown_timeout_s` for in-flight requests.
A second signal skips the grace period.
"""

from __future__ import annotations

import logging
import threading
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from app.logs import configure_logging
from app.main import create_app
from app.settings import Settings, load_settings

log = logging.getLogger("hostscale.app")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette, grace_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace_s = grace_s
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._timer is not None or self._grace_s <= 0:
            super().handle_exit(sig, frame)
            return
        log.info("signal %d: draining for %.1f s before shutdown", sig, self._grace_s)
        self._app.state.draining = True
        # uvicorn's main loop polls should_exit every 0.1 s, so setting it from a timer thread is safe.
        self._timer = threading.Timer(self._grace_s, super().handle_exit, args=(sig, None))
        self._timer.daemon = True
        self._timer.start()


def build_server(settings: Settings) -> DrainingServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="0.0.0.0",  # noqa: S104 (a container's own interface; the host decides what is published)
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # per-request logs would cost more CPU than the sample app's own work
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        timeout_keep_alive=30,  # longer than HAProxy's idle timeout, so HAProxy closes idle connections first
        log_level="info",
        log_config=None,  # uvicorn's own lines go through the root logger's JSON formatter (app/logs.py)
    )
    return DrainingServer(config, app, settings.shutdown_grace_s)


def main() -> None:
    configure_logging()  # one JSON object per line
    build_server(load_settings()).run()
