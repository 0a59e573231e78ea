"""Domain memory schemas and the factory that turns one into a scoped `ALMA`.

    from alma_core.domains import DomainMemoryFactory, get_research_schema
    factory = DomainMemoryFactory()
    alma = factory.create_alma(get_research_schema(), "lit-review", agents=["scout", "critic"])

A schema names a domain's entity types and its learning categories. The factory gives each agent
`can_learn` = the schema's categories (or a subset of them), so an agent can never learn outside its
domain: a write in another category raises `ScopeViolation` through ALMA's normal write path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._alma import ALMA
from ._config import AgentConfig
from ._errors import ValidationError
from .storage._base import BaseStorage

__all__ = [
    "DomainMemoryFactory",
    "DomainSchema",
    "EntityType",
    "create_schema",
    "get_coding_schema",
    "get_content_creation_schema",
    "get_customer_support_schema",
    "get_general_schema",
    "get_research_schema",
    "get_sales_schema",
    "get_schema",
    "list_schemas",
]

_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONFIG_KEYS = {"description", "entity_types", "learning_categories", "cannot_learn", "min_occurrences_for_heuristic"}


@dataclass(frozen=True)
class EntityType:
    """A kind of thing the domain talks about (a ticket, a paper, a lead), with its attributes."""

    name: str
    description: str = ""
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainSchema:
    """What a domain remembers: its entity types and the categories its agents may learn."""

    name: str
    learning_categories: tuple[str, ...]
    entity_types: tuple[EntityType, ...] = ()
    description: str = ""
    cannot_learn: tuple[str, ...] = ()
    min_occurrences_for_heuristic: int = 3

    def agent_config(self, categories: Iterable[str] | None = None, **fields: Any) -> AgentConfig:
        """An `AgentConfig` that learns the schema's categories (or the given subset of them)."""
        chosen = list(categories) if categories is not None else list(self.learning_categories)
        unknown = [c for c in chosen if c not in self.learning_categories]
        if unknown:
            raise ValidationError(
                f"categories {unknown} are not learning categories of schema {self.name!r}; "
                f"choose among {list(self.learning_categories)}"
            )
        defaults = {
            "cannot_learn": list(self.cannot_learn),
            "min_occurrences_for_heuristic": self.min_occurrences_for_heuristic,
        }
        return AgentConfig(domain=self.name, can_learn=chosen, **{**defaults, **fields})

    def to_prompt(self) -> str:
        """A short markdown description of the domain for a system prompt."""
        lines = [f"## Domain: {self.name}"]
        if self.description:
            lines.append(self.description)
        if self.entity_types:
            lines.append("Entities: " + ", ".join(e.name for e in self.entity_types))
        lines.append("Learns: " + ", ".join(self.learning_categories))
        return "\n".join(lines)


# ---- validation ------------------------------------------------------------------------------------


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ValidationError(
            f"{where} must be a lowercase identifier (a letter, then letters, digits or _; at most 64), got {value!r}"
        )
    return value


def _names(value: Any, where: str, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence) or (required and not value):
        raise ValidationError(f"{where} must be a non-empty list of names, got {value!r}")
    names = tuple(_ident(v, f"{where}[{i}]") for i, v in enumerate(value))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"{where} lists {dupes} more than once")
    return names


def _entity(value: Any, where: str) -> EntityType:
    if isinstance(value, EntityType):
        value = {"name": value.name, "description": value.description, "attributes": list(value.attributes)}
    if isinstance(value, str):
        return EntityType(_ident(value, where))
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a name or a mapping with name/description/attributes, got {value!r}")
    extra = sorted(set(value) - {"name", "description", "attributes"})
    if extra:
        raise ValidationError(f"{where}: unknown keys {extra}; use name, description, attributes")
    description = value.get("description", "")
    if not isinstance(description, str):
        raise ValidationError(f"{where}.description must be a string, got {description!r}")
    attributes = _names(value.get("attributes"), f"{where}.attributes", required=False)
    return EntityType(_ident(value.get("name"), f"{where}.name"), description, attributes)


def create_schema(name: str, config: Mapping[str, Any]) -> DomainSchema:
    """Validate a schema definition: `{"entity_types": [...], "learning_categories": [...]}` plus optional
    `description`, `cannot_learn` and `min_occurrences_for_heuristic`. Bad input raises `ValidationError`."""
    _ident(name, "schema name")
    if not isinstance(config, Mapping):
        raise ValidationError(f"schema {name!r}: config must be a mapping, got {type(config).__name__}")
    extra = sorted(set(config) - _CONFIG_KEYS)
    if extra:
        raise ValidationError(f"schema {name!r}: unknown keys {extra}; allowed: {sorted(_CONFIG_KEYS)}")
    raw_entities = config.get("entity_types")
    if isinstance(raw_entities, str) or not isinstance(raw_entities, Sequence) or not raw_entities:
        raise ValidationError(f"schema {name!r}: entity_types must be a non-empty list, got {raw_entities!r}")
    entities = tuple(_entity(e, f"schema {name!r}: entity_types[{i}]") for i, e in enumerate(raw_entities))
    dupes = sorted({e.name for e in entities if [x.name for x in entities].count(e.name) > 1})
    if dupes:
        raise ValidationError(f"schema {name!r}: entity_types lists {dupes} more than once")
    categories = _names(config.get("learning_categories"), f"schema {name!r}: learning_categories", required=True)
    forbidden = _names(config.get("cannot_learn"), f"schema {name!r}: cannot_learn", required=False)
    overlap = sorted(set(categories) & set(forbidden))
    if overlap:
        raise ValidationError(f"schema {name!r}: {overlap} is in both learning_categories and cannot_learn")
    description = config.get("description", "")
    if not isinstance(description, str):
        raise ValidationError(f"schema {name!r}: description must be a string, got {description!r}")
    min_occ = config.get("min_occurrences_for_heuristic", 3)
    if isinstance(min_occ, bool) or not isinstance(min_occ, int) or not 1 <= min_occ <= 10_000:
        raise ValidationError(f"schema {name!r}: min_occurrences_for_heuristic must be an integer in 1..10000")
    return DomainSchema(name, categories, entities, description, forbidden, min_occ)


# ---- the six pre-built schemas ---------------------------------------------------------------------


def _schema(name: str, description: str, categories: str, entities: dict[str, str]) -> DomainSchema:
    return create_schema(
        name,
        {
            "description": description,
            "learning_categories": categories.split(),
            "entity_types": [{"name": k, "attributes": v.split()} for k, v in entities.items()],
        },
    )


def get_coding_schema() -> DomainSchema:
    """Software development: testing, APIs, debugging, review."""
    return _schema(
        "coding", "Memory for software development workflows.",
        "testing_strategies selector_patterns api_design_patterns error_handling performance_optimization "
        "debugging_techniques code_review_patterns refactoring_strategies",
        {"feature": "status tests files priority owner", "bug": "severity reproduction_steps fix status root_cause",
         "test": "kind status coverage flaky last_run", "component": "path kind dependencies tests",
         "api_endpoint": "method path request_schema response_schema auth"},
    )  # fmt: skip


def get_research_schema() -> DomainSchema:
    """Research: literature review, methodology, analysis, synthesis."""
    return _schema(
        "research", "Memory for research and literature workflows.",
        "literature_review_patterns methodology_selection data_analysis_strategies citation_patterns "
        "hypothesis_formulation experiment_design peer_review_patterns synthesis_techniques",
        {"paper": "title authors year citations venue doi", "hypothesis": "statement confidence status",
         "experiment": "method results conclusions sample_size", "dataset": "name size source license",
         "finding": "summary significance supporting_evidence"},
    )  # fmt: skip


def get_sales_schema() -> DomainSchema:
    """Sales: qualification, objections, closing, follow-up."""
    return _schema(
        "sales", "Memory for sales and customer engagement workflows.",
        "objection_handling closing_techniques qualification_patterns follow_up_timing value_proposition "
        "discovery_questions relationship_building negotiation_strategies",
        {"lead": "stage value next_action source company", "objection": "kind response outcome",
         "conversation": "channel sentiment result summary", "deal": "stage value close_date probability",
         "product": "name price features competitors"},
    )  # fmt: skip


def get_general_schema() -> DomainSchema:
    """A minimal schema for general-purpose and tool-using agents."""
    return _schema(
        "general", "Minimal, flexible memory for general-purpose agents.",
        "task_patterns error_recovery tool_usage efficiency_patterns user_preferences context_switching",
        {"task": "title status priority category", "resource": "kind path status",
         "goal": "description status deadline progress", "context": "name state active"},
    )  # fmt: skip


def get_customer_support_schema() -> DomainSchema:
    """Customer support: triage, resolution, escalation."""
    return _schema(
        "customer_support", "Memory for customer support workflows.",
        "issue_classification resolution_patterns escalation_criteria customer_sentiment knowledge_retrieval "
        "follow_up_patterns edge_case_handling",
        {"ticket": "status priority category customer_id resolution", "article": "title category helpful_votes",
         "customer": "tier history sentiment", "issue": "description status workaround affected_customers"},
    )  # fmt: skip


def get_content_creation_schema() -> DomainSchema:
    """Content creation: writing, audience, SEO, formatting."""
    return _schema(
        "content_creation", "Memory for content creation workflows.",
        "writing_patterns engagement_optimization audience_targeting seo_strategies content_formatting "
        "voice_and_tone visual_content_patterns",
        {"content": "kind title status platform performance_metrics", "audience": "name interests pain_points",
         "campaign": "name goal start_date end_date budget", "template": "kind structure effectiveness"},
    )  # fmt: skip


_BUILTIN: dict[str, Callable[[], DomainSchema]] = {
    "coding": get_coding_schema,
    "research": get_research_schema,
    "sales": get_sales_schema,
    "general": get_general_schema,
    "customer_support": get_customer_support_schema,
    "content_creation": get_content_creation_schema,
}


def list_schemas() -> list[str]:
    """The names of the pre-built schemas."""
    return sorted(_BUILTIN)


def get_schema(name: str) -> DomainSchema:
    """A pre-built schema by name (`ValidationError` naming the choices otherwise)."""
    if name not in _BUILTIN:
        raise ValidationError(f"no pre-built schema {name!r}; choose among {list_schemas()} or use create_schema")
    return _BUILTIN[name]()


# ---- the factory -----------------------------------------------------------------------------------


AgentsSpec = Sequence[str] | Mapping[str, Sequence[str] | Mapping[str, Any] | None] | None


class DomainMemoryFactory:
    """Builds domain schemas, and `ALMA` instances whose agents are scoped to a schema."""

    def __init__(self) -> None:
        self._custom: dict[str, DomainSchema] = {}

    def create_schema(self, name: str, config: Mapping[str, Any]) -> DomainSchema:
        """Validate and register a custom schema (see the module-level `create_schema`)."""
        schema = create_schema(name, config)
        self._custom[name] = schema
        return schema

    def get_schema(self, name: str) -> DomainSchema:
        """A schema registered on this factory, else a pre-built one."""
        return self._custom[name] if name in self._custom else get_schema(name)

    def list_schemas(self) -> list[str]:
        return sorted({*self._custom, *list_schemas()})

    def agent_configs(self, schema: DomainSchema, agents: AgentsSpec = None) -> dict[str, AgentConfig]:
        """Agent configs for `agents`: a list of names (each learns every category), or a mapping of
        name -> a list of categories, or name -> `AgentConfig` fields (`can_learn` a subset of the schema's).
        Without agents, one agent named after the schema."""
        if agents is None:
            return {schema.name: schema.agent_config()}
        if isinstance(agents, str) or not isinstance(agents, Sequence | Mapping) or not agents:
            raise ValidationError(f"agents must be a non-empty list of names or a mapping, got {agents!r}")
        if not isinstance(agents, Mapping):
            return {str(name): schema.agent_config() for name in agents}
        configs: dict[str, AgentConfig] = {}
        for name, spec in agents.items():
            if spec is None:
                configs[name] = schema.agent_config()
            elif isinstance(spec, Mapping):
                fields = dict(spec)
                categories = fields.pop("can_learn", None)
                fields.pop("domain", None)
                try:
                    configs[name] = schema.agent_config(categories, **fields)
                except ValidationError:
                    raise
                except (TypeError, ValueError) as exc:  # pydantic's, for an unknown or bad AgentConfig field
                    raise ValidationError(f"agents.{name}: {str(exc).splitlines()[0]}") from None
            elif isinstance(spec, Sequence) and not isinstance(spec, str):
                configs[name] = schema.agent_config(spec)
            else:
                raise ValidationError(f"agents.{name} must be a list of categories or a mapping, got {spec!r}")
        return configs

    def create_alma(
        self,
        schema: DomainSchema | str,
        project_id: str,
        agents: AgentsSpec = None,
        storage: BaseStorage | str | os.PathLike[str] | None = None,
        embedder: Any = None,
        **kwargs: Any,
    ) -> ALMA:
        """An `ALMA` for `project_id` whose agents learn only the schema's categories."""
        if isinstance(schema, str):
            schema = self.get_schema(schema)
        if not isinstance(schema, DomainSchema):
            raise ValidationError(f"schema must be a DomainSchema or a schema name, got {type(schema).__name__}")
        configs = self.agent_configs(schema, agents)
        return ALMA(project_id, configs, storage=storage, embedder=embedder, **kwargs)
