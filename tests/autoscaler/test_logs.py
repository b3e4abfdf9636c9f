"""The autoscaler's log: one JSON object per line; each decision the controller logs is a structure in it."""

from __future__ import annotations

import json
import subprocess
import sys


def test_a_decision_is_one_line_with_the_event_as_a_structure() -> None:
    # In a fresh interpreter, as the process starts: pytest's own logging set-up would capture the lines.
    probe = (
        "from autoscaler.service import configure_logging; configure_logging(); "
        "from tests.autoscaler.test_controller import controller; "
        "loop, source, _, _ = controller(); source.sessions_per_replica = 20; loop.tick(); "
        "import logging; logging.getLogger('hostscale.autoscaler').exception('tick failed', "
        "exc_info=ConnectionRefusedError('swarm'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    decision, failure = (json.loads(line) for line in lines)
    assert (decision["level"], decision["logger"], decision["message"]) == (
        "INFO",
        "hostscale.autoscaler",
        "event",
    )
    assert (decision["event"]["current"], decision["event"]["desired"]) == (2, 4)
    assert decision["event"]["reasons"] == ["rule 'sessions': 20 vs target 10 asks for 4"]
    assert (failure["level"], failure["message"]) == ("ERROR", "tick failed")
    assert failure["exception"] == "ConnectionRefusedError: swarm"
