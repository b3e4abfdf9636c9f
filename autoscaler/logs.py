"""One JSON object per log line, on stderr: what `docker logs` and a log shipper read without a parser.

    {"time": "2026-12-01T22:18:10.123Z", "level": "WARNING", "logger": "hostscale.autoscaler", "message": "..."}

An exception adds "exception" (the traceback as one string). A message that is itself a JSON object is
embedded as "event" rather than quoted, so it stays a structure: the controller logs each decision that way.
The app carries the same formatter (app/logs.py): each image holds only its own package.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        message = record.getMessage()
        event = _json_object(message)
        if event is None:
            line["message"] = message
        else:
            line["message"] = "event"
            line["event"] = event
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def configure_logging(level: int = logging.INFO) -> None:
    """The root logger writes JSON lines to stderr; uvicorn's loggers propagate to it (log_config=None)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
