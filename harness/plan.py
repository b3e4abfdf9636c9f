"""The engine's step decision for one resource, as a pure function: recorded inputs (state) and new inputs in,
one step out (same / create / update / replace), following Pulumi's documented rules:

- `ignore_changes`: each ignored property takes its OLD recorded value (or stays absent when it had none), and
  the merged inputs are what the provider sees, exactly as the engine does;
- a change to a property the provider declares as forcing replacement (its schema's ForceNew /
  replaceOnChanges, encoded per type in REPLACE_RULES), or named in `replace_on_changes`, is a replace;
- a change to a property the provider updates in place is an update;
- a change to anything else is refused (NotModelled): the harness does not guess;
- `protect` refuses a replace (and, in deletion_order's callers, a delete).

Values are in the runtime's wire form: a secret is {SECRET_SIG: ..., "value": v}, a value not known yet (in a
preview) is pulumi.output.Unknown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi.output import Unknown

from harness.program import SECRET_SIG

Op = Literal["same", "create", "update", "replace", "delete"]


class NotModelled(RuntimeError):
    """A step the harness does not model (or the engine would refuse): raised before anything changes."""


@dataclass(frozen=True)
class TypeRules:
    """What a provider's schema says about changing a property of one resource type: `replace` properties force
    a new object, `update` properties are updated in place. Paths are prefixes ("mode.global" covers
    everything under it)."""

    replace: tuple[str, ...]
    update: tuple[str, ...] = ()


# From the providers' schemas (terraform-provider-docker 3.x behind pulumi-docker 4/5: ForceNew attributes;
# pulumi-command 1.x: `triggers` replace (declared by the SDK itself as replace_on_changes), everything else
# updates by running `update`, or `create` again; terraform-provider-random behind pulumi-random: every argument
# RequiresReplace; terraform-provider-libvirt 0.8 behind pulumi-libvirt 0.5: ForceNew attributes). A property
# in neither list is refused.
REPLACE_RULES: dict[str, TypeRules] = {
    "docker:index/container:Container": TypeRules(
        replace=(
            "image",
            "command",
            "name",
            "networkMode",
            "groupAdds",
            "networksAdvanced",
            "ports",
            "mounts",
            "uploads",
            "envs",
            "entrypoints",
            "labels",
            "volumes",
            "user",
            "workingDir",
            "hostname",
            "privileged",
            "capabilities",
            "securityOpts",
            "healthcheck",
            "logDriver",
            "logOpts",
        ),
        update=("restart", "maxRetryCount", "cpuShares", "memory", "memorySwap", "cpuSet"),
    ),
    "docker:index/service:Service": TypeRules(
        replace=("name", "mode.global"),
        update=(
            "taskSpec",
            "mode.replicated",
            "updateConfig",
            "rollbackConfig",
            "endpointSpec",
            "labels",
            "convergeConfig",
            "auth",
        ),
    ),
    "docker:index/network:Network": TypeRules(
        replace=(
            "name",
            "driver",
            "attachable",
            "labels",
            "internal",
            "options",
            "ipamConfigs",
            "ipamDriver",
            "ipamOptions",
            "ipv6",
            "ingress",
            "checkDuplicate",
        ),
    ),
    "docker:index/secret:Secret": TypeRules(replace=("name", "data", "labels")),
    "docker:index/volume:Volume": TypeRules(replace=("name", "driver", "driverOpts", "labels")),
    "command:local:Command": TypeRules(
        replace=(),
        update=(
            "create",
            "update",
            "delete",
            "dir",
            "environment",
            "interpreter",
            "stdin",
            "addPreviousOutputInEnv",
            "assetPaths",
            "archivePaths",
            "logging",
        ),
    ),
    "random:index/randomPassword:RandomPassword": TypeRules(
        replace=(
            "length",
            "special",
            "upper",
            "lower",
            "number",
            "numeric",
            "minLower",
            "minUpper",
            "minNumeric",
            "minSpecial",
            "overrideSpecial",
            "keepers",
        ),
    ),
    # A provider whose configuration changes would replace every resource it manages: not modelled.
    "pulumi:providers:libvirt": TypeRules(replace=()),
    "libvirt:index/pool:Pool": TypeRules(replace=("name", "type", "target", "path")),
    "libvirt:index/network:Network": TypeRules(
        replace=("name", "mode", "addresses", "domain", "bridge", "mtu"),
        update=("dns", "dhcp", "autostart", "routes", "dnsmasqOptions"),
    ),
    "libvirt:index/volume:Volume": TypeRules(
        replace=(
            "name",
            "pool",
            "source",
            "baseVolumeId",
            "baseVolumeName",
            "baseVolumePool",
            "size",
            "format",
        )
    ),
    "libvirt:index/cloudInitDisk:CloudInitDisk": TypeRules(
        replace=("name", "pool", "userData", "metaData", "networkConfig")
    ),
    "libvirt:index/domain:Domain": TypeRules(
        replace=(
            "name",
            "type",
            "memory",
            "vcpu",
            "cloudinit",
            "kernel",
            "initrd",
            "cmdlines",
            "disks",
            "networkInterfaces",
            "xml",
            "consoles",
            "machine",
            "arch",
            "firmware",
            "nvram",
            "cpu",
            "graphics",
            "video",
            "filesystems",
            "tpm",
            "emulator",
            "description",
            "qemuAgent",
        ),
        update=("running", "autostart"),
    ),
}

# The types whose in-place update the harness applies (harness/engine_apply.py); an update step of any other
# type is refused even when the provider could do it.
UPDATES_APPLIED = {
    "docker:index/service:Service",
    "docker:index/container:Container",
    "command:local:Command",
}


@dataclass(frozen=True)
class Change:
    path: str  # a Pulumi property path: taskSpec.containerSpec.image, uploads[0].content
    old: Any  # plain values (secrets unwrapped); MISSING when absent
    new: Any
    secret: bool  # either side was a secret: shown as [secret]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Step:
    op: Op
    type: str
    name: str
    changes: tuple[Change, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)  # what the provider gets: ignore_changes merged

    @property
    def changed(self) -> list[str]:
        return [change.path for change in self.changes]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def _plain(value: Any) -> Any:
    return value["value"] if is_secret(value) else value


def parse_path(path: str) -> list[str | int]:
    """A property path ("mode.replicated.replicas", "triggers[*]", 'labels["a.b"]') as its segments."""
    segments: list[str | int] = []
    for match in re.finditer(r'([^.\[\]]+)|\[(\d+|\*)\]|\["([^"]*)"\]', path):
        name, index, quoted = match.groups()
        if name is not None:
            segments.append(name)
        elif index is not None:
            segments.append("*" if index == "*" else int(index))
        else:
            segments.append(quoted)
    if not segments:
        raise NotModelled(f"property path {path!r} is empty")
    return segments


def _segments_match(pattern: list[str | int], path: list[str | int]) -> bool:
    """`pattern` covers `path`: it is a prefix of it, `*` matching any one segment."""
    if len(pattern) > len(path):
        return False
    return all(p in ("*", q) for p, q in zip(pattern, path, strict=False))


def ignore_changes(old: dict[str, Any], new: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """The inputs the engine sends the provider: `new` with every ignored path set to its value in `old`
    (removed when `old` has none). Wildcards are not modelled."""
    merged: dict[str, Any] = _copy(new)
    for path in paths:
        segments = parse_path(path)
        if "*" in segments:
            raise NotModelled(f"ignore_changes path {path!r}: wildcards are not modelled")
        found, value = _get(old, segments)
        if found:
            _set(merged, segments, value, path)
        else:
            _delete(merged, segments)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _get(value: Any, segments: list[str | int]) -> tuple[bool, Any]:
    for segment in segments:
        value = _plain(value)
        in_list = isinstance(segment, int) and isinstance(value, list) and segment < len(value)
        in_object = isinstance(segment, str) and isinstance(value, dict) and segment in value
        if not (in_list or in_object):
            return False, None
        value = value[segment]
    return True, _copy(value)


def _set(target: Any, segments: list[str | int], value: Any, path: str) -> None:
    for segment in segments[:-1]:
        if is_secret(target):
            raise NotModelled(f"ignore_changes path {path!r} runs through a secret: not modelled")
        if isinstance(segment, int):
            if not isinstance(target, list) or segment >= len(target):
                raise NotModelled(f"ignore_changes path {path!r}: no element {segment} in the new inputs")
            target = target[segment]
        else:
            if not isinstance(target, dict):
                raise NotModelled(f"ignore_changes path {path!r}: {segment!r} is not an object")
            target = target.setdefault(segment, {})
    last = segments[-1]
    if isinstance(last, int):
        if not isinstance(target, list) or last >= len(target):
            raise NotModelled(f"ignore_changes path {path!r}: no element {last} in the new inputs")
        target[last] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise NotModelled(f"ignore_changes path {path!r}: {last!r} is not in an object")


def _delete(target: Any, segments: list[str | int]) -> None:
    for segment in segments[:-1]:
        found, _ = _get(target, [segment])
        if not found:
            return
        target = target[segment]
    if isinstance(target, dict):
        target.pop(segments[-1], None)


def diff(old: Any, new: Any, path: str = "", secret: bool = False) -> list[Change]:
    """The changed leaves between two input values. A value not known yet counts as changed."""
    secret = secret or is_secret(old) or is_secret(new)
    old, new = _plain(old), _plain(new)
    if isinstance(new, Unknown):
        return [Change(path, old, new, secret)]
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            changes += diff(old.get(key, MISSING), new.get(key, MISSING), child, secret)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for index in range(max(len(old), len(new))):
            changes += diff(
                old[index] if index < len(old) else MISSING,
                new[index] if index < len(new) else MISSING,
                f"{path}[{index}]",
                secret,
            )
        return changes
    if old is MISSING and new is MISSING:
        return []
    # The engine compares numbers by value: 2 and 2.0 (JSON round trips) are the same input.
    same = (old == new and type(old) is type(new)) or _same_number(old, new)
    return [] if same else [Change(path, old, new, secret)]


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def plan_step(
    typ: str,
    name: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    ignored: Sequence[str] = (),
    replace_on_changes: Sequence[str] = (),
    protect: bool = False,
) -> Step:
    """The step for one declared resource: `old` is its recorded inputs (None: not in state)."""
    where = f"{typ} {name}"
    if typ not in REPLACE_RULES:
        raise NotModelled(f"{where}: the harness has no replace rules for resource type {typ}")
    if old is None:
        return Step("create", typ, name, inputs=new)
    inputs = ignore_changes(old, new, ignored)
    changes = tuple(diff(old, inputs))
    if not changes:
        return Step("same", typ, name, inputs=inputs)
    rules = REPLACE_RULES[typ]
    replace_patterns = [parse_path(p) for p in (*rules.replace, *replace_on_changes)]
    update_patterns = [parse_path(p) for p in rules.update]
    replace, refused = False, []
    for change in changes:
        segments = parse_path(change.path)
        if any(_segments_match(pattern, segments) for pattern in replace_patterns):
            replace = True
        elif not any(_segments_match(pattern, segments) for pattern in update_patterns):
            refused.append(change.path)
    if refused:
        raise NotModelled(
            f"{where}: a change to {', '.join(refused)} is neither a replace nor an in-place update that the "
            "provider declares; the harness does not model it"
        )
    if replace and protect:
        raise NotModelled(f"{where} is protected: the engine refuses to replace it (changed: "
                          f"{', '.join(c.path for c in changes)})")  # fmt: skip
    if not replace and typ not in UPDATES_APPLIED:
        raise NotModelled(
            f"{where}: the provider would update {', '.join(c.path for c in changes)} in place; "
            "the harness does not apply in-place updates of this type"
        )
    return Step("replace" if replace else "update", typ, name, changes, inputs)


@dataclass(frozen=True)
class Node:
    """One recorded resource, as deletion_order sees it."""

    urn: str
    dependencies: tuple[str, ...]


def deletion_waves(nodes: Sequence[Node]) -> list[list[int]]:
    """Indexes of `nodes` in the order to delete them, as waves the engine may delete in parallel: each wave
    holds what nothing left depends on, so every resource goes before the ones it depends on. Two nodes may
    share a URN (a replacement and the object it replaces): a dependent goes before both."""
    remaining = list(range(len(nodes)))
    waves: list[list[int]] = []
    while remaining:
        needed = {dep for index in remaining for dep in nodes[index].dependencies}
        free = [index for index in remaining if nodes[index].urn not in needed]
        # A cycle cannot come from a program (dependencies wait for each other), only from a hand-edited state:
        # then the most recent goes alone.
        wave = list(reversed(free)) if free else [remaining[-1]]
        waves.append(wave)
        remaining = [index for index in remaining if index not in wave]
    return waves
