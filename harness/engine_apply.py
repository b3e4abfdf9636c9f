"""The engine-less apply harness: Pulumi mocks that apply each resource of the program to the real Docker engine
(and run its pulumi-command steps for real), returning the real ids and outputs.

The Pulumi CLI cannot be installed where this runs, so this stands in for the engine. It is strict: a resource
type, or any property of a supported type, that it does not apply fails the run with the resource named, rather
than being silently ignored. Every applied object is recorded (harness/state.py) so `down` removes exactly what
`up` made.
"""

from __future__ import annotations

import base64
import contextlib
import io
import secrets
import string
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker
import pulumi
from docker.types import (
    EndpointSpec,
    Healthcheck,
    Mount,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)
from pulumi.output import Unknown

from harness import libvirt_apply
from harness.libvirt_apply import LibvirtApplier
from harness.program import ROOT, SECRET_SIG, unwrap_secrets
from harness.props import Props, Unsupported
from harness.state import Applied, CommandStep, DockerObject, LibvirtObject

TASKS_GONE_TIMEOUT_S = 90
# What a check-only run (a preview) puts where a value is not known yet: valid as a name, an id and base64.
UNKNOWN_STAND_IN = "AAAA"


def _healthcheck(health: Props) -> Healthcheck | None:
    """A service's or a container's `healthcheck` block, as both Docker resources of the provider take it."""
    if not health.values:
        health.done()
        return None
    check = Healthcheck(
        test=health.take("tests"),
        interval=_duration_ns(health.take("interval")),
        timeout=_duration_ns(health.take("timeout")),
        retries=int(health.take("retries")),
        start_period=_duration_ns(health.take("startPeriod")),
    )
    health.done()
    return check


def _duration_ns(text: str | None) -> int | None:
    if text is None:
        return None
    units = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise Unsupported(f"duration {text!r} is not NNms/NNs/NNm/NNh")


def _stand_in_unknowns(value: Any) -> Any:
    if isinstance(value, Unknown):
        return UNKNOWN_STAND_IN
    if isinstance(value, dict):
        return {key: _stand_in_unknowns(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stand_in_unknowns(item) for item in value]
    return value


@dataclass
class EngineApplyMocks(pulumi.runtime.Mocks):
    client: docker.DockerClient
    applied: list[Applied] = field(default_factory=list)
    libvirt: LibvirtApplier = field(init=False)
    # Check every property of a resource, then stop (props.Validated) before touching anything: a preview.
    check_only: bool = False
    # Called with what a long step waits for, so progress can say it (harness/progress.py).
    waiting: Callable[[str], None] = lambda _what: None

    def __post_init__(self) -> None:
        self.libvirt = LibvirtApplier(self.applied)
        self._secret_inputs: set[str] = set()  # of the resource being applied: never shown in progress

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise Unsupported(
            f"the program called provider function {args.token}; the harness applies resources only"
        )

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:Stack" or args.typ.startswith("hostscale:index:"):
            return f"{args.name}-component", {}
        appliers = {
            "command:local:Command": self._command,
            "random:index/randomPassword:RandomPassword": self._random_password,
            "docker:index/network:Network": self._network,
            "docker:index/secret:Secret": self._secret,
            "docker:index/volume:Volume": self._volume,
            "docker:index/service:Service": self._service,
            "docker:index/container:Container": self._container,
        }
        on_hypervisor = self.libvirt.appliers()
        if args.typ not in appliers and args.typ not in on_hypervisor:
            raise Unsupported(f"{args.name}: the apply harness does not apply resource type {args.typ}")
        # Each applier takes every property and calls done() before touching the engine: an unsupported
        # property stops the run before anything of that resource exists.
        props = self._props(args.typ, args.name, args.inputs)
        self._secret_inputs = {
            key for key, value in args.inputs.items() if isinstance(value, dict) and SECRET_SIG in value
        }
        self.libvirt.check_only = self.check_only
        if args.typ in on_hypervisor:
            resource_id, outputs = on_hypervisor[args.typ](args.name, props, args.provider)
        else:
            resource_id, outputs = appliers[args.typ](args.name, props)
        return resource_id, {**args.inputs, **outputs}

    def _props(self, typ: str, name: str, inputs: dict[str, Any]) -> Props:
        values = unwrap_secrets(dict(inputs))
        if self.check_only:
            values = _stand_in_unknowns(values)
        return Props(f"{typ} {name}", values, check_only=self.check_only)

    def update(self, typ: str, name: str, resource_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Update one resource in place from its whole (ignore_changes-merged) inputs, as the provider does.
        Returns the outputs it computed. Only the types in harness.plan.UPDATES_APPLIED come here."""
        updaters: dict[str, Callable[[str, str, Props], dict[str, Any]]] = {
            "docker:index/service:Service": self._update_service,
            "docker:index/container:Container": self._update_container,
            "command:local:Command": lambda name, _id, p: self._command(name, p)[1],
        }
        if typ not in updaters:
            raise Unsupported(f"{name}: the apply harness does not update {typ} in place")
        self._secret_inputs = {
            key for key, value in inputs.items() if isinstance(value, dict) and SECRET_SIG in value
        }
        return {**inputs, **updaters[typ](name, resource_id, self._props(typ, name, inputs))}

    def _command(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        create, delete, directory = p.take("create"), p.take("delete"), p.take("dir") or str(ROOT)
        p.take("triggers")  # the engine replaces the command when they change (replace_on_changes)
        p.take("logging")  # what pulumi-command would log: the harness prints no command's output
        p.done()
        self.waiting(_shown(create, secret="create" in self._secret_inputs))
        result = subprocess.run(
            ["bash", "-c", create], cwd=directory, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{name}: `{create}` exited {result.returncode}: {result.stderr.strip()[-2000:]}"
            )
        # Like pulumi-command, the delete step runs when the resource is destroyed (down).
        self.applied.append(CommandStep(name, delete, directory))
        # Like pulumi-command: stdout without its trailing newline.
        return f"{name}-command", {"stdout": result.stdout.rstrip("\n"), "stderr": result.stderr.rstrip("\n")}

    def _random_password(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        length, special = int(p.take("length")), p.take("special", True)
        p.done()
        alphabet = string.ascii_letters + string.digits + ("!#$%&*()-_=+[]{}<>:?" if special else "")
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        return f"{name}-random", {"result": value}

    def _network(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        labels = {item.take("label"): item.take("value") for item in p.children("labels")}
        network_name, driver, attachable = (
            p.take("name"),
            p.take("driver", "bridge"),
            p.take("attachable", False),
        )
        p.done()
        network = self.client.networks.create(
            network_name, driver=driver, attachable=attachable, labels=labels
        )
        self.applied.append(DockerObject("network", name, network.name, network.id))
        return str(network.id), {}

    def _secret(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        secret_name, data = p.take("name"), base64.b64decode(p.take("data"))
        p.done()
        secret = self.client.secrets.create(name=secret_name, data=data)
        self.applied.append(DockerObject("secret", name, secret_name, secret.id))
        return str(secret.id), {}

    def _volume(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        volume_name = p.take("name")
        p.done()
        volume = self.client.volumes.create(volume_name)
        self.applied.append(DockerObject("volume", name, volume.name, volume.name))
        return str(volume.name), {}

    def _service(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        image, kwargs = self._service_spec(p)
        service = self.client.services.create(image, **kwargs)
        self.applied.append(DockerObject("service", name, kwargs["name"], service.id))
        return str(service.id), {}

    def _update_service(self, name: str, service_id: str, p: Props) -> dict[str, Any]:
        image, kwargs = self._service_spec(p)
        # Like pulumi-docker (terraform-provider-docker's update): the WHOLE spec, built from the inputs the
        # engine sends (ignore_changes merged: an ignored property is sent at its recorded value), replaces the
        # service's spec. A replica count the autoscaler changed is set back to the recorded one.
        self.client.services.get(service_id).update(image=image, **kwargs)
        return {}

    def _service_spec(self, p: Props) -> tuple[str, dict[str, Any]]:
        task, mode, endpoint = p.child("taskSpec"), p.child("mode"), p.child("endpointSpec")
        spec = task.child("containerSpec")
        kwargs: dict[str, Any] = {
            "name": p.take("name"),
            "env": [f"{k}={v}" for k, v in (spec.take("env") or {}).items()],
            "secrets": [
                SecretReference(
                    s.take("secretId"), s.take("secretName"), s.take("fileName"), mode=int(s.take("fileMode"))
                )
                for s in spec.children("secrets")
            ],
            "mounts": [
                Mount(m.take("target"), m.take("source"), type=m.take("type"))
                for m in spec.children("mounts")
            ],
            "stop_grace_period": _duration_ns(spec.take("stopGracePeriod")),
            "networks": [n.take("id") for n in task.children("networksAdvanceds")],
            "endpoint_spec": EndpointSpec(mode=endpoint.take("mode")),
        }
        image = spec.take("image")
        if (health := _healthcheck(spec.child("healthcheck"))) is not None:
            kwargs["healthcheck"] = health
        placement = task.child("placement")
        kwargs["constraints"] = placement.take("constraints") or []
        if (max_replicas := placement.take("maxReplicas")) is not None:
            kwargs["maxreplicas"] = int(max_replicas)
        placement.done()
        kwargs["resources"] = self._limits(task.child("resources"))
        restart = task.child("restartPolicy")
        if restart.values:
            kwargs["restart_policy"] = RestartPolicy(
                restart.take("condition"), _duration_ns(restart.take("delay")) or 0
            )
        restart.done()
        replicated = mode.child("replicated")
        kwargs["mode"] = ServiceMode("replicated", replicas=int(replicated.take("replicas", 1)))
        for key, target in (("updateConfig", "update_config"), ("rollbackConfig", "rollback_config")):
            config = p.child(key)
            if config.values:
                kwargs[target] = UpdateConfig(
                    parallelism=int(config.take("parallelism", 0)),
                    delay=_duration_ns(config.take("delay")),
                    failure_action=config.take("failureAction", "pause"),
                    monitor=_duration_ns(config.take("monitor")),
                    order=config.take("order"),
                )
            config.done()
        for finished in (spec, task, replicated, mode, endpoint, p):
            finished.done()
        return image, kwargs

    @staticmethod
    def _limits(resources: Props) -> Resources | None:
        limits = resources.child("limits")
        nano_cpus, memory = limits.take("nanoCpus"), limits.take("memoryBytes")
        limits.done()
        resources.done()
        if nano_cpus is None and memory is None:
            return None
        return Resources(
            cpu_limit=int(nano_cpus) if nano_cpus else None, mem_limit=int(memory) if memory else None
        )

    def _container(self, name: str, p: Props) -> tuple[str, dict[str, Any]]:
        networks, ports, mounts, uploads, settings = self._container_spec(name, p)
        container = self.client.containers.create(
            network=networks[0] if networks else None, ports=ports, mounts=mounts, **settings
        )
        self.applied.append(DockerObject("container", name, container.name, container.id))
        for path, content in uploads:
            # Like the provider: the file at its full path, missing directories created.
            container.put_archive("/", _tar_one(path.lstrip("/"), content))
        container.start()
        return str(container.id), {}

    def _update_container(self, name: str, container_id: str, p: Props) -> dict[str, Any]:
        # The provider updates these in place (plan.REPLACE_RULES); of them the program sets only `restart`.
        *_, settings = self._container_spec(name, p)
        self.client.containers.get(container_id).update(restart_policy=settings["restart_policy"])
        return {}

    def _container_spec(
        self, name: str, p: Props
    ) -> tuple[
        list[str], dict[str, list[tuple[str, int]]], list[Mount], list[tuple[str, str]], dict[str, Any]
    ]:
        networks = []
        for network in p.children("networksAdvanced"):
            networks.append(network.take("name"))
            network.done()
        ports: dict[str, list[tuple[str, int]]] = {}
        for port in p.children("ports"):
            protocol = port.take("protocol", "tcp")
            ports.setdefault(f"{int(port.take('internal'))}/{protocol}", []).append(
                (
                    port.take("ip", "0.0.0.0"),  # noqa: S104 (Docker's own default when no ip is given)
                    int(port.take("external")),
                )
            )
            port.done()
        mounts = []
        for mount in p.children("mounts"):
            mounts.append(
                Mount(
                    mount.take("target"),
                    mount.take("source"),
                    type=mount.take("type"),
                    read_only=bool(mount.take("readOnly", False)),
                )
            )
            mount.done()
        uploads = []
        for upload in p.children("uploads"):
            uploads.append((upload.take("file"), upload.take("content")))
            upload.done()
        if len(networks) > 1:
            raise Unsupported(
                f"{name}: the apply harness attaches a container to one network, got {networks}"
            )
        settings: dict[str, Any] = {
            "image": p.take("image"),
            "command": p.take("command"),
            "name": p.take("name"),
            "network_mode": p.take("networkMode"),
            "group_add": p.take("groupAdds"),
            "restart_policy": {"Name": p.take("restart", "no")},
            "entrypoint": p.take("entrypoints"),
            "environment": p.take("envs"),
            "security_opt": p.take("securityOpts"),
        }
        capabilities = p.child("capabilities")
        settings["cap_add"], settings["cap_drop"] = capabilities.take("adds"), capabilities.take("drops")
        capabilities.done()
        if (health := _healthcheck(p.child("healthcheck"))) is not None:
            settings["healthcheck"] = health
        p.done()
        return networks, ports, mounts, uploads, settings

    def delete(self, objects: list[Applied]) -> None:
        """Delete what one resource made, last made first. An object already gone, or going while this works,
        is what deleting it wants."""
        for item in reversed(objects):
            match item:
                case DockerObject(kind="container"):
                    with _gone():
                        self.client.containers.get(item.id).remove(force=True)
                case DockerObject(kind="service"):
                    with _gone():
                        self.client.services.get(item.id).remove()
                    # Like the provider: wait until its task containers are gone, since the networks, secrets
                    # and volumes they use cannot be removed before.
                    self.waiting(f"the task containers of {item.docker_name} to go")
                    deadline = time.monotonic() + TASKS_GONE_TIMEOUT_S
                    while time.monotonic() < deadline and _task_containers(self.client, item.docker_name):
                        time.sleep(0.5)
                case DockerObject(kind="secret"):
                    with _gone():
                        self.client.secrets.get(item.id).remove()
                case DockerObject(kind="network"):
                    with _gone():
                        self.client.networks.get(item.id).remove()
                case DockerObject(kind="volume"):
                    with _gone():
                        self.client.volumes.get(item.id).remove(force=True)
                case CommandStep():
                    if item.delete:
                        self.waiting(_shown(item.delete))
                        result = subprocess.run(
                            ["bash", "-c", item.delete], cwd=item.directory, capture_output=True, text=True,
                            check=False,
                        )  # fmt: skip
                        if result.returncode != 0:
                            raise RuntimeError(
                                f"{item.name}: delete `{item.delete}` exited {result.returncode}: "
                                f"{result.stderr.strip()[-2000:]}"
                            )
                case LibvirtObject():
                    libvirt_apply.remove(item)
                case _:
                    raise Unsupported(f"{item}: the harness does not delete this")


def _shown(command: str, secret: bool = False, width: int = 80) -> str:
    """A command as progress shows what a step waits for: a secret one as [secret], a long one cut short."""
    if secret:
        return "[secret]"
    return f"`{command}`" if len(command) <= width else f"`{command[: width - 3]}...`"


def _task_containers(client: docker.DockerClient, service: str) -> list[Any]:
    # sparse: the listing only, no inspect of each container, which fails when a task container is removed
    # between the list and its inspect.
    containers: list[Any] = client.containers.list(
        all=True, sparse=True, filters={"label": f"com.docker.swarm.service.name={service}"}
    )
    return containers


def _gone() -> contextlib.suppress:
    """Around one removal: an object already gone is what removing it wants."""
    return contextlib.suppress(docker.errors.NotFound)


def _tar_one(name: str, content: str) -> bytes:
    buffer = io.BytesIO()
    data = content.encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
