"""The 16 MCP tools: one strict pydantic input model and one handler each, plus their annotations.

Arguments are validated at the edge (strict types, size limits, known agents); a handler runs only on
valid input and returns `(structured, text)`. Nothing here imports `mcp`, so the table can be inspected
and tested without the SDK. The workflow tools live in `_workflow_tools`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ._common import (
    DESTROY,
    MAX_NAME,
    MAX_TEXT,
    READ,
    WRITE,
    MemoryTypeName,
    Output,
    ToolArgs,
    ToolSpec,
    WithMetadata,
    agent_field,
    check_agent,
    jsonable,
    optional_name,
    slice_output,
)
from ._workflow_tools import WORKFLOW_TOOLS

if TYPE_CHECKING:
    from .._alma import ALMA

__all__ = ["TOOLS"]


# ---- memory tools -----------------------------------------------------------------------------------


class RetrieveArgs(ToolArgs):
    task: str = Field(min_length=1, max_length=MAX_TEXT, description="The task about to be done, in plain words.")
    agent: str = agent_field()
    top_k: int = Field(5, ge=1, le=100, description="At most this many memories per memory type.")
    user_id: str | None = Field(None, max_length=MAX_NAME, description="Include this user's preferences.")
    include_shared: bool = Field(True, description="Also read memories shared with / inherited by the agent.")
    memory_types: list[MemoryTypeName] | None = Field(None, max_length=5, description="Only these types.")
    max_tokens: int | None = Field(None, ge=1, le=100_000, description="Token budget of the returned prompt text.")


class LearnArgs(WithMetadata):
    agent: str = agent_field()
    task: str = Field(min_length=1, max_length=MAX_TEXT, description="The task that was attempted.")
    outcome: Literal["success", "failure"] | bool = Field(description="'success' or 'failure' (or true / false).")
    strategy_used: str = Field("", max_length=MAX_TEXT, description="What was tried; repeated wins become heuristics.")
    task_type: str | None = optional_name("Category (must be in the agent's can_learn).")
    duration_ms: int | None = Field(None, ge=0, le=10**10, description="How long the task took.")
    error_message: str | None = Field(None, max_length=MAX_TEXT, description="The error, for a failure.")
    feedback: str | None = Field(None, max_length=MAX_TEXT, description="Reviewer or user feedback.")


class AddPreferenceArgs(WithMetadata):
    user_id: str = Field(min_length=1, max_length=MAX_NAME, description="The user this preference belongs to.")
    preference: str = Field(min_length=1, max_length=MAX_TEXT, description="What the user wants, in one sentence.")
    category: str = Field("general", min_length=1, max_length=MAX_NAME, description="e.g. code_style, tools.")
    source: str = Field("explicit", max_length=MAX_NAME, description="Where it came from (explicit, inferred).")
    agent: str | None = optional_name("Owner; omit for project-wide.")


class AddKnowledgeArgs(WithMetadata):
    agent: str = agent_field()
    domain: str = Field(min_length=1, max_length=MAX_NAME, description="Domain of the fact (scope-checked).")
    fact: str = Field(min_length=1, max_length=MAX_TEXT, description="The fact, in one or two sentences.")
    source: str = Field("", max_length=2_000, description="Where the fact comes from (URL, file, person).")
    confidence: float = Field(1.0, ge=0, le=1, description="How sure, 0..1.")


class ForgetArgs(ToolArgs):
    agent: str | None = optional_name("Only this agent's memories.")
    older_than_days: float | None = Field(None, ge=0, le=100_000, description="Created more than N days ago.")
    below_confidence: float | None = Field(None, ge=0, le=1, description="Confidence below this.")
    max_per_agent: int | None = Field(None, ge=0, le=1_000_000, description="Keep each agent's newest N per type.")
    dry_run: bool = Field(False, description="Only report what would be forgotten.")
    memory_types: list[MemoryTypeName] | None = Field(
        None, max_length=5, description="Types to consider (preferences only when named)."
    )


class StatsArgs(ToolArgs):
    agent: str | None = optional_name("One agent; omit for all.")


class HealthArgs(ToolArgs):
    pass


class ConsolidateArgs(ToolArgs):
    agent: str = agent_field()
    memory_type: Literal["heuristic", "knowledge", "anti_pattern"] = Field(
        "heuristic", description="Which memories to merge."
    )
    similarity_threshold: float = Field(0.85, gt=0, le=1, description="Cosine above which memories merge.")
    dry_run: bool = Field(False, description="Only report the groups that would merge.")


def _retrieve(alma: ALMA, a: RetrieveArgs) -> Output:
    check_agent(alma, a.agent)
    found = alma.retrieve(a.task, a.agent, a.top_k, a.user_id, a.include_shared, a.memory_types)
    return slice_output(found, a.max_tokens)


def _learn(alma: ALMA, a: LearnArgs) -> Output:
    outcome = alma.learn(**a.model_dump())
    verdict = "success" if outcome.success else "failure"
    return outcome.to_dict(), f"learned {verdict} for {outcome.agent} ({outcome.task_type}): {outcome.id}"


def _add_preference(alma: ALMA, a: AddPreferenceArgs) -> Output:
    pref = alma.add_user_preference(**a.model_dump())
    return pref.to_dict(), f"remembered preference {pref.id} for user {pref.user_id}"


def _add_knowledge(alma: ALMA, a: AddKnowledgeArgs) -> Output:
    item = alma.add_domain_knowledge(**a.model_dump())
    return item.to_dict(), f"remembered {item.domain} fact {item.id} for {item.agent}"


def _forget(alma: ALMA, a: ForgetArgs) -> Output:
    gone = alma.forget(**a.model_dump())
    ids = [m.id for m in gone]
    verb = "would forget" if a.dry_run else "forgot"
    return {"count": len(ids), "dry_run": a.dry_run, "ids": ids}, f"{verb} {len(ids)} memories"


def _stats(alma: ALMA, a: StatsArgs) -> Output:
    stats = alma.stats(a.agent).model_dump(mode="json")
    parts = ", ".join(f"{k} {stats[k]}" for k in ("outcomes", "heuristics", "anti_patterns", "preferences",
                                                     "knowledge"))  # fmt: skip
    return stats, f"{stats['total']} memories ({parts})"


def _health(alma: ALMA, a: HealthArgs) -> Output:
    info = jsonable(alma.health())
    return info, f"{info.get('status')}: project {info.get('project_id')}, {info.get('memories')} memories"


def _consolidate(alma: ALMA, a: ConsolidateArgs) -> Output:
    from ..consolidation import ConsolidationEngine

    check_agent(alma, a.agent)
    result = ConsolidationEngine(alma).consolidate_sync(
        a.agent, alma.project_id, a.memory_type, similarity_threshold=a.similarity_threshold, dry_run=a.dry_run
    )
    data = jsonable(result)
    verb = "would merge" if a.dry_run else "merged"
    return data, f"{verb} {data.get('merged_count', 0)} memories in {data.get('groups_found', 0)} groups"


# ---- the table --------------------------------------------------------------------------------------


MEMORY_TOOLS: list[ToolSpec] = [
    ToolSpec("alma_retrieve", "Retrieve memories",
             "Before a task: the agent's most relevant memories (strategies that worked, things to avoid, user "
             "preferences, domain facts, recent outcomes) as a compact prompt block.", RetrieveArgs, _retrieve, READ),
    ToolSpec("alma_learn", "Learn from an outcome",
             "After a task: record what was tried and whether it worked. Repeated successes become heuristics, "
             "repeated failures anti-patterns.", LearnArgs, _learn, WRITE),
    ToolSpec("alma_add_preference", "Add a user preference",
             "Remember something a user wants (style, tools, constraints); project-wide unless an agent is given.",
             AddPreferenceArgs, _add_preference, WRITE),
    ToolSpec("alma_add_knowledge", "Add domain knowledge",
             "Remember a fact about a domain for an agent (the domain must be within the agent's scope).",
             AddKnowledgeArgs, _add_knowledge, WRITE),
    ToolSpec("alma_forget", "Forget memories",
             "Delete memories matching every given criterion (age, confidence, per-agent cap). Use dry_run first.",
             ForgetArgs, _forget, DESTROY),
    ToolSpec("alma_stats", "Memory statistics", "How many memories of each type the project (or one agent) holds.",
             StatsArgs, _stats, READ),
    ToolSpec("alma_health", "Health check", "Whether the memory store answers, and which store and embedder it uses.",
             HealthArgs, _health, READ),
    ToolSpec("alma_consolidate", "Consolidate memories",
             "Merge near-duplicate heuristics, facts or anti-patterns of an agent into one each (keeps provenance).",
             ConsolidateArgs, _consolidate, DESTROY),
]  # fmt: skip


TOOLS: list[ToolSpec] = [*MEMORY_TOOLS, *WORKFLOW_TOOLS]
