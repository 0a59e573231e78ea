"""ALMA for LangChain: a retriever, a chat history, tools and a learning callback.

    from alma_langchain import AlmaRetriever, AlmaChatMessageHistory, AlmaLearningCallback, as_tools
    retriever = AlmaRetriever(alma=alma, agent="helena", top_k=4)

Thin adapters over `alma_core`'s public API (extra `langchain`: langchain-core only).
"""

from __future__ import annotations

from alma_core import MissingDependency

try:
    import langchain_core  # noqa: F401
except ImportError:
    raise MissingDependency("langchain-core", "langchain") from None

from ._callbacks import AlmaLearningCallback
from ._history import AlmaChatMessageHistory
from ._retriever import AlmaRetriever, memory_to_document
from ._tools import LearnOutcomeArgs, RetrieveMemoriesArgs, as_tools

__all__ = [
    "AlmaChatMessageHistory",
    "AlmaLearningCallback",
    "AlmaRetriever",
    "LearnOutcomeArgs",
    "RetrieveMemoriesArgs",
    "as_tools",
    "memory_to_document",
]
