"""The SLO gate: after a run, the failure ratio and the p95 of each endpoint decide Locust's exit code.

Thresholds are Locust options, with the defaults below, overridable on the command line (or in a config file
of a run that imports this module; pyproject.toml's [tool.locust] holds only Locust's own options, which every
locustfile, loadtests/benchmark.py included, accepts):
  --slo-max-failure-ratio 0.0
  --slo-p95-ms "/api/items/{id}=500,/api/items=800,/api/work=2000"
Importing this module registers the options and the `quitting` listener.
"""

from __future__ import annotations

import logging
from typing import Any

from locust import events

log = logging.getLogger("hostscale.slo")

DEFAULT_P95_LIMITS = "/api/items/{id}=500,/api/items=800,/api/work=2000"


def parse_p95_limits(text: str) -> dict[str, float]:
    """'name=ms,name=ms' -> {name: ms}; a malformed entry is an error naming it."""
    limits: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = entry.rpartition("=")
        try:
            limits[name] = float(value)
        except ValueError:
            raise ValueError(f"--slo-p95-ms entry {entry!r} is not NAME=MILLISECONDS") from None
        if not sep or not name:
            raise ValueError(f"--slo-p95-ms entry {entry!r} is not NAME=MILLISECONDS")
    return limits


def evaluate(stats: Any, max_failure_ratio: float, p95_limits: dict[str, float]) -> list[str]:
    """The SLO violations of a run's RequestStats, as sentences; empty when every SLO held."""
    problems = []
    total = stats.total
    if total.num_requests == 0:
        return ["no request was made"]
    if total.fail_ratio > max_failure_ratio:
        problems.append(
            f"failure ratio {total.fail_ratio:.4f} ({total.num_failures} of {total.num_requests}) "
            f"is above {max_failure_ratio:g}"
        )
    for name, limit in p95_limits.items():
        entries = [entry for (entry_name, _), entry in stats.entries.items() if entry_name == name]
        if not entries:
            problems.append(f"{name}: no request was made, so its p95 cannot hold")
            continue
        for entry in entries:
            p95 = entry.get_response_time_percentile(0.95)
            if p95 > limit:
                problems.append(f"{entry.method} {name}: p95 {p95:.0f} ms is above {limit:g} ms")
    return problems


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--slo-max-failure-ratio", type=float, default=0.0, help="highest failure ratio allowed"
    )
    parser.add_argument(
        "--slo-p95-ms", default=DEFAULT_P95_LIMITS, help="p95 limits: NAME=MS,NAME=MS (request names)"
    )


@events.quitting.add_listener
def _gate(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    problems = evaluate(
        environment.stats, options.slo_max_failure_ratio, parse_p95_limits(options.slo_p95_ms)
    )
    for problem in problems:
        log.error("SLO violated: %s", problem)
    if problems:
        environment.process_exit_code = 1
    else:
        log.info("every SLO held")
