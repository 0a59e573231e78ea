"""`LLMEntityExtractor`: entities and relationships by a LangChain chat model's structured output.

    extractor = LLMEntityExtractor(chat_model, entity_types=["person", "organization", "ticket"])
    entities, relationships = extractor.extract("Alice from Acme Corp reviewed the PR that Bob submitted.")

Same shape as the rule-based `EntityExtractor`, so either can feed the graph. The model fills
`GraphExtraction` through `llm.with_structured_output(...)`; an item that is not valid (an empty name,
a relation to an entity it did not name) is dropped and counted in `dropped`, never stored. The core
does not import LangChain: the model is duck-typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as _PydanticError

from .._errors import AlmaError, ValidationError
from ._models import Entity, Relationship, entity_id

__all__ = ["ExtractedEntity", "ExtractedRelation", "GraphExtraction", "LLMEntityExtractor"]

SYSTEM_PROMPT = """You extract a knowledge graph from a short text an AI agent remembered.
Return only what the text states:
- entities: people, organizations, places, tools, documents and the domain's things, each with a type
  (one of: {types});
- relationships: source entity name, relation type in UPPER_SNAKE_CASE (WORKS_FOR, LIVES_IN, LOCATED_IN,
  REPORTS_TO, MANAGES, USES, DEPENDS_ON, CREATED, REVIEWED, FIXED, OWNS, KNOWS, PART_OF, ASSIGNED_TO, or
  another short verb), target entity name. Use the names exactly as in the entity list.
Do not invent anything. Return empty lists when there is nothing."""


class ExtractedEntity(BaseModel):
    """Something the text names."""

    name: str = Field(description="The name as written in the text.")
    entity_type: str = Field("concept", description="Its type, e.g. person, organization, location.")


class ExtractedRelation(BaseModel):
    """A relationship the text states between two named entities."""

    source: str = Field(description="The source entity's name.")
    relation_type: str = Field(description="UPPER_SNAKE_CASE, e.g. WORKS_FOR.")
    target: str = Field(description="The target entity's name.")


class GraphExtraction(BaseModel):
    """Entities and relationships extracted from a text."""

    entities: list[ExtractedEntity] = Field(default_factory=list)
    relationships: list[ExtractedRelation] = Field(default_factory=list)


def _invalid(exc: _PydanticError) -> ValidationError:
    return ValidationError(f"the model's graph extraction is not valid: {exc.errors()[0]['msg']}")


class LLMEntityExtractor:
    """Extracts a typed graph from text with a chat model (any LangChain chat model with tool calling)."""

    def __init__(self, llm: Any, entity_types: Iterable[object] = (), *, system_prompt: str | None = None) -> None:
        if not hasattr(llm, "with_structured_output"):
            raise ValidationError(
                f"llm must be a chat model with with_structured_output (a LangChain chat model), "
                f"got {type(llm).__name__}"
            )
        types = [str(getattr(t, "name", t)) for t in entity_types] or ["person", "organization", "location", "concept"]
        self.llm, self.entity_types = llm, types
        self.system_prompt = system_prompt or SYSTEM_PROMPT.format(types=", ".join(types))
        self._structured = llm.with_structured_output(GraphExtraction)
        self.dropped = 0  # items the model returned that were not valid

    def _request(self, text: str) -> list[tuple[str, str]]:
        return [("system", self.system_prompt), ("human", f"Text:\n{text}")]

    def extract(self, text: str) -> tuple[list[Entity], list[Relationship]]:
        """The entities and relationships the model finds in `text`."""
        try:
            return self._convert(self._structured.invoke(self._request(text)))
        except _PydanticError as exc:  # LangChain's parser validates the model's answer first
            raise _invalid(exc) from None

    async def aextract(self, text: str) -> tuple[list[Entity], list[Relationship]]:
        """Async twin: the model's `ainvoke`."""
        try:
            return self._convert(await self._structured.ainvoke(self._request(text)))
        except _PydanticError as exc:
            raise _invalid(exc) from None

    def entity_ids(self, text: str) -> list[str]:
        return [e.id for e in self.extract(text)[0]]

    def _convert(self, raw: Any) -> tuple[list[Entity], list[Relationship]]:
        if isinstance(raw, Mapping) and "parsed" in raw and "raw" in raw:  # include_raw=True
            raw = raw["parsed"]
        try:
            parsed = raw if isinstance(raw, GraphExtraction) else GraphExtraction.model_validate(raw or {})
        except _PydanticError as exc:
            raise _invalid(exc) from None
        entities: dict[str, Entity] = {}
        for item in parsed.entities:
            try:
                entity = Entity(name=item.name, entity_type=entity_id(item.entity_type) or "concept")
            except AlmaError:
                self.dropped += 1
                continue
            entities.setdefault(entity.id, entity)
        relationships: list[Relationship] = []
        for rel in parsed.relationships:
            src, dst = entity_id(rel.source), entity_id(rel.target)
            if src not in entities or dst not in entities or src == dst:
                self.dropped += 1
                continue
            try:
                relationships.append(Relationship(source_id=src, target_id=dst, relation_type=rel.relation_type))
            except AlmaError:
                self.dropped += 1
        return list(entities.values()), relationships
