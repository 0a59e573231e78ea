"""`AlmaMemoryBlock`: ALMA as a long-term block of LlamaIndex's `Memory`.

Reading (`_aget`): the latest user message is the task; the block returns ALMA's `to_prompt()` for it
(what worked, what to avoid, preferences, facts), which `Memory` puts in the system (or user) message.
ReActAgent drops the system message, so `alma_memory(...)` builds a `Memory` that inserts into the
user message: the block then reaches the model in ReActAgent and FunctionAgent alike.

Writing (`_aput`, messages flushed out of short-term memory): each user turn and the assistant text
that answered it become one `DomainKnowledge` fact of the block's `domain` for the agent:
"User: <question>\\nAssistant: <answer>" (tool calls and tool results are not stored; turns with no
text are skipped). The fact's metadata holds the session id and, if set, `user_id`, so
`alma.delete_user(user_id)` removes them. The domain is scope-checked like any write: an agent with
`can_learn` must list it. Outcomes are not inferred from chat: use `alma.learn` when a task's result
is known.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory.memory import BaseMemoryBlock, InsertMethod, Memory
from pydantic import Field

from alma_core import ALMA, MemorySlice, MemoryType

__all__ = ["AlmaMemoryBlock", "alma_memory"]

_MAX_FACT = 20_000  # DomainKnowledge.fact's limit


def _text(message: ChatMessage) -> str:
    return (message.content or "").strip()


def _turns(messages: list[ChatMessage]) -> list[tuple[str, str, Any]]:
    """(user text, assistant text, session id) per user turn, in order."""
    turns: list[tuple[str, list[str], Any]] = []
    for message in messages:
        text = _text(message)
        if text and message.role == MessageRole.USER:
            turns.append((text, [], message.additional_kwargs.get("session_id")))
        elif text and message.role == MessageRole.ASSISTANT and turns:
            turns[-1][1].append(text)
    return [(user, "\n".join(replies), session) for user, replies, session in turns]


def chat_last(found: MemorySlice) -> MemorySlice:
    """The slice with turns flushed from a chat (metadata `kind: "chat"`) after every other fact."""
    found.knowledge.sort(key=lambda m: m.metadata.get("kind") == "chat")
    return found


class AlmaMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memory from ALMA for one agent (see the module docstring for the mapping)."""

    name: str = "alma_memory"
    description: str | None = "What the agent learned from past tasks (ALMA)."
    alma: ALMA = Field(description="The ALMA instance to read from and write to.")
    agent: str = Field(description="The agent whose memories are read and written.")
    top_k: int = Field(5, ge=1, le=1000, description="Memories per type to retrieve.")
    max_tokens: int | None = Field(None, ge=1, description="Token budget of the rendered block.")
    memory_types: list[MemoryType] | None = Field(None, description="Only these types (default: all).")
    include_shared: bool = Field(True, description="Also read memories shared with the agent.")
    user_id: str | None = Field(None, description="The user: selects preferences, tags stored facts.")
    domain: str = Field("conversation", min_length=1, description="Domain of the facts stored from chat.")
    learn_from_chat: bool = Field(True, description="Store flushed turns as facts (False: read only).")
    chat_confidence: float = Field(0.3, ge=0, le=1, description="Confidence of the facts stored from chat.")

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        task = next((_text(m) for m in reversed(messages or []) if m.role == MessageRole.USER and _text(m)), "")
        if not task:
            return ""
        found = await self.alma.aretrieve(
            task, self.agent, top_k=self.top_k, user_id=self.user_id, include_shared=self.include_shared,
            memory_types=self.memory_types,
        )  # fmt: skip
        return chat_last(found).to_prompt(max_tokens=self.max_tokens)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        if not self.learn_from_chat:
            return
        for user, reply, session in _turns(messages):
            metadata: dict[str, Any] = {"source": "llamaindex", "kind": "chat", "session_id": session}
            if self.user_id is not None:
                metadata["user_id"] = self.user_id
            fact = f"User: {user}\nAssistant: {reply}" if reply else f"User: {user}"
            await self.alma.aadd_domain_knowledge(
                self.agent, self.domain, fact[:_MAX_FACT], source="llamaindex", confidence=self.chat_confidence,
                metadata=metadata,
            )  # fmt: skip


def alma_memory(
    alma: ALMA,
    agent: str,
    *,
    session_id: str | None = None,
    insert_method: InsertMethod | str = InsertMethod.USER,
    block: AlmaMemoryBlock | None = None,
    **memory_options: Any,
) -> Memory:
    """A LlamaIndex `Memory` holding an `AlmaMemoryBlock` for `agent` (or the `block` given).

    The block goes into the latest user message by default, because ReActAgent drops the system
    message; FunctionAgent and chat engines read it there too. `memory_options` go to
    `Memory.from_defaults` (token_limit, chat_history_token_ratio, ...)."""
    block = block or AlmaMemoryBlock(alma=alma, agent=agent)
    return Memory.from_defaults(
        session_id=session_id, memory_blocks=[block], insert_method=InsertMethod(insert_method), **memory_options
    )
