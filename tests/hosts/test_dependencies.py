"""The dependency split: [project.dependencies] is exactly what the Pulumi program imports, a deployment's plain
`uv sync` (what Pulumi's uv toolchain runs) installs nothing else, and every locked package installs on the
Pythons the project supports (3.11 to 3.13) on Linux x86_64 without a compiler."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK: dict[str, Any] = tomllib.loads((ROOT / "uv.lock").read_text())
LOCAL_PACKAGES = {path.parent.name for path in ROOT.glob("*/__init__.py")}
# What `pulumi up` runs: the program, and the project's modules its pulumi-command steps run
# (./scripts/build-images and ./scripts/vm-join).
PROGRAM_ENTRY_POINTS = ("__main__.py", "images/build.py", "components/vm_join.py")
# What only the tests, the load tests, the linters and the images need; none of it belongs in a deployment.
NOT_FOR_DEPLOYMENTS = ("pytest", "hypothesis", "locust", "matplotlib", "mypy", "ruff", "starlette", "asyncpg")
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


def declared_dependencies() -> set[str]:
    return {canonicalize_name(Requirement(spec).name) for spec in PYPROJECT["project"]["dependencies"]}


def module_file(module: str) -> Path | None:
    """The project's source file for a dotted module name, None for a module from outside the project."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_distributions(entry_points: tuple[str, ...]) -> set[str]:
    """The third-party distributions the entry points import, following the project's own modules."""
    distributions_of = importlib.metadata.packages_distributions()
    pending = [ROOT / entry for entry in entry_points]
    seen: set[Path] = set()
    found: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), str(path))
        # Imports under `if TYPE_CHECKING:` never run: the type checker's, not the deployment's.
        typing_only = {
            id(inner)
            for block in ast.walk(tree)
            if isinstance(block, ast.If)
            and isinstance(block.test, ast.Name)
            and block.test.id == "TYPE_CHECKING"
            for inner in ast.walk(block)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in LOCAL_PACKAGES:
                    source = module_file(module)
                    if source is not None:
                        pending.append(source)
                elif top in distributions_of:
                    found.update(canonicalize_name(name) for name in distributions_of[top])
                elif top not in sys.stdlib_module_names and top != "__future__":
                    raise AssertionError(
                        f"{path.relative_to(ROOT)} imports {module}, which no installed distribution provides"
                    )
    return found


def test_the_program_dependencies_are_exactly_what_the_program_imports() -> None:
    assert declared_dependencies() == imported_distributions(PROGRAM_ENTRY_POINTS)


def test_no_test_or_lint_tool_is_a_program_dependency() -> None:
    assert declared_dependencies() & {canonicalize_name(name) for name in NOT_FOR_DEPLOYMENTS} == set()


def test_a_plain_uv_sync_installs_no_dependency_group() -> None:
    # Pulumi's uv toolchain runs `uv sync` with no flags: only an empty default-groups keeps the groups out
    # (without the setting, uv installs the `dev` group by default).
    assert PYPROJECT["tool"]["uv"]["default-groups"] == []


@pytest.mark.parametrize("version", SUPPORTED_PYTHONS, ids=lambda version: f"python {version} is allowed")
def test_requires_python_allows(version: str) -> None:
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{version}.0")
    assert SpecifierSet(LOCK["requires-python"].replace(" ", "")).contains(f"{version}.0")


def linux_x86_64_tags(version: str) -> set[Tag]:
    major, minor = (int(part) for part in version.split("."))
    # manylinux_2_17 (CentOS 7) up to Debian 13's glibc 2.41, and the legacy aliases of the oldest ones.
    platforms = [f"manylinux_2_{glibc}_x86_64" for glibc in range(41, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    tags = set(cpython_tags((major, minor), platforms=platforms))
    tags |= set(compatible_tags((major, minor), f"cp{major}{minor}", platforms=platforms))
    return tags


def installed_on_linux(version: str) -> set[str]:
    """What the tests' environment (every group) installs from the lock on CPython `version`, Linux x86_64: uv's
    own export of the lock, each package's marker evaluated for that target."""
    exported = subprocess.run(
        [
            "uv",
            "export",
            "--frozen",
            "--all-groups",
            "--no-hashes",
            "--no-emit-project",
            "--no-header",
            "--no-annotate",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    target = {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
    }
    names: set[str] = set()
    for line in exported.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(target):
                names.add(canonicalize_name(requirement.name))
    return names


def packages_without_a_wheel_for(version: str) -> list[str]:
    tags = linux_x86_64_tags(version)
    installed = installed_on_linux(version)
    missing = []
    for package in LOCK["package"]:
        if canonicalize_name(package["name"]) not in installed:
            continue
        wheel_tags = set()
        for wheel in package.get("wheels", []):
            wheel_tags |= set(parse_wheel_filename(wheel["url"].rsplit("/", 1)[1])[3])
        if not wheel_tags & tags:
            missing.append(f"{package['name']}=={package['version']}")
    return missing


@pytest.mark.parametrize(
    "version", SUPPORTED_PYTHONS, ids=lambda version: f"every locked package has a wheel for python {version}"
)
def test_every_locked_package_has_a_linux_wheel(version: str) -> None:
    assert packages_without_a_wheel_for(version) == []


def test_a_deployment_environment_runs_the_program_without_the_test_tools(tmp_path: Path) -> None:
    """What Pulumi does on `pulumi up` (a plain `uv sync` into the project's environment, then the program),
    in a fresh environment: the program runs under the recording mocks, and the test tools are absent."""
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        ["uv", "sync", "--frozen", "--quiet", "--python", sys.executable],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    probe = (
        "import importlib.util, json\n"
        "from harness.program import stack_config\n"
        "from harness.recording import record_program\n"
        "import components.vm_join, images.build\n"
        "run = record_program(stack_config('local'), 'local')\n"
        f"absent = [name for name in {NOT_FOR_DEPLOYMENTS!r} if importlib.util.find_spec(name) is None]\n"
        "print(json.dumps({'url': 'url' in run.outputs, 'absent': absent}))\n"
    )
    result = subprocess.run(
        [venv / "bin" / "python", "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[
        -1
    ] == f'{{"url": true, "absent": {list(NOT_FOR_DEPLOYMENTS)!r}}}'.replace("'", '"')
