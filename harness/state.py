"""The stack's state, as the engine keeps it: per resource URN its type, id, recorded inputs and outputs,
dependencies and options, plus the objects the harness made for it (one typed record per kind of object, so
`down` removes exactly those). Written atomically after every completed step (the engine's checkpoint), so an
interrupted `up` leaves a state that `down` or the next `up` completes.

Each record's fields mean one thing. In the state file every object carries its record's tag; an entry with an
unknown tag, an unknown kind or unknown fields is refused, so `down` never guesses what to remove. Secret
values stay in the runtime's secret wrapping; the file is readable by its owner only (the engine would
encrypt them with the stack's secrets provider: docs/harness.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

DockerKind = Literal["container", "service", "secret", "network", "volume"]
LibvirtKind = Literal["domain", "volume", "network", "pool"]


@dataclass(frozen=True)
class DockerObject:
    kind: DockerKind
    name: str  # the Pulumi resource name
    docker_name: str
    id: str  # what the engine finds it by (a volume's id is its name)


@dataclass(frozen=True)
class CommandStep:
    """A pulumi-command resource whose create step ran; its delete step (if any) runs on `down`."""

    name: str  # the Pulumi resource name
    delete: str | None
    directory: str  # where both steps run


@dataclass(frozen=True)
class LibvirtObject:
    kind: LibvirtKind
    name: str  # the Pulumi resource name
    libvirt_name: str
    uri: str  # the hypervisor it lives on
    pool: str | None  # volumes only: the storage pool they live in


Applied = DockerObject | CommandStep | LibvirtObject

TAGS: dict[str, type[Applied]] = {
    "docker-object": DockerObject,
    "command-step": CommandStep,
    "libvirt-object": LibvirtObject,
}
_KINDS: dict[type[Applied], tuple[str, ...]] = {
    DockerObject: get_args(DockerKind),
    LibvirtObject: get_args(LibvirtKind),
}


class StateError(ValueError):
    """The state file holds something this harness did not write."""


def to_json(record: Applied) -> dict[str, Any]:
    tag = next(tag for tag, cls in TAGS.items() if isinstance(record, cls))
    return {"record": tag, **asdict(record)}


def from_json(entry: dict[str, Any], where: str) -> Applied:
    values = dict(entry)
    tag = values.pop("record", None)
    if tag not in TAGS:
        raise StateError(f"{where}: unknown record {tag!r}, expected one of {sorted(TAGS)}")
    cls = TAGS[tag]
    expected = {f.name for f in fields(cls)}
    if set(values) != expected:
        raise StateError(f"{where}: a {tag} record has fields {sorted(values)}, expected {sorted(expected)}")
    if cls in _KINDS and values["kind"] not in _KINDS[cls]:
        raise StateError(
            f"{where}: a {tag} record of unknown kind {values['kind']!r}, expected one of {list(_KINDS[cls])}"
        )
    return cls(**values)


def save(path: Path, applied: list[Applied]) -> None:
    """The objects alone (the retained list, and the format before per-resource state)."""
    write_atomically(path, json.dumps([to_json(record) for record in applied], indent=2))


def load(path: Path) -> list[Applied]:
    return [
        from_json(entry, f"{path} entry {index}") for index, entry in enumerate(json.loads(path.read_text()))
    ]


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader (or a crash) sees the old file or the new one, never half."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@dataclass
class ResourceState:
    """One resource as the engine records it."""

    urn: str
    type: str
    name: str
    id: str
    inputs: dict[
        str, Any
    ]  # wire form: secrets wrapped; what the provider last applied (ignore_changes merged)
    outputs: dict[str, Any]
    dependencies: list[str]  # URNs of the custom resources it depends on
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    objects: list[Applied] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["objects"] = [to_json(record) for record in self.objects]
        return values

    @classmethod
    def from_json(cls, entry: dict[str, Any], where: str) -> ResourceState:
        expected = {f.name for f in fields(cls)}
        if not isinstance(entry, dict) or set(entry) != expected:
            keys = sorted(entry) if isinstance(entry, dict) else entry
            raise StateError(f"{where}: a resource has fields {keys}, expected {sorted(expected)}")
        values = dict(entry)
        values["objects"] = [
            from_json(item, f"{where} object {index}") for index, item in enumerate(entry["objects"])
        ]
        return cls(**values)


STATE_VERSION = 2


@dataclass
class StackState:
    resources: list[ResourceState] = field(default_factory=list)  # live, in the order they were made
    # Replaced objects still to delete (create-before-delete replacements delete the old one at the end).
    pending_deletes: list[ResourceState] = field(default_factory=list)

    def find(self, urn: str) -> ResourceState | None:
        return next((r for r in self.resources if r.urn == urn), None)

    def save(self, path: Path) -> None:
        document = {
            "version": STATE_VERSION,
            "resources": [r.to_json() for r in self.resources],
            "pending_deletes": [r.to_json() for r in self.pending_deletes],
        }
        write_atomically(path, json.dumps(document, indent=1))

    @classmethod
    def load(cls, path: Path) -> StackState:
        document = json.loads(path.read_text())
        if isinstance(document, list):  # the format before per-resource state: objects only
            objects = load(path)
            legacy = ResourceState("legacy", "legacy", path.stem, "", {}, {}, [], objects=objects)
            return cls(pending_deletes=[legacy])
        if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
            raise StateError(f"{path}: state version {document.get('version')!r}, expected {STATE_VERSION}")
        return cls(
            [ResourceState.from_json(e, f"{path} resource {i}") for i, e in enumerate(document["resources"])],
            [
                ResourceState.from_json(e, f"{path} pending delete {i}")
                for i, e in enumerate(document["pending_deletes"])
            ],
        )
