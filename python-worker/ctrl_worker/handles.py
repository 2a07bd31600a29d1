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
        if not name:
            raise invalid(field_name, f"a {kind} handle is required")
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise not_found(field_name, f"no live handle {name!r} (never created, or already released)")
        if entry.kind != kind:
            raise invalid(field_name, f"handle {name!r} is a {entry.kind}, expected a {kind}")
        assert isinstance(entry.value, cls)
        return entry.value

    def release(self, name: str, field_name: str) -> list[str]:
        """Releases a handle and every handle that depends on it; returns their names."""
        if not name:
            raise invalid(field_name, "a handle is required")
        with self._lock:
            if name not in self._entries:
                raise not_found(field_name, f"no live handle {name!r} (never created, or already released)")
            released: list[str] = []
            stack = [name]
            while stack:
                current = stack.pop()
                entry = self._entries.pop(current, None)
                if entry is None:
                    continue
                released.append(current)
                stack.extend(entry.children)
                if entry.parent is not None and entry.parent in self._entries:
                    self._entries[entry.parent].children.discard(current)
            return released

    def list(self) -> list[tuple[str, Entry]]:
        with self._lock:
            return sorted(self._entries.items(), key=lambda item: int(item[0].rsplit("/", 1)[1]))

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for entry in self._entries.values() if entry.kind == kind)
