"""ALMA for LlamaIndex: a memory block, a retriever, and workflow checkpoints.

    from llama_index.core.memory import Memory
    from alma_llamaindex import AlmaMemoryBlock
    memory = Memory.from_defaults(memory_blocks=[AlmaMemoryBlock(alma=alma, agent="helena")])

Thin adapters over `alma_core`'s public API (extra `llamaindex`: llama-index-core).
"""

from __future__ import annotations

from alma_core import MissingDependency

try:
    import llama_index.core  # noqa: F401
except ImportError:
    raise MissingDependency("llama-index-core", "llamaindex") from None

from ._memory import AlmaMemoryBlock, alma_memory
from ._retriever import AlmaRetriever, memory_to_node
from ._workflow import alearn_from_run, arestore_context, asave_context, restore_context, save_context

__all__ = [
    "AlmaMemoryBlock",
    "AlmaRetriever",
    "alearn_from_run",
    "alma_memory",
    "arestore_context",
    "asave_context",
    "memory_to_node",
    "restore_context",
    "save_context",
]
