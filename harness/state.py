"""What `up` applied, one typed record per kind of object, and the state file `down` reads them back from.

Each record's fields mean one thing. In the state file every entry carries its record's tag; an entry with an
unknown tag, an unknown kind or unknown fields is refused, so `down` never guesses what to remove.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([to_json(record) for record in applied], indent=2))


def load(path: Path) -> list[Applied]:
    return [
        from_json(entry, f"{path} entry {index}") for index, entry in enumerate(json.loads(path.read_text()))
    ]
