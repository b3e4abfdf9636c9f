"""What the program declares so that a second `up` keeps the data and a new db_password reaches the role: the
plan of resources under Pulumi's mock runtime, with the resource options the engine acts on (retain_on_delete,
protect, dependencies) recorded too."""

from __future__ import annotations

import hashlib
import hmac
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest

from harness.program import run_program, stack_config
from harness.recording import FAKE_PASSWORD, RecordingMocks, RecordingMonitor, no_live_service

PASSWORD = "first-password-0123456789"  # noqa: S105 (a test value)
ROTATED = "second-password-9876543210"


@dataclass
class Options:
    retain_on_delete: bool
    protect: bool
    dependencies: list[str]  # the names of the resources it waits for


@dataclass
class Plan:
    inputs: dict[str, dict[str, Any]]
    options: dict[str, Options]
    secret_inputs: dict[str, set[str]] = field(default_factory=dict)


class OptionsMonitor(RecordingMonitor):
    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, Options] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.options[request.name] = Options(
            request.retainOnDelete,
            request.protect,
            sorted(urn.split("::")[-1] for urn in request.dependencies),
        )
        return super().RegisterResource(request)


def plan(password: str | None = PASSWORD) -> Plan:
    mocks = RecordingMocks()
    monitor = OptionsMonitor(mocks)
    secrets = {"hostscale:db_password": password} if password is not None else {}
    with mock.patch("components.app_tier.live_replica_count", no_live_service):  # as record_program does
        run_program(stack_config("local"), "local", mocks, secrets, monitor=monitor)
    return Plan(
        {name: r.inputs for name, r in mocks.resources.items()},
        monitor.options,
        {name: r.secret_inputs for name, r in mocks.resources.items()},
    )


def secret_name(password: str) -> str:
    # The name key is a RandomPassword: the recording mocks answer FAKE_PASSWORD for each.
    digest = hmac.new(FAKE_PASSWORD.encode(), password.encode(), hashlib.sha256).hexdigest()[:12]
    return f"hostscale-db-password-{digest}"


@pytest.fixture(scope="module")
def first() -> Plan:
    return plan(PASSWORD)


@pytest.fixture(scope="module")
def rotated() -> Plan:
    return plan(ROTATED)


def test_the_data_volume_outlives_the_stack_but_does_not_block_down(first: Plan) -> None:
    assert first.options["database-data"] == Options(retain_on_delete=True, protect=False, dependencies=[])
    assert first.inputs["database-data"] == {"name": "hostscale-pgdata"}


def test_the_secret_is_named_after_a_keyed_digest_of_its_password(first: Plan, rotated: Plan) -> None:
    assert first.inputs["database-password"]["name"] == secret_name(PASSWORD)
    assert rotated.inputs["database-password"]["name"] == secret_name(ROTATED)
    assert secret_name(PASSWORD) != secret_name(ROTATED)
    assert plan(PASSWORD).inputs["database-password"]["name"] == secret_name(PASSWORD), (
        "same password, same name"
    )
    assert first.secret_inputs["database-password"] == {"data"}, "the name is plain, the data secret"


def test_a_rotated_password_changes_the_secret_every_service_mounts(first: Plan, rotated: Plan) -> None:
    for service in ("database-service", "app-service"):
        before = first.inputs[service]["taskSpec"]["containerSpec"]["secrets"]
        after = rotated.inputs[service]["taskSpec"]["containerSpec"]["secrets"]
        assert [s["secretName"] for s in (*before, *after)] == [
            secret_name(PASSWORD),
            secret_name(ROTATED),
        ], service


def test_the_role_password_step_runs_for_each_new_secret_after_postgres(first: Plan, rotated: Plan) -> None:
    for password, declared in ((PASSWORD, first), (ROTATED, rotated)):
        step = declared.inputs["database-role-password"]
        assert step["create"] == shlex.join(
            [
                sys.executable,
                "-m",
                "components.role_password",
                "--service=hostscale-postgres",
                f"--secret={secret_name(password)}",
                "--timeout-seconds=180",
            ]
        )
        assert step["triggers"] == [secret_name(password)]
        assert password not in str(step), "the password must not be on the step's command line"
    assert "database-service" in first.options["database-role-password"].dependencies


def test_the_app_moves_onto_a_new_secret_only_after_the_role_has_its_password(first: Plan) -> None:
    assert "database-role-password" in first.options["app-service"].dependencies


def test_postgres_is_stopped_before_its_replacement_starts(first: Plan) -> None:
    assert first.inputs["database-service"]["updateConfig"] == {"parallelism": 1, "order": "stop-first"}


def test_a_generated_password_gets_a_secret_of_its_own_name_too() -> None:
    generated = plan(None)
    assert generated.inputs["database-password"]["name"] == secret_name(FAKE_PASSWORD)


def test_the_readiness_step_runs_last_and_again_when_what_serves_changes(first: Plan) -> None:
    step = first.inputs["readiness-check"]
    assert step["create"] == shlex.join(
        [
            sys.executable,
            "-m",
            "components.readiness",
            "--url=http://127.0.0.1:8080",
            "--path=/healthz",
            "--stats-url=http://127.0.0.1:8404/stats",
            "--backend=app",
            "--replicas=2",
            "--timeout-seconds=180",
        ]
    )
    app_image = first.inputs["app-service"]["taskSpec"]["containerSpec"]["image"]
    assert step["triggers"] == [app_image, secret_name(PASSWORD), "load-balancer-haproxy-id"]
    assert {"app-service", "load-balancer-haproxy"} <= set(first.options["readiness-check"].dependencies)
