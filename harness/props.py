"""What both halves of the apply harness (Docker: engine_apply, libvirt: libvirt_apply) check inputs with: a
resource's properties are taken one by one, and any left untaken, or not applicable, fails the run loudly."""

from __future__ import annotations

from typing import Any


class Unsupported(NotImplementedError):
    """The harness does not apply this; a real engine might, but we refuse to pretend."""


class Validated(Exception):
    """Raised by a check-only Props once every property of the resource was taken: the applier stops there,
    before it touches anything (how a preview checks that an `up` could apply a resource)."""


class Props:
    """Takes properties out of one input object and fails on any left untaken. With `check_only`, done()
    on this (top-level) object raises Validated instead of returning."""

    def __init__(self, where: str, values: dict[str, Any] | None, check_only: bool = False) -> None:
        self.where = where
        self.values = dict(values or {})
        self.check_only = check_only

    def take(self, key: str, default: Any = None) -> Any:
        return self.values.pop(key, default)

    def child(self, key: str) -> Props:
        return Props(f"{self.where}.{key}", self.take(key))

    def children(self, key: str) -> list[Props]:
        return [Props(f"{self.where}.{key}[{i}]", item) for i, item in enumerate(self.take(key) or [])]

    def done(self) -> None:
        if self.values:
            raise Unsupported(f"{self.where}: the apply harness does not apply {sorted(self.values)}")
        if self.check_only:
            raise Validated(self.where)
