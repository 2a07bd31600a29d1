"""Typed handles: the worker keeps tensors and models, the orchestrator holds their names.

A running call holds every handle it looked up until it ends (a lease): releasing a handle, or one
it depends on, while a call uses it is refused with FAILED_PRECONDITION ("in use by N running
calls") instead of pulling the model from under the call.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import invalid, not_found, precondition, shorten

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
        self._in_use: Counter[str] = Counter()  # leases of running calls, by handle
        self._call = threading.local()  # .leases: the current call's Counter, while it runs

    @contextmanager
    def call_scope(self) -> Iterator[None]:
        """Runs one call: the handles it looks up stay leased to it until the block ends. A gRPC
        call runs on one thread from start to end, streaming ones too."""
        leases: Counter[str] = Counter()
        self._call.leases = leases
        try:
            yield
        finally:
            if getattr(self._call, "leases", None) is leases:
                self._call.leases = None
            with self._lock:
                self._in_use.subtract(leases)
                self._in_use = +self._in_use  # drop the zeros

    def _lease(self, name: str) -> None:
        """Called with the lock held."""
        leases = getattr(self._call, "leases", None)
        if leases is not None:
            leases[name] += 1
            self._in_use[name] += 1

    def add(self, kind: str, value: object, description: str, parent: str | None = None) -> str:
        with self._lock:
            if parent is not None and parent not in self._entries:
                raise precondition(None, f"{shorten(parent)} was released while this call ran; nothing was kept")
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
            if entry is not None and entry.kind in kinds:
                self._lease(name)
        if entry is None:
            raise not_found(field_name, f"no live handle {shorten(name)} (never created, or already released)")
        if entry.kind not in kinds:
            raise invalid(field_name, f"handle {shorten(name)} is a {entry.kind}, expected a {expected}")
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
                raise not_found(field_name, f"no live handle {shorten(name)} (never created, or already released)")
            self._check_unused(name, field_name)
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

    def _check_unused(self, name: str, field_name: str) -> None:
        """Refuses to release `name` while other calls use it or a handle that goes with it (the
        calling call's own leases do not count: Backward releases the rollout it consumed)."""
        own = getattr(self._call, "leases", None) or Counter()
        users: dict[str, int] = {}
        stack = [name]
        while stack:
            current = stack.pop()
            count = self._in_use[current] - own[current]
            if count > 0:
                users[current] = count
            stack.extend(self._entries[current].children)
        if users:
            total = sum(users.values())
            where = ", ".join(f"{handle} ({count})" for handle, count in sorted(users.items()))
            raise precondition(
                field_name, f"{name} is in use by {total} running call{'s' if total > 1 else ''} ({where}); release it when they finish"
            )

    def list(self) -> list[tuple[str, Entry]]:
        with self._lock:
            return sorted(self._entries.items(), key=lambda item: int(item[0].rsplit("/", 1)[1]))

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for entry in self._entries.values() if entry.kind == kind)
