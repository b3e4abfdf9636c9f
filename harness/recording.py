"""Run the Pulumi program (__main__.py) for a stack under Pulumi's mock runtime (harness/program.py) and record
what it declares.

The mocks are strict: a resource type the program was not expected to declare, or any provider function
call, fails the run loudly instead of returning something made up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pulumi
from pulumi.runtime.mocks import MockMonitor

from harness.program import SECRET_SIG, ProgramRun, run_program, unwrap_secrets

FAKE_JOIN_TOKEN = "SWMTKN-1-mock-join-token"  # noqa: S105 (a placeholder the mock returns)
FAKE_PASSWORD = "mock-generated-password"  # noqa: S105
FAKE_DIGEST = "sha256:" + "d" * 64  # what a push step prints: the digest the registry stored

KNOWN_TYPES = {
    "command:local:Command",
    "random:index/randomPassword:RandomPassword",
    "docker:index/network:Network",
    "docker:index/secret:Secret",
    "docker:index/volume:Volume",
    "docker:index/service:Service",
    "docker:index/container:Container",
    "pulumi:providers:libvirt",
    "libvirt:index/pool:Pool",
    "libvirt:index/network:Network",
    "libvirt:index/volume:Volume",
    "libvirt:index/cloudInitDisk:CloudInitDisk",
    "libvirt:index/domain:Domain",
}


@dataclass
class Declared:
    type: str
    inputs: dict[str, Any]
    ignore_changes: list[str] = field(default_factory=list)
    parent: str = ""
    secret_inputs: set[str] = field(default_factory=set)  # top-level inputs that arrived as secrets
    provider: str = ""  # the provider reference ("urn::id") of a resource with an explicit provider
    depends_on: list[str] = field(default_factory=list)  # names of the resources it waits for (depends_on)
    delete_before_replace: bool = False


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, Declared] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ.startswith("hostscale:index:"):  # the program's own components: nothing to mock
            self.resources.setdefault(args.name, Declared(args.typ, {})).inputs = dict(args.inputs)
            return f"{args.name}-id", {}
        if args.typ not in KNOWN_TYPES:
            raise NotImplementedError(f"the mocks do not know resource type {args.typ} ({args.name})")
        declared = self.resources.setdefault(args.name, Declared(args.typ, {}))
        if declared.type != args.typ:
            raise ValueError(f"two resources are named {args.name}: {declared.type} and {args.typ}")
        declared.provider = args.provider or ""
        declared.secret_inputs = {
            k for k, v in args.inputs.items() if isinstance(v, dict) and SECRET_SIG in v
        }
        declared.inputs = unwrap_secrets(dict(args.inputs))
        outputs = dict(args.inputs)  # as the engine does: secret inputs come back as secret outputs
        if args.typ == "command:local:Command":
            create = str(args.inputs.get("create"))
            outputs["stdout"] = (
                FAKE_JOIN_TOKEN if "join-token" in create else FAKE_DIGEST if "docker push" in create else ""
            )
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = FAKE_PASSWORD
        if args.typ == "libvirt:index/domain:Domain":
            nics = outputs.get("networkInterfaces", [])
            outputs["networkInterfaces"] = [{**nic, "addresses": ["10.77.0.10"]} for nic in nics]
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the program must not call provider functions, called {args.token}")


class RecordingMonitor(MockMonitor):
    """Also records what the mocks' arguments leave out: resource options such as ignore_changes."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:
        declared = self.recording.resources.setdefault(request.name, Declared(request.type, {}))
        declared.ignore_changes = list(request.ignoreChanges)
        declared.parent = request.parent
        declared.depends_on = [urn.rsplit("::", 1)[-1] for urn in request.dependencies]
        declared.delete_before_replace = bool(request.deleteBeforeReplace)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


@dataclass
class Recording(ProgramRun):
    resources: dict[str, Declared]

    def of_type(self, typ: str) -> dict[str, Declared]:
        return {name: r for name, r in self.resources.items() if r.type == typ}


def no_live_service(service_name: str) -> int | None:
    return None


def record_program(
    config: dict[str, Any],
    stack: str = "test",
    secrets: dict[str, str] | None = None,
    mocks: RecordingMocks | None = None,
    live_replica_count: Callable[[str], int | None] = no_live_service,
) -> Recording:
    """Run the program for `stack` and record what it declares (into `mocks` when given, so what was declared
    before a failure can be inspected).

    The program reads one thing from the Docker engine when it runs, the app service's live replica count
    (components/app_tier.py). A recording answers it with `live_replica_count`: by default as for an engine
    without that service, so what is recorded does not depend on what runs on this host, and a recording runs
    where no engine is (a pull request's preview, the Debian 13 proof); pass the program's own function to read
    the real engine, or a fake count."""
    mocks = mocks or RecordingMocks()
    with mock.patch("components.app_tier.live_replica_count", live_replica_count):
        run = run_program(config, stack, mocks, secrets, monitor=RecordingMonitor(mocks))
    return Recording(run.namespace, run.outputs, mocks.resources)
