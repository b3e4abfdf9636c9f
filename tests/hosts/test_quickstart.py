"""The Pulumi CLI quickstart in docs/hosts.md against the project it describes (the CLI itself is not installed
on CI machines; tests/e2e/test_automation_api.py runs `up`/`destroy` with it where it is): the backend's
directory exists in a clone, the stack it creates has a stack file, the secret it sets is one the program reads
and is never on a command line, the outputs it lists are the ones the stack exports, and the steps come in an
order Pulumi accepts."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def quickstart() -> list[str]:
    """The commands of the quickstart's code block, comments and blank lines left out."""
    text = (ROOT / "docs" / "hosts.md").read_text()
    section = text.split("## Quickstart with the Pulumi CLI", 1)[1]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [
        line.split(" # ")[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def step(prefix: str) -> tuple[int, str]:
    """The position and text of the one command that starts with (or pipes into) `prefix`."""
    found = [
        (i, line) for i, line in enumerate(quickstart()) if re.search(rf"(^|\| ){re.escape(prefix)}", line)
    ]
    assert len(found) == 1, f"expected one `{prefix}` in the quickstart, found {[line for _, line in found]}"
    return found[0]


def local_stack_outputs() -> list[str]:
    """The local stack's exports, from a run of the program in a process of its own: in one process, a run's
    outputs include those of the runs before it (harness/program.py reads the runtime's root resource)."""
    probe = (
        "import json\n"
        "from harness.program import stack_config\n"
        "from harness.recording import record_program\n"
        "print(json.dumps(list(record_program(stack_config('local'), 'local').outputs)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    outputs: list[str] = json.loads(result.stdout.splitlines()[-1])
    return outputs


def test_the_file_backends_directory_is_in_a_clone() -> None:
    url = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["backend"]["url"]
    assert url == "file://./.state/pulumi"
    assert (ROOT / ".state" / "pulumi" / ".gitkeep").is_file()
    if (ROOT / ".git").exists():  # a checkout, not a copy of its files (scripts/prove-debian13 makes one)
        tracked = subprocess.run(
            ["git", "ls-files", ".state/pulumi"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        assert tracked.split() == [".state/pulumi/.gitkeep"]


def test_the_stack_it_creates_has_a_stack_file() -> None:
    _, init = step("pulumi stack init")
    stack = init.split()[-1]
    assert (ROOT / "stacks" / f"Pulumi.{stack}.yaml").is_file()


def test_the_secret_comes_from_stdin_and_is_one_the_program_reads() -> None:
    _, config_set = step("pulumi config set --secret")
    key = config_set.split("pulumi config set --secret ", 1)[1].split()
    assert len(key) == 1, f"a value on the command line: {config_set}"
    namespace, name = key[0].split(":")
    assert namespace == yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
    program = ast.parse((ROOT / "__main__.py").read_text())
    secrets_read = {
        call.args[0].value
        for call in ast.walk(program)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in {"get_secret", "require_secret"}
        and call.args
        and isinstance(call.args[0], ast.Constant)
    }
    assert name in secrets_read


def test_the_passphrase_is_a_file_not_a_variable_holding_it() -> None:
    commands = quickstart()
    assert not [line for line in commands if "PULUMI_CONFIG_PASSPHRASE=" in line]
    assert "export PULUMI_CONFIG_PASSPHRASE_FILE=~/.hostscale-passphrase" in commands


def test_the_outputs_it_lists_are_what_the_stack_exports() -> None:
    step("pulumi stack output")
    block = (ROOT / "docs" / "hosts.md").read_text().split("## Quickstart with the Pulumi CLI", 1)[1]
    listed = next(line for line in block.splitlines() if line.startswith("pulumi stack output "))
    names = listed.split("# ", 1)[1].split(", ")
    assert names == local_stack_outputs()


def test_the_steps_come_in_an_order_pulumi_accepts() -> None:
    order = [
        "sudo ./scripts/setup-host",
        "export PULUMI_CONFIG_PASSPHRASE_FILE",
        "pulumi stack init",
        "pulumi config set --secret",
        "pulumi preview",
        "pulumi up --yes",
        "pulumi stack output",
        "pulumi destroy --yes",
    ]
    positions = [step(prefix)[0] for prefix in order]
    assert positions == sorted(positions)
