"""The engine stand-in's bookkeeping without an engine: deletes honour retain_on_delete and protect and
checkpoint after each; the state file is written atomically and refuses what it did not write; progress says
what a long step waits for; a plan line never shows a secret."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Literal

import docker
import pytest

from harness.dev_stack import plan_line, up
from harness.engine import Deployment, delete_all
from harness.engine_apply import EngineApplyMocks
from harness.plan import NotModelled, plan_step
from harness.program import SECRET_SIG
from harness.progress import Progress
from harness.state import Applied, DockerObject, ResourceState, StackState, StateError, load


class RecordingDeletes(EngineApplyMocks):
    """The mocks with deletes recorded instead of sent to an engine (no engine is touched)."""

    def __init__(self) -> None:
        super().__init__(docker.DockerClient.__new__(docker.DockerClient))
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def delete(self, objects: list[Applied]) -> None:
        with self.lock:
            self.deleted += [item.name for item in objects]


def resource(name: str, *deps: str, retain: bool = False, protect: bool = False) -> ResourceState:
    kind: Literal["volume", "network"] = "volume" if retain else "network"
    return ResourceState(
        urn=f"urn:{name}", type=f"docker:index/{kind}:X", name=name, id=f"{name}-id", inputs={}, outputs={},
        dependencies=[f"urn:{dep}" for dep in deps], protect=protect, retain_on_delete=retain,
        objects=[DockerObject(kind, name, f"hs-{name}", f"{name}-id")],
    )  # fmt: skip


def deployment(
    tmp_path: Path, resources: list[ResourceState]
) -> tuple[Deployment, RecordingDeletes, io.StringIO]:
    mocks, out = RecordingDeletes(), io.StringIO()
    state = StackState(list(resources))
    return (
        Deployment(
            "t", state, mocks, Progress(out), False, tmp_path / "t.json", tmp_path / "t.retained.json"
        ),
        mocks,
        out,
    )


def test_down_keeps_a_retained_resource_lists_it_and_deletes_the_rest_dependents_first(
    tmp_path: Path,
) -> None:
    resources = [resource("net"), resource("pgdata", retain=True), resource("db", "net", "pgdata")]
    run, mocks, out = deployment(tmp_path, resources)
    delete_all(run, list(resources), delete_data=False, retain_on_delete=False)
    assert mocks.deleted == ["db", "net"]
    assert load(tmp_path / "t.retained.json") == resources[1].objects
    assert StackState.load(tmp_path / "t.json").resources == []
    assert re.search(r"^~- kept     docker:index/volume:X pgdata \(retain_on_delete\)", out.getvalue(), re.M)


def test_down_with_delete_data_deletes_a_retained_resource_too(tmp_path: Path) -> None:
    resources = [resource("pgdata", retain=True)]
    run, mocks, _ = deployment(tmp_path, resources)
    delete_all(run, list(resources), delete_data=True, retain_on_delete=False)
    assert mocks.deleted == ["pgdata"]
    assert not (tmp_path / "t.retained.json").exists()


def test_a_resource_dropped_by_up_is_retained_even_when_down_would_delete_data(tmp_path: Path) -> None:
    # `up` never deletes data: retain_on_delete holds for every delete the engine makes.
    resources = [resource("pgdata", retain=True)]
    run, mocks, _ = deployment(tmp_path, resources)
    delete_all(run, list(resources), delete_data=True, retain_on_delete=True)
    assert mocks.deleted == []


def test_a_protected_resource_is_not_deleted_and_nothing_else_is_either(tmp_path: Path) -> None:
    resources = [resource("net"), resource("db", "net", protect=True)]
    run, mocks, _ = deployment(tmp_path, resources)
    with pytest.raises(NotModelled) as refused:
        delete_all(run, list(resources), delete_data=False, retain_on_delete=False)
    assert str(refused.value) == (
        "docker:index/network:X db: protected, the engine refuses to delete it (drop `protect` from the program "
        "and run `up` first)"
    )
    assert mocks.deleted == []


def test_each_delete_is_checkpointed(tmp_path: Path) -> None:
    resources = [resource("net"), resource("db", "net")]
    run, _, _ = deployment(tmp_path, resources)
    seen: list[list[str]] = []
    original = run.checkpoint

    def checkpoint() -> None:
        original()
        seen.append([r.name for r in StackState.load(tmp_path / "t.json").resources])

    run.checkpoint = checkpoint  # type: ignore[method-assign]
    delete_all(run, list(resources), delete_data=False, retain_on_delete=False)
    assert seen == [["net"], []]


def test_a_stop_signal_stops_deletes_between_waves(tmp_path: Path) -> None:
    resources = [resource("net"), resource("db", "net")]
    run, mocks, _ = deployment(tmp_path, resources)
    run.stop_signal = 15
    with pytest.raises(Exception, match=r"^SIGTERM: stopped between two steps"):
        delete_all(run, list(resources), delete_data=False, retain_on_delete=False)
    assert mocks.deleted == []


def test_the_state_comes_back_as_saved_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    state = StackState([resource("net"), resource("db", "net")], [resource("old-db")])
    state.save(tmp_path / "t.json")
    assert StackState.load(tmp_path / "t.json") == state
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_a_state_resource_with_unknown_fields_is_refused(tmp_path: Path) -> None:
    entry = {**resource("net").to_json(), "status": "ok"}
    (tmp_path / "t.json").write_text(json.dumps({"version": 2, "resources": [entry], "pending_deletes": []}))
    with pytest.raises(StateError, match=r"resource 0: a resource has fields \[.*'status'.*\], expected"):
        StackState.load(tmp_path / "t.json")


def test_up_refuses_a_state_written_before_per_resource_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.dev_stack.STATE_DIR", tmp_path)
    (tmp_path / "old.json").write_text(json.dumps([{"record": "command-step", "name": "c", "delete": None,
                                                    "directory": "/"}]))  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        up("old", config={})
    assert str(refused.value) == (
        f"dev-stack: {tmp_path / 'old.json'} was written by an older harness (no per-resource state): run "
        "`scripts/dev-stack down old` once, then `up`"
    )


def test_a_long_step_says_what_it_waits_for_and_then_its_line(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = Progress(out, heartbeat_s=0.05)
    with progress.step("create", "command:local:Command", "app-build"):
        progress.waiting("`./scripts/build-images app`")
        time.sleep(0.12)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "   ... creating command:local:Command app-build: waiting for `./scripts/build-images app` (0 s)"
    )
    assert re.fullmatch(r"\+  created  command:local:Command app-build \(0\.1 s\)", lines[-1])


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": value}


def test_a_plan_line_shows_a_changed_secret_as_secret_and_other_values_as_they_are() -> None:
    step = plan_step(
        "docker:index/secret:Secret",
        "database-password",
        {"name": "hs-db", "data": secret("b2xk")},
        {"name": "hs-db2", "data": secret("bmV3")},
    )
    assert plan_line(step) == (
        '+- docker:index/secret:Secret database-password [data: [secret] => [secret]; name: "hs-db" => "hs-db2"]'
    )


def test_a_failed_step_says_so_and_is_not_counted() -> None:
    out = io.StringIO()
    progress = Progress(out)
    with pytest.raises(RuntimeError), progress.step("create", "docker:index/network:Network", "swarm-web"):
        raise RuntimeError("409 Conflict")
    assert re.fullmatch(
        r"!  failed   docker:index/network:Network swarm-web \(0\.0 s\): RuntimeError\n", out.getvalue()
    )
    assert progress.counts["create"] == 0
