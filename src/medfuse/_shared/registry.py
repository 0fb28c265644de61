"""Registries by name (rules, baselines): one way to add an entry and refuse a duplicate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Entry = TypeVar("Entry")


def add_to_registry(registry: dict[str, Entry], kind: str, name: str) -> Callable[[Entry], Entry]:
    """Decorator that puts its function into ``registry`` under ``name``; ValueError if the
    name is taken (``kind`` names the entries in the message, e.g. "fusion rule")."""

    def add(entry: Entry) -> Entry:
        if name in registry:
            raise ValueError(f"a {kind} named {name!r} exists already")
        registry[name] = entry
        return entry

    return add
