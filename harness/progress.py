"""Progress of an `up`, `down` or `preview`: one line per resource step as it completes (action, type, name,
seconds), a line every ~10 s while a long step waits (an image build, a VM join) saying what it waits for,
and a summary at the end. Lines go to one stream (stdout, or stderr with `--json`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import TextIO

HEARTBEAT_S = 10.0

SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "retain": "~-"}
DONE = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "retain": "kept",
}
DOING = {
    "create": "creating",
    "update": "updating",
    "replace": "replacing",
    "delete": "deleting",
    "retain": "",
}


class Progress:
    def __init__(self, stream: TextIO, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.stream = stream
        self.heartbeat_s = heartbeat_s
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._current = threading.local()  # the step this thread runs: {"what": ...}
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def waiting(self, what: str) -> None:
        """What this thread's running step waits for now (said by the heartbeat)."""
        current = getattr(self._current, "step", None)
        if current is not None:
            current["what"] = what

    @contextlib.contextmanager
    def step(self, action: str, typ: str, name: str, note: str = "") -> Iterator[None]:
        """One resource step: its line when it completes; a heartbeat while it runs."""
        began = time.monotonic()
        current = {"what": ""}
        self._current.step = current
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                what = f": waiting for {current['what']}" if current["what"] else ""
                self.line(f"   ... {DOING[action]} {typ} {name}{what} ({time.monotonic() - began:.0f} s)")

        heartbeat = threading.Thread(target=beat, daemon=True)
        heartbeat.start()
        try:
            yield
        except BaseException as error:
            self.line(f"!  failed   {typ} {name} ({time.monotonic() - began:.1f} s): {type(error).__name__}")
            raise
        finally:
            stop.set()
            heartbeat.join()
            self._current.step = None
        with self._lock:
            self.counts[action] += 1
        suffix = f" {note}" if note else ""
        self.line(
            f"{SYMBOLS[action]:<2} {DONE[action]:<8} {typ} {name}{suffix} ({time.monotonic() - began:.1f} s)"
        )

    def summary(self, verb: str, stack: str, unchanged: int) -> str:
        parts = [f"{self.counts[action]} {DONE[action]}" for action in DONE if self.counts[action]]
        parts.append(f"{unchanged} unchanged")
        text = f"{verb} {stack}: {', '.join(parts)} in {time.monotonic() - self.started:.1f} s"
        self.line(text)
        return text
