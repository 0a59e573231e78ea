"""`AutoLearner`: turn a conversation into memories with a chat model's structured output.

    learner = AutoLearner(alma, chat_model)            # any LangChain chat model with tool calling
    result = learner.learn_from_conversation(messages, agent="helena", user_id="ana")
    result.extracted_count, result.stored, result.refused   # also result["extracted_count"] (the seed's)

With no model, `AutoLearner(alma)` uses the config's `llm` (a "module:attribute" chat model) when one is
configured, else the offline rule-based extractor (`_offline_extract`), which needs no network.

The model fills `Extraction` (outcomes, preferences, facts) through `llm.with_structured_output(...)`.
Every item then goes through ALMA's normal write path, one at a time: an item outside the agent's
scope (`ScopeViolation`) or invalid (`ValidationError`) is refused and reported, never stored, and
never blocks the valid items. The core does not import LangChain; the model is duck-typed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic import ValidationError as _PydanticError

from ._alma import ALMA
from ._config import load_object
from ._errors import ScopeViolation, UnknownAgent, ValidationError
from ._models import Memory
from ._offline_extract import extract_offline

__all__ = [
    "AutoLearner",
    "ExtractedFact",
    "ExtractedOutcome",
    "ExtractedPreference",
    "Extraction",
    "ExtractionResult",
    "RefusedItem",
]

SYSTEM_PROMPT = """You extract durable lessons from a conversation between a user and an AI agent.
Return only what is stated or clearly shown in the conversation:
- outcomes: tasks the agent attempted, whether they succeeded, the strategy used, the error if any,
  and the category (task_type) of the task;
- preferences: what the user wants from now on (style, tools, constraints), with a category;
- facts: stable facts about the domain (with the domain they belong to).
Do not invent anything. Return empty lists when there is nothing to learn."""


# The schemas the model fills are lenient on purpose: strict checks happen per item on the write path,
# so one bad item is refused instead of failing the whole extraction.
class ExtractedOutcome(BaseModel):
    """A task the agent attempted, and how it went."""

    task: str = Field(description="The task, in one sentence.")
    success: bool = Field(description="Whether the task succeeded.")
    strategy_used: str = Field("", description="How the agent approached it.")
    task_type: str | None = Field(None, description="The task's category, e.g. testing_strategies.")
    error_message: str | None = Field(None, description="What went wrong, for a failure.")


class ExtractedPreference(BaseModel):
    """Something the user wants from now on."""

    preference: str = Field(description="The preference, as an instruction.")
    category: str = Field("general", description="Its category, e.g. code_style.")


class ExtractedFact(BaseModel):
    """A stable fact about the domain."""

    fact: str = Field(description="The fact, in one sentence.")
    domain: str = Field(description="The category or domain it belongs to.")


class Extraction(BaseModel):
    """Outcomes, preferences and facts extracted from a conversation."""

    outcomes: list[ExtractedOutcome] = Field(default_factory=list)
    preferences: list[ExtractedPreference] = Field(default_factory=list)
    facts: list[ExtractedFact] = Field(default_factory=list)


Kind = Literal["outcome", "preference", "fact"]


@dataclass(frozen=True)
class RefusedItem:
    """An extracted item that was not stored, and why (out of scope, invalid, no user)."""

    kind: Kind
    item: dict[str, Any]
    reason: str


@dataclass
class ExtractionResult:
    """What `learn_from_conversation` extracted, stored and refused."""

    extracted_count: int = 0
    stored: list[Memory] = field(default_factory=list)
    refused: list[RefusedItem] = field(default_factory=list)

    @property
    def stored_count(self) -> int:
        return len(self.stored)

    def __getitem__(self, key: str) -> Any:
        """The seed's dict shape: `result["extracted_count"]`, `result["stored_count"]`, ..."""
        if key not in ("extracted_count", "stored_count", "stored", "refused"):
            raise KeyError(key)
        return getattr(self, key)


def content_text(content: Any) -> str:
    """A chat message's content as text: a string, or the text of its content blocks (strings or
    `{"text": ...}` dicts), or its str()."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        blocks = (b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, str | dict))
        return "".join(blocks)
    return "" if content is None else str(content)


def _role(message: Any) -> tuple[str, str]:
    if isinstance(message, tuple) and len(message) == 2:
        return str(message[0]), str(message[1])
    if isinstance(message, Mapping):
        return str(message.get("role", "user")), str(message.get("content", ""))
    if isinstance(message, str):
        return "user", message
    role = getattr(message, "type", None) or type(message).__name__
    return str(role), content_text(getattr(message, "content", ""))


def transcript(messages: Iterable[Any]) -> str:
    """`role: content` lines from LangChain messages, `{"role", "content"}` dicts, (role, content) tuples
    or strings."""
    lines = [f"{role}: {content}" for role, content in map(_role, messages) if content]
    if not lines:
        raise ValidationError("the conversation has no messages with content")
    return "\n".join(lines)


class AutoLearner:
    """Extracts memories from conversations with a chat model and stores them through ALMA's scopes."""

    def __init__(self, alma: ALMA, llm: Any = None, *, system_prompt: str = SYSTEM_PROMPT) -> None:
        """`llm`: a LangChain chat model; default the config's `llm`, else the offline extractor."""
        if llm is None and alma.config.llm:
            llm = load_object(alma.config.llm, "alma.llm")
        if llm is not None and not hasattr(llm, "with_structured_output"):
            raise ValidationError(
                f"llm must be a chat model with with_structured_output (a LangChain chat model), "
                f"got {type(llm).__name__}"
            )
        self.alma, self.llm, self.system_prompt = alma, llm, system_prompt
        self._structured = llm.with_structured_output(Extraction) if llm is not None else None

    def _request(self, messages: Iterable[Any]) -> list[tuple[str, str]]:
        return [("system", self.system_prompt), ("human", f"Conversation:\n{transcript(messages)}")]

    @staticmethod
    def _parse(raw: Any) -> Extraction:
        if isinstance(raw, Extraction):
            return raw
        if isinstance(raw, Mapping) and "parsed" in raw and "raw" in raw:  # include_raw=True
            raw = raw["parsed"]
        try:
            return Extraction.model_validate(raw if raw is not None else {})
        except _PydanticError as exc:
            raise ValidationError(f"the model's extraction is not valid: {exc.errors()[0]['msg']}") from None

    def learn_from_conversation(
        self, messages: Iterable[Any], agent: str, user_id: str | None = None
    ) -> ExtractionResult:
        """Extract, validate and store; returns extracted_count, the stored memories and the refused items."""
        self.alma.scopes.check_agent(agent)
        if self._structured is None:
            messages = list(messages)
            transcript(messages)  # the same refusal of an empty conversation as with a model
            return self.store(self._parse(extract_offline(map(_role, messages))), agent, user_id)
        extraction = self._parse(self._structured.invoke(self._request(messages)))
        return self.store(extraction, agent, user_id)

    async def alearn_from_conversation(
        self, messages: Iterable[Any], agent: str, user_id: str | None = None
    ) -> ExtractionResult:
        """Async twin: the model's `ainvoke`, then the writes on a worker thread."""
        self.alma.scopes.check_agent(agent)
        if self._structured is None:
            return await asyncio.to_thread(self.learn_from_conversation, messages, agent, user_id)
        extraction = self._parse(await self._structured.ainvoke(self._request(messages)))
        return await asyncio.to_thread(self.store, extraction, agent, user_id)

    def store(self, extraction: Extraction, agent: str, user_id: str | None = None) -> ExtractionResult:
        """Store each item through the scoped write path; refuse (and report) what may not be stored."""
        result = ExtractionResult(
            extracted_count=len(extraction.outcomes) + len(extraction.preferences) + len(extraction.facts)
        )
        items: list[tuple[Kind, BaseModel]] = [
            *(("outcome", o) for o in extraction.outcomes),
            *(("preference", p) for p in extraction.preferences),
            *(("fact", f) for f in extraction.facts),
        ]
        for kind, item in items:
            try:
                result.stored.append(self._store_one(kind, item, agent, user_id))
            except ScopeViolation as exc:
                result.refused.append(RefusedItem(kind, item.model_dump(), f"out of scope: {exc}"))
            except (ValidationError, UnknownAgent) as exc:
                result.refused.append(RefusedItem(kind, item.model_dump(), f"invalid: {exc}"))
        return result

    def _store_one(self, kind: Kind, item: BaseModel, agent: str, user_id: str | None) -> Memory:
        meta = {"source": "conversation", **({"user_id": user_id} if user_id else {})}
        if isinstance(item, ExtractedOutcome):
            return self.alma.learn(
                agent, item.task, item.success, item.strategy_used, task_type=item.task_type or None,
                error_message=item.error_message or None, metadata=meta,
            )  # fmt: skip
        if isinstance(item, ExtractedPreference):
            if not user_id:
                raise ValidationError("a preference needs the user_id of the conversation")
            return self.alma.add_user_preference(user_id, item.preference, item.category, "conversation", agent)
        assert isinstance(item, ExtractedFact)
        return self.alma.add_domain_knowledge(agent, item.domain, item.fact, source="conversation", metadata=meta)
