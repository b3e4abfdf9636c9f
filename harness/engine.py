"""The engine stand-in: `up`, `preview` and `down` of a stack, with the Pulumi engine's update semantics.

`up` runs the program twice, as `pulumi up` previews and then updates. The first run (a dry run: values not
known yet are unknown) plans every resource against the recorded state (harness/plan.py) and checks that the
harness can apply each step: anything it does not model, a protected resource to replace or delete, fails
here, before anything changes. The second run applies the steps as the program registers its resources
(registration waits for dependencies, so creates and updates happen in dependency order), one at a time,
writing the state after each (harness/state.py). Then resources no longer declared, and the objects replaced
create-before-delete, are deleted, dependents first. SIGINT/SIGTERM stop it between two steps.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import docker
import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from harness.engine_apply import EngineApplyMocks
from harness.plan import Node, NotModelled, Step, deletion_waves, is_secret, plan_step
from harness.program import _SECRET_VALUE, SECRET_SIG, run_program
from harness.progress import Progress
from harness.props import Validated
from harness.state import Applied, ResourceState, StackState, load, save

# Outputs a provider computes (beyond echoing inputs): unknown in a preview of a create or replace.
COMPUTED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "command:local:Command": ("stdout", "stderr"),
    "random:index/randomPassword:RandomPassword": ("result",),
    "libvirt:index/domain:Domain": ("networkInterfaces",),
}


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: the deployment stopped between two steps."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class Skipped(Exception):
    """A step not started because an earlier one failed (the engine stops launching steps after an error)."""


@dataclass
class Deployment:
    """One `up` or preview of a stack against its recorded state."""

    stack: str
    state: StackState
    mocks: EngineApplyMocks
    progress: Progress
    preview: bool
    state_path: Path | None  # where each step's checkpoint goes (None: a preview writes nothing)
    retained_path: Path | None
    steps: list[Step] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # URNs, in registration order
    unchanged: int = 0
    failure: BaseException | None = None
    stop_signal: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def checkpoint(self) -> None:
        if self.state_path is not None:
            self.state.save(self.state_path)

    def register(self, urn: str, request: Any, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # One step at a time: the engine runs independent steps in parallel, the harness does not.
        with self._lock:
            if self.failure is not None:
                raise Skipped(f"{request.name}: not started, an earlier step failed")
            if self.stop_signal is not None:
                raise self._interrupted()
            try:
                return self._register(urn, request, inputs)
            except BaseException as error:
                self.failure = error
                raise

    def _interrupted(self) -> Interrupted:
        name = signal.Signals(self.stop_signal).name if self.stop_signal else "a signal"
        return Interrupted(
            f"{name}: stopped between two steps; the state holds every completed step "
            f"(`scripts/dev-stack up {self.stack}` or `down {self.stack}` completes it)",
            self.stop_signal or signal.SIGINT,
        )

    def _register(self, urn: str, request: Any, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        typ, name = request.type, request.name
        if urn in self.registered:
            raise NotModelled(f"two resources have the URN {urn}")
        self.registered.append(urn)
        old = self.state.find(urn)
        step = plan_step(
            typ,
            name,
            old.inputs if old else None,
            inputs,
            list(request.ignoreChanges),
            list(request.replaceOnChanges),
            # Protected in the state or by the program: the engine refuses to replace either.
            protect=bool((old and old.protect) or request.protect),
        )
        record = ResourceState(
            urn=urn,
            type=typ,
            name=name,
            id=old.id if old else "",
            inputs=step.inputs,
            outputs={},
            dependencies=list(request.dependencies),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
        )
        secret_outputs = list(request.additionalSecretOutputs)
        if step.op == "same":
            self.unchanged += 1
        else:
            self.steps.append(step)
        if self.preview:
            return self._preview(step, old, record, request.provider)
        if step.op == "same" and old is not None:
            if typ == "pulumi:providers:libvirt":
                self.mocks.libvirt.remember_provider(old.id, str(_plain(old.inputs.get("uri"))))
            # Options and dependencies are recorded without a step, as the engine does.
            record.id, record.outputs, record.objects = old.id, old.outputs, old.objects
            if record != old:
                self._replace_record(old, record)
                self.checkpoint()
            return old.id, old.outputs
        if step.op == "update" and old is not None:
            with self.progress.step("update", typ, name, f"[{', '.join(step.changed)}]"):
                self.mocks.applied.clear()
                outputs = self.mocks.update(typ, name, old.id, step.inputs)
                record.objects = list(self.mocks.applied) or old.objects
            record.outputs = _secret(outputs, secret_outputs)
            self._replace_record(old, record)
            self.checkpoint()
            return record.id, record.outputs
        if step.op == "replace" and old is not None:
            with self.progress.step("replace", typ, name, f"[{', '.join(step.changed)}]"):
                if record.delete_before_replace:
                    self._delete(old)
                    self.state.resources.remove(old)
                    self.checkpoint()
                    self._create(record, request.provider, secret_outputs)
                    self.state.resources.append(record)
                else:
                    self._create(record, request.provider, secret_outputs)
                    # The old object goes at the end, with the deletes (create-before-delete).
                    self.state.resources.remove(old)
                    self.state.pending_deletes.append(old)
                    self.state.resources.append(record)
            self.checkpoint()
            return record.id, record.outputs
        with self.progress.step("create", typ, name):
            self._create(record, request.provider, secret_outputs)
        self.state.resources.append(record)
        self.checkpoint()
        return record.id, record.outputs

    def _replace_record(self, old: ResourceState, new: ResourceState) -> None:
        self.state.resources[self.state.resources.index(old)] = new

    def _create(self, record: ResourceState, provider: str, secret_outputs: list[str]) -> None:
        self.mocks.applied.clear()
        self.mocks.check_only = False
        args = pulumi.runtime.MockResourceArgs(record.type, record.name, record.inputs, provider, "", True)
        try:
            resource_id, outputs = self.mocks.new_resource(args)
        except BaseException:
            # A step that failed half way: what it made is not in the state, so remove it now (the engine
            # would record it only if the provider reported it).
            with contextlib.suppress(Exception):
                self.mocks.delete(list(self.mocks.applied))
            raise
        record.id = str(resource_id)
        record.outputs = _secret(outputs, secret_outputs)
        record.objects = list(self.mocks.applied)

    def _delete(self, resource: ResourceState) -> None:
        self.mocks.delete(resource.objects)

    def _preview(
        self, step: Step, old: ResourceState | None, record: ResourceState, provider: str
    ) -> tuple[str, dict[str, Any]]:
        if step.op == "same" and old is not None:
            if record.type == "pulumi:providers:libvirt":
                self.mocks.libvirt.remember_provider(old.id, str(_plain(old.inputs.get("uri"))))
            return old.id, old.outputs
        # Check that the harness could apply it, touching nothing.
        self.mocks.check_only = True
        args = pulumi.runtime.MockResourceArgs(step.type, step.name, step.inputs, provider, "", True)
        try:
            self.mocks.new_resource(args)
        except Validated:
            pass
        finally:
            self.mocks.check_only = False
        computed = {key: _unknown() for key in COMPUTED_OUTPUTS.get(step.type, ())}
        if step.op == "update" and old is not None:
            return old.id, {**old.outputs, **step.inputs, **computed}
        if step.type == "pulumi:providers:libvirt":
            return "", {**step.inputs}
        return "", {**step.inputs, **computed}

    def leftovers(self) -> list[ResourceState]:
        """What the end of an `up` deletes: resources no longer declared, and replaced objects."""
        undeclared = [r for r in self.state.resources if r.urn not in self.registered]
        return [*self.state.pending_deletes, *undeclared]

    def delete_leftovers(self) -> None:
        delete_all(self, self.leftovers(), delete_data=True, retain_on_delete=True)


def _unknown() -> Any:
    return Unknown()  # type: ignore[no-untyped-call]  # the SDK's class has no annotations


def _plain(value: Any) -> Any:
    return value["value"] if is_secret(value) else value


def _secret(outputs: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Outputs with `additional_secret_outputs` marked secret, as the engine marks them."""
    return {
        key: {SECRET_SIG: _SECRET_VALUE, "value": value} if key in names and not is_secret(value) else value
        for key, value in outputs.items()
    }


def delete_all(
    deployment: Deployment, resources: list[ResourceState], delete_data: bool, retain_on_delete: bool
) -> None:
    """Delete `resources` dependents first, checkpointing after each. A retain_on_delete resource leaves its
    objects behind (recorded in the retained list, which `down --delete-data` empties) unless `delete_data`
    and not `retain_on_delete`."""
    protected = [r for r in resources if r.protect]
    if protected:
        names = ", ".join(f"{r.type} {r.name}" for r in protected)
        raise NotModelled(
            f"{names}: protected, the engine refuses to delete it (drop `protect` from the program and run "
            "`up` first)"
        )
    lock = threading.Lock()

    def delete_one(resource: ResourceState) -> None:
        keep = resource.retain_on_delete and (retain_on_delete or not delete_data)
        if keep:
            with deployment.progress.step("retain", resource.type, resource.name, "(retain_on_delete)"), lock:
                retain(deployment.retained_path, resource.objects)
        else:
            with deployment.progress.step("delete", resource.type, resource.name):
                deployment.mocks.delete(resource.objects)
        with lock:
            for kept in (deployment.state.resources, deployment.state.pending_deletes):
                if resource in kept:
                    kept.remove(resource)
            deployment.checkpoint()

    nodes = [Node(r.urn, tuple(r.dependencies)) for r in resources]
    for wave in deletion_waves(nodes):
        if deployment.stop_signal is not None:
            raise deployment._interrupted()
        # The engine deletes independent resources in parallel: two services (the app's clients and the
        # database) go together, so neither waits for the other's shutdown.
        with ThreadPoolExecutor(max_workers=len(wave)) as pool:
            futures = [pool.submit(delete_one, resources[index]) for index in wave]
        errors = [future.exception() for future in futures if future.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]


def retain(path: Path | None, objects: list[Applied]) -> None:
    if path is None:
        return
    kept = load(path) if path.exists() else []
    save(path, [*kept, *(item for item in objects if item not in kept)])


@contextlib.contextmanager
def stop_between_steps(deployment: Deployment) -> Iterator[None]:
    """SIGINT and SIGTERM set a flag the next step sees; the step under way finishes (only the main thread
    can install handlers: elsewhere, the defaults stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        deployment.stop_signal = signum
        deployment.progress.line(f"dev-stack: {signal.Signals(signum).name}: stopping after the current step")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class EngineMonitor(MockMonitor):
    """The mock runtime's monitor, with each custom resource's registration handed to the deployment, which
    sees what the mocks' arguments leave out: resource options, dependencies, the URN."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment.mocks)
        self.deployment = deployment

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack" or not request.custom:
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()  # type: ignore[no-untyped-call]  # as MockMonitor does
        inputs = rpc.deserialize_properties(request.object)
        resource_id, outputs = self.deployment.register(urn, request, inputs)
        obj_proto = _sync_await(rpc.serialize_properties(outputs, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, resource_id, outputs)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=obj_proto)


def run(
    deployment: Deployment, config: dict[str, Any], secrets: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run the program once under `deployment`; the first step failure is what is raised."""
    try:
        outputs = run_program(
            config,
            deployment.stack,
            deployment.mocks,
            secrets,
            monitor=EngineMonitor(deployment),
            preview=deployment.preview,
        ).outputs
    except BaseException as error:
        raise deployment.failure or error from error
    if deployment.failure is not None:
        raise deployment.failure
    return outputs


def new_deployment(
    stack: str,
    state: StackState,
    progress: Progress,
    preview: bool,
    state_path: Path | None,
    retained_path: Path | None,
    client: docker.DockerClient | None = None,
) -> Deployment:
    mocks = EngineApplyMocks(client or docker.from_env(), waiting=progress.waiting)
    return Deployment(stack, state, mocks, progress, preview, state_path, retained_path)
