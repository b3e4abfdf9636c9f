"""The scaling timeline from a Locust history and an autoscaler event log (synthetic here; the end-to-end test
makes one from a real run)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadtests.report import make_report, read_locust_history

COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "95%"]


def write_history(prefix: Path, rows: list[list[object]]) -> None:
    with Path(f"{prefix}_stats_history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def event(
    seq: int, t: float, current: int, desired: int, ready: int, acted: bool, reason: str
) -> dict[str, object]:
    direction = "up" if desired > current else "down" if desired < current else "none"
    return {
        "seq": seq, "time": t, "current": current, "desired": desired, "ready": ready,
        "direction": direction, "reasons": [reason], "acted": acted, "metrics": {}, "servers": {},
    }  # fmt: skip


def test_report_merges_load_and_decisions_on_one_axis(tmp_path: Path) -> None:
    start = 1_000.0
    write_history(
        tmp_path / "run",
        [
            [int(start + s), users, "", "Aggregated", rps, 0, 30, 90]
            for s, users, rps in [(0, 3, 10), (10, 30, 60), (20, 30, 80), (30, 3, 10)]
        ]
        + [[int(start + 10), 30, "GET", "/api/work", 40, 0, 30, 90]],
    )
    events = [
        event(1, start - 60, 2, 2, 2, False, "before the run: ignored"),
        event(
            2,
            start + 12,
            2,
            4,
            2,
            True,
            "rule 'sessions': 6.5 vs target 3 asks for 5; limited by max step up (2)",
        ),
        event(3, start + 20, 4, 4, 4, False, "within tolerance"),
        event(
            4,
            start + 31,
            4,
            3,
            4,
            True,
            "rule 'sessions': 1 vs target 3 asks for 2; limited by max step down (1)",
        ),
    ]
    timeline = make_report(tmp_path / "run", events, tmp_path / "out")
    assert timeline.load["t"] == [0, 10, 20, 30]
    assert timeline.load["rps"] == [10, 60, 80, 10]
    assert timeline.replicas["desired"] == [4, 4, 3]
    assert [(d["t"], d["direction"], d["from"], d["to"]) for d in timeline.decisions] == [
        (12, "up", 2, 4),
        (31, "down", 4, 3),
    ]
    assert (tmp_path / "out" / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "out" / "timeline.html").read_text()
    assert "limited by max step up (2)" in page
    assert json.loads((tmp_path / "out" / "timeline.json").read_text())["decisions"][0]["to"] == 4


def test_report_refuses_a_history_without_aggregated_rows(tmp_path: Path) -> None:
    write_history(tmp_path / "run", [[1000, 3, "GET", "/api/work", 10, 0, 30, 90]])
    path = Path(f"{tmp_path / 'run'}_stats_history.csv")
    with pytest.raises(ValueError, match="has no Aggregated rows") as refused:
        read_locust_history(path)
    assert (
        str(refused.value)
        == f"{path} has no Aggregated rows: is it a Locust stats history (<prefix>_stats_history.csv)?"
    )


def test_report_refuses_a_history_written_without_full_history(tmp_path: Path) -> None:
    """Only Aggregated rows: Locust wrote cumulative percentiles, which would draw a p95 that never falls."""
    write_history(tmp_path / "run", [[1000 + s, 3, "", "Aggregated", 10, 0, 30, 90] for s in (0, 10)])
    path = Path(f"{tmp_path / 'run'}_stats_history.csv")
    with pytest.raises(ValueError, match="without --csv-full-history") as refused:
        read_locust_history(path)
    assert str(refused.value) == (
        f"{path} was written without --csv-full-history: its percentiles are cumulative since the start of "
        "the run, not per interval"
    )


def test_report_shows_vms_and_their_steps_when_the_stack_has_them(tmp_path: Path) -> None:
    start = 1_000.0
    write_history(
        tmp_path / "run",
        [[int(start + s), 12, "", "Aggregated", 40, 0, 30, 90] for s in (0, 10, 20, 30)]
        + [[int(start), 12, "GET", "/api/work", 40, 0, 30, 90]],
    )
    events = [
        {**event(1, start + 1, 2, 4, 2, True, "sessions"), "vms_running": 1, "vm_steps": []},
        {
            **event(2, start + 3, 4, 4, 2, False, "sessions"),
            "vms_running": 1,
            "vm_steps": ["power_on w1: 2 workers needed for 4 replicas"],
        },
        {**event(3, start + 9, 4, 4, 4, False, "sessions"), "vms_running": 2, "vm_steps": []},
    ]
    timeline = make_report(tmp_path / "run", events, tmp_path / "out")
    assert timeline.vms["running"] == [1, 1, 2]
    assert timeline.vm_steps == [{"t": 3.0, "step": "power_on w1: 2 workers needed for 4 replicas"}]
    page = (tmp_path / "out" / "timeline.html").read_text()
    assert "<h2>VM steps</h2>" in page
    assert "power_on w1: 2 workers needed for 4 replicas" in page


def test_report_of_a_stack_without_vms_has_no_vm_panel(tmp_path: Path) -> None:
    start = 1_000.0
    write_history(
        tmp_path / "run",
        [[int(start + s), 3, "", "Aggregated", 10, 0, 30, 90] for s in (0, 10)]
        + [[int(start), 3, "GET", "/api/work", 10, 0, 30, 90]],
    )
    events = [{**event(1, start + 1, 2, 2, 2, False, "ok"), "vms_running": None, "vm_steps": []}]
    timeline = make_report(tmp_path / "run", events, tmp_path / "out")
    assert timeline.vms == {}
    assert "VM steps" not in (tmp_path / "out" / "timeline.html").read_text()
