"""ALMA for CrewAI: agent memory storage, learning from crew runs, and Flow persistence.

    from alma_crewai import AlmaCrewMemory, AlmaStorage, alma_memory
    AlmaCrewMemory(alma).attach(crew)          # agents recall from ALMA; task outcomes are learned
    memory = alma_memory(alma, llm=my_llm)      # or a plain CrewAI Memory stored in ALMA

Thin adapters over `alma_core`'s public API (extra `crewai`). Names resolve lazily: importing
crewai takes seconds, so `import alma_crewai` does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._crew import AlmaCrewMemory, alma_memory
    from ._flow import AlmaFlowPersistence
    from ._storage import AlmaStorage, TextEmbedder

_LAZY: dict[str, str] = {
    "AlmaCrewMemory": "._crew",
    "AlmaFlowPersistence": "._flow",
    "AlmaStorage": "._storage",
    "TextEmbedder": "._storage",
    "alma_memory": "._crew",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alma_crewai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["AlmaCrewMemory", "AlmaFlowPersistence", "AlmaStorage", "TextEmbedder", "alma_memory"]
