"""`AlmaRetriever`: ALMA's ranked memories as LangChain `Document`s (sync and genuinely async)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import AliasChoices, ConfigDict, Field

from alma_core import ALMA, Memory, MemorySlice, MemoryType, ValidationError

__all__ = ["AlmaRetriever", "memory_to_document"]


def memory_to_document(memory: Memory) -> Document:
    """One memory as a Document: its text as content; type, id, score, agent and shared_from as metadata."""
    metadata: dict[str, Any] = {
        "type": memory.memory_type.value,
        "id": memory.id,
        "score": memory.score,
        "agent": memory.agent,
        "shared_from": memory.metadata.get("shared_from"),
    }
    return Document(id=memory.id, page_content=memory.text, metadata=metadata)


def _best(found: MemorySlice, k: int) -> list[Memory]:
    """The slice as one list, best first (`MemorySlice.ranked`: scores compare across types), `k` long;
    turns flushed from a chat come after every lesson."""
    return sorted(found.ranked(), key=lambda m: m.metadata.get("kind") == "chat")[:k]


class AlmaRetriever(BaseRetriever):
    """Retrieves an agent's memories (its own and, with `include_shared`, those shared with it).

    `k` is the number of documents returned, as LangChain's retrievers spell it (`top_k` is accepted
    too): ALMA retrieves up to `k` per type and the best `k` of them (`MemorySlice.ranked()`) are kept.
    `invoke(query, k=3)` overrides it per call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    alma: ALMA
    agent: str
    k: int = Field(5, ge=1, le=1000, validation_alias=AliasChoices("k", "top_k"))
    memory_types: list[MemoryType] | None = None
    include_shared: bool = True
    user_id: str | None = None

    @property
    def top_k(self) -> int:
        """The same as `k`."""
        return self.k

    def _arguments(self, query: str, k: int | None, top_k: int | None) -> dict[str, Any]:
        n = k if k is not None else top_k if top_k is not None else self.k
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
            raise ValidationError(f"k must be an integer in 1..1000, got {n!r}")
        return {
            "task": query,
            "agent": self.agent,
            "top_k": n,
            "user_id": self.user_id,
            "include_shared": self.include_shared,
            "memory_types": self.memory_types,
        }

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        top_k: int | None = None,
    ) -> list[Document]:
        args = self._arguments(query, k, top_k)
        return [memory_to_document(m) for m in _best(self.alma.retrieve(**args), args["top_k"])]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        top_k: int | None = None,
    ) -> list[Document]:
        args = self._arguments(query, k, top_k)
        return [memory_to_document(m) for m in _best(await self.alma.aretrieve(**args), args["top_k"])]
