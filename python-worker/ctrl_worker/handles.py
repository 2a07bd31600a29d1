"""Typed handles: the worker keeps tensors and models, the orchestrator holds their names."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import invalid, not_found

T = TypeVar("T")


@dataclass
class Entry:
    kind: str
    value: object
    description: str
    # Handles that depend on this one and go with it when it is released.
    children: set[str] = field(default_factory=set)
    parent: str | None = None


class HandleRegistry:
    """Thread-safe map from handle names such as "backbone/1" to the objects they stand for."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, kind: str, value: object, description: str, parent: str | None = None) -> str:
        with self._lock:
            name = f"{kind}/{next(self._counter)}"
            self._entries[name] = Entry(kind, value, description, parent=parent)
            if parent is not None:
                self._entries[parent].children.add(name)
            return name

    def get(self, name: str, kind: str, cls: type[T], field_name: str) -> T:
        value = self.get_one_of(name, {kind: cls}, field_name)[1]
        assert isinstance(value, cls)
        return value

    def get_one_of(self, name: str, kinds: dict[str, type], field_name: str) -> tuple[str, object]:
        """(kind, value) of a handle that must be of one of `kinds`, e.g. a backbone or a control."""
        expected = " or ".join(kinds)
        if not name:
            raise invalid(field_name, f"a {expected} handle is required")
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise not_found(field_name, f"no live handle {name!r} (never created, or already released)")
        if entry.kind not in kinds:
            raise invalid(field_name, f"handle {name!r} is a {entry.kind}, expected a {expected}")
        assert isinstance(entry.value, kinds[entry.kind])
        return entry.kind, entry.value

    def children(self, name: str, kind: str) -> list[str]:
        """Live handles of `kind` that depend on `name`."""
        with self._lock:
            entry = self._entries.get(name)
            names = sorted(entry.children) if entry is not None else []
            return [child for child in names if self._entries[child].kind == kind]

    def release(self, name: str, field_name: str) -> list[str]:
        """Releases a handle and every handle that depends on it; returns their names. Values with
        a `close()` method (a control takes its adapters out of the UNet) are closed, children first."""
        if not name:
            raise invalid(field_name, "a handle is required")
        with self._lock:
            if name not in self._entries:
                raise not_found(field_name, f"no live handle {name!r} (never created, or already released)")
            released: list[tuple[str, Entry]] = []
            stack = [name]
            while stack:
                current = stack.pop()
                entry = self._entries.pop(current, None)
                if entry is None:
                    continue
                released.append((current, entry))
                stack.extend(entry.children)
                if entry.parent is not None and entry.parent in self._entries:
                    self._entries[entry.parent].children.discard(current)
        for _, entry in reversed(released):
            close = getattr(entry.value, "close", None)
            if callable(close):
                close()
        return [current for current, _ in released]

    def list(self) -> list[tuple[str, Entry]]:
        with self._lock:
            return sorted(self._entries.items(), key=lambda item: int(item[0].rsplit("/", 1)[1]))

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for entry in self._entries.values() if entry.kind == kind)
