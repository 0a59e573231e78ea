"""The one place the optional `crewai` dependency is checked."""

from __future__ import annotations

import importlib.util

from alma_core import MissingDependency

__all__ = ["require_crewai"]


def require_crewai() -> None:
    """Raise `MissingDependency` (naming the `crewai` extra) unless crewai is importable."""
    if importlib.util.find_spec("crewai") is None:
        raise MissingDependency("crewai", "crewai")
