"""The scaling timeline: one picture of what the tier did during a load run.

    uv run python -m loadtests.report --csv reports/run --autoscaler http://127.0.0.1:9100 --out reports/run

Merges Locust's stats history (`<csv>_stats_history.csv`, written with --csv-full-history), the autoscaler's
decision log (`/events`, which also carries HAProxy's per-server state at every evaluation) and, where the stack
has them, powered-on VMs, onto one time axis: requests/s and failures/s, p50/p95 latency, replicas (desired and
ready) and VMs, with every scaling decision marked and its reason written beside it. Writes timeline.png,
timeline.html and timeline.json (the merged series) into --out.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


@dataclass
class Timeline:
    start: float  # unix time of the first Locust sample: t = 0 on every axis
    load: dict[str, list[float]] = field(default_factory=dict)  # t, users, rps, fps, p50, p95
    replicas: dict[str, list[float]] = field(default_factory=dict)  # t, desired, ready, current
    vms: dict[str, list[float]] = field(default_factory=dict)  # t, running (empty without VMs)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # t, direction, from, to, reason
    vm_steps: list[dict[str, Any]] = field(default_factory=list)  # t, step ("power_on vm-1: reason")


def _number(text: str) -> float:
    return float(text) if text not in ("", "N/A") else float("nan")


def read_locust_history(path: Path) -> list[dict[str, float]]:
    """The Aggregated rows of a stats history written with --csv-full-history (pyproject.toml's [tool.locust]
    sets it). Without it Locust writes only Aggregated rows, and their percentiles are cumulative since the
    start of the run: a p95 that never comes down after a slow minute. So a history without a single
    per-request row is refused."""
    rows = []
    per_request = 0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] != "Aggregated":
                per_request += 1
                continue
            rows.append(
                {
                    "time": float(row["Timestamp"]),
                    "users": _number(row["User Count"]),
                    "rps": _number(row["Requests/s"]),
                    "fps": _number(row["Failures/s"]),
                    "p50": _number(row["50%"]),
                    "p95": _number(row["95%"]),
                }
            )
    if not rows:
        raise ValueError(
            f"{path} has no Aggregated rows: is it a Locust stats history (<prefix>_stats_history.csv)?"
        )
    if not per_request:
        raise ValueError(
            f"{path} was written without --csv-full-history: its percentiles are cumulative since the start "
            "of the run, not per interval"
        )
    return rows


def build_timeline(history: list[dict[str, float]], events: list[dict[str, Any]]) -> Timeline:
    start, end = history[0]["time"], history[-1]["time"]
    timeline = Timeline(start=start)
    timeline.load = {key: [row[key] for row in history] for key in ("users", "rps", "fps", "p50", "p95")}
    timeline.load["t"] = [row["time"] - start for row in history]
    during = [e for e in events if start - 5 <= e["time"] <= end + 5]
    timeline.replicas = {
        "t": [e["time"] - start for e in during],
        "desired": [e["desired"] for e in during],
        "ready": [e["ready"] for e in during],
        "current": [e["current"] for e in during],
    }
    if any(e.get("vms_running") is not None for e in during):  # only stacks with VMs report them
        timeline.vms = {
            "t": [e["time"] - start for e in during],
            "running": [e.get("vms_running") or 0 for e in during],
        }
    timeline.vm_steps = [
        {"t": e["time"] - start, "step": step} for e in during for step in e.get("vm_steps", [])
    ]
    timeline.decisions = [
        {
            "t": e["time"] - start,
            "direction": e["direction"],
            "from": e["current"],
            "to": e["desired"],
            "reason": "; ".join(e["reasons"]),
        }
        for e in during
        if e["acted"]
    ]
    return timeline


def plot(timeline: Timeline, path: Path) -> None:
    rows = 4 if timeline.vms else 3
    fig, axes = plt.subplots(rows, 1, figsize=(13, 2.6 * rows + 1.5), sharex=True, constrained_layout=True)
    load, reps = timeline.load, timeline.replicas
    axes[0].plot(load["t"], load["rps"], label="requests/s", color="tab:blue")
    axes[0].plot(load["t"], load["fps"], label="failures/s", color="tab:red")
    users = axes[0].twinx()
    users.plot(load["t"], load["users"], label="users", color="tab:gray", linestyle=":")
    users.set_ylabel("users")
    axes[0].set_ylabel("req/s")
    axes[0].legend(loc="upper left")
    axes[1].plot(load["t"], load["p50"], label="p50", color="tab:green")
    axes[1].plot(load["t"], load["p95"], label="p95", color="tab:orange")
    axes[1].set_ylabel("latency (ms)")
    axes[1].legend(loc="upper left")
    axes[2].step(
        reps["t"], reps["desired"], where="post", label="desired", color="tab:purple", linewidth=3, alpha=0.6
    )
    axes[2].step(reps["t"], reps["ready"], where="post", label="ready (UP in HAProxy)", color="tab:cyan")
    axes[2].set_ylabel("replicas")
    axes[2].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].legend(loc="upper left")
    if timeline.vms:
        axes[3].step(timeline.vms["t"], timeline.vms["running"], where="post", color="tab:brown")
        axes[3].set_ylabel("VMs on")
        axes[3].yaxis.set_major_locator(MaxNLocator(integer=True))
        vm_top = max([*timeline.vms["running"], 1])
        for index, step in enumerate(timeline.vm_steps):
            axes[3].axvline(step["t"], color="tab:brown", alpha=0.5, linestyle="--", linewidth=1)
            axes[3].annotate(
                step["step"].split(":")[0],  # "power_on vm-1"
                (step["t"], vm_top * (0.9 - 0.15 * (index % 4))),
                fontsize=7,
                color="tab:brown",
            )
    top = max([*reps["desired"], *reps["ready"], 1])
    for index, decision in enumerate(timeline.decisions):
        color = "tab:red" if decision["direction"] == "up" else "tab:green"
        for axis in axes:
            axis.axvline(decision["t"], color=color, alpha=0.35, linewidth=1)
        label = f"{decision['from']}→{decision['to']}: {decision['reason'][:60]}"
        axes[2].annotate(
            label,
            (decision["t"], top * (0.95 - 0.12 * (index % 5))),
            fontsize=7,
            rotation=0,
            color=color,
        )
    axes[-1].set_xlabel("seconds since the load started")
    fig.suptitle("hostscale: scaling timeline")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_html(timeline: Timeline, png: Path, path: Path) -> None:
    image = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><td>{d['t']:.1f}</td><td>{d['direction']}</td><td>{d['from']} → {d['to']}</td>"
        f"<td>{html.escape(d['reason'])}</td></tr>"
        for d in timeline.decisions
    )
    path.write_text(
        "<!doctype html><meta charset=utf-8><title>hostscale scaling timeline</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left;"
        "border-bottom:1px solid #ddd}</style>"
        f"<h1>Scaling timeline</h1><img alt='timeline' src='data:image/png;base64,{image}' style='max-width:100%'>"
        "<h2>Scaling decisions</h2><table><tr><th>t (s)</th><th>direction</th><th>replicas</th><th>reason</th></tr>"
        f"{rows}</table>"
        + (
            "<h2>VM steps</h2><table><tr><th>t (s)</th><th>step</th></tr>"
            + "".join(
                f"<tr><td>{v['t']:.1f}</td><td>{html.escape(v['step'])}</td></tr>" for v in timeline.vm_steps
            )
            + "</table>"
            if timeline.vm_steps
            else ""
        )
    )


def fetch_events(autoscaler_url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{autoscaler_url.rstrip('/')}/events", params={"since": 0}, timeout=10)
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def make_report(csv_prefix: Path, events: list[dict[str, Any]], out: Path) -> Timeline:
    timeline = build_timeline(read_locust_history(Path(f"{csv_prefix}_stats_history.csv")), events)
    out.mkdir(parents=True, exist_ok=True)
    plot(timeline, out / "timeline.png")
    write_html(timeline, out / "timeline.png", out / "timeline.html")
    (out / "timeline.json").write_text(json.dumps(asdict(timeline)))
    return timeline


def main() -> None:
    parser = argparse.ArgumentParser(description="hostscale's scaling timeline report")
    parser.add_argument("--csv", required=True, type=Path, help="the --csv prefix of the Locust run")
    parser.add_argument("--autoscaler", default="http://127.0.0.1:9100", help="the autoscaler's status API")
    parser.add_argument("--events", type=Path, help="a saved /events JSON instead of asking the autoscaler")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    events = json.loads(args.events.read_text())["events"] if args.events else fetch_events(args.autoscaler)
    timeline = make_report(args.csv, events, args.out)
    print(
        f"{args.out}/timeline.png: {len(timeline.decisions)} scaling decisions, peak {max(timeline.replicas['desired'], default=0)} replicas"
    )


if __name__ == "__main__":
    main()
