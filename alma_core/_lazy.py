"""Deferred imports of the `ALMA` facade: its modules bind `alma_core._deferred` on the first `ALMA(...)`."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["bind"]


def bind(*namespaces: dict[str, Any]) -> None:
    """Put every name of `alma_core._deferred` into each namespace (a module's globals), once."""
    if all(ns.get("_DEFERRED_BOUND") for ns in namespaces):
        return
    deferred = importlib.import_module("alma_core._deferred")
    values = {name: getattr(deferred, name) for name in deferred.__all__}
    for ns in namespaces:
        for name, value in values.items():
            ns.setdefault(name, value)
        ns["_DEFERRED_BOUND"] = True
