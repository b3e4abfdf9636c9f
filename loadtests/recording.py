"""What a run leaves behind besides Locust's own CSV: which replicas served, and every acknowledged write.

With `--record-dir DIR`, the run writes DIR/served_by.json and DIR/acknowledged.json when it ends; the
failure drills and the scaling timeline read them. Importing this module registers the option and listener.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from locust import events

from loadtests.personas import ACKNOWLEDGED, SERVED_BY


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument("--record-dir", default="", help="write served_by.json and acknowledged.json here")


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None or not options.record_dir:
        return
    directory = Path(options.record_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "served_by.json").write_text(json.dumps(dict(SERVED_BY), indent=2))
    (directory / "acknowledged.json").write_text(json.dumps({str(k): v for k, v in ACKNOWLEDGED.items()}))
