"""What both halves of the apply harness (Docker: engine_apply, libvirt: libvirt_apply) check inputs with: a
resource's properties are taken one by one, and any left untaken, or not applicable, fails the run loudly."""

from __future__ import annotations

from typing import Any


class Unsupported(NotImplementedError):
    """The harness does not apply this; a real engine might, but we refuse to pretend."""


class Props:
    """Takes properties out of one input object and fails on any left untaken."""

    def __init__(self, where: str, values: dict[str, Any] | None) -> None:
        self.where = where
        self.values = dict(values or {})

    def take(self, key: str, default: Any = None) -> Any:
        return self.values.pop(key, default)

    def child(self, key: str) -> Props:
        return Props(f"{self.where}.{key}", self.take(key))

    def children(self, key: str) -> list[Props]:
        return [Props(f"{self.where}.{key}[{i}]", item) for i, item in enumerate(self.take(key) or [])]

    def done(self) -> None:
        if self.values:
            raise Unsupported(f"{self.where}: the apply harness does not apply {sorted(self.values)}")
