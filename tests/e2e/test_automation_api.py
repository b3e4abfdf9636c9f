"""`pulumi up` / `pulumi destroy` of the local stack through Pulumi's Automation API, with the real CLI.

The CLI is not installed on the project's own CI machines, so this skips there; the same
deployment is exercised for real by test_local_stack.py through the engine-less apply harness.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from images.build import ROOT
from testbed.waiting import wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="needs the Pulumi CLI, which is not on PATH (install it to run this test)",
)


def test_pulumi_up_serves_through_haproxy_and_destroy_removes_it(tmp_path: Path) -> None:
    from pulumi import automation as auto

    workspace = auto.LocalWorkspaceOptions(
        env_vars={
            "PULUMI_BACKEND_URL": f"file://{tmp_path}",
            "PULUMI_CONFIG_PASSPHRASE": "automation-api-test",
        }
    )
    stack = auto.create_or_select_stack(stack_name="local", work_dir=str(ROOT), opts=workspace)
    try:
        result = stack.up(on_output=print)
        url = result.outputs["url"].value
        assert url == "http://127.0.0.1:8080"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the stack to serve", ready, 180)
        assert httpx.post(f"{url}/api/items", json={"name": "automation api"}, timeout=5).status_code == 201
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack("local")
