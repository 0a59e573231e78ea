"""Memory endpoints under `/v1/projects/{project_id}`: retrieve, learn, the add_* calls, get / list /
delete, forget, stats, health, export / import, delete_user, consolidate.

Handlers are plain `def`s: FastAPI runs them on its worker threads, so a slow store never blocks the
event loop. Where an MCP tool does the same job, its handler is called (`tool`), so both doors answer
alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from .._alma import ALMA
from ..mcp._common import MAX_NAME, MemoryTypeName, ToolArgs, jsonable
from ..mcp._tools import (
    TOOLS,
    AddKnowledgeArgs,
    AddPreferenceArgs,
    ConsolidateArgs,
    ForgetArgs,
    LearnArgs,
    RetrieveArgs,
    StatsArgs,
)
from ._models import (
    PROBLEMS,
    AddAntiPatternArgs,
    Count,
    ForgetResult,
    Imported,
    LearnManyArgs,
    LearnManyResult,
    MemoryList,
    MemoryOut,
)
from ._models import RetrieveResult as RetrieveOut

__all__ = ["Alma", "Name", "project_alma", "router", "tool"]

_SPECS = {spec.name: spec for spec in TOOLS}


def project_alma(request: Request, project_id: Annotated[str, Path(min_length=1, max_length=MAX_NAME)]) -> ALMA:
    """The project's `ALMA`, if the request's bearer token is that project's (401 / 403 otherwise)."""
    return request.app.state.registry.authorize(project_id, request.headers.get("authorization"))  # type: ignore[no-any-return]


Alma = Annotated[ALMA, Depends(project_alma)]
Name = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]


def tool(name: str, alma: ALMA, args: ToolArgs) -> Any:
    """What MCP tool `name` returns as structured content for these (validated) arguments."""
    return _SPECS[name].handler(alma, args)[0]


router = APIRouter(prefix="/v1/projects/{project_id}", responses=PROBLEMS)


@router.post("/retrieve", response_model=RetrieveOut, tags=["memory"])
def retrieve(body: RetrieveArgs, alma: Alma) -> Any:
    """Before a task: the agent's most relevant memories, ranked, per type, with a prompt block."""
    return tool("alma_retrieve", alma, body)


@router.post("/learn", response_model=MemoryOut, status_code=201, tags=["memory"])
def learn(body: LearnArgs, alma: Alma) -> Any:
    """After a task: record the outcome (heuristics and anti-patterns update in the same transaction)."""
    return tool("alma_learn", alma, body)


@router.post("/learn_many", response_model=LearnManyResult, status_code=201, tags=["memory"])
def learn_many(body: LearnManyArgs, alma: Alma) -> Any:
    """Many outcomes in one transaction: all are stored, or none."""
    outcomes = alma.learn_many([item.model_dump() for item in body.items])
    return {"count": len(outcomes), "outcomes": [o.to_dict() for o in outcomes]}


@router.post("/preferences", response_model=MemoryOut, status_code=201, tags=["memory"])
def add_preference(body: AddPreferenceArgs, alma: Alma) -> Any:
    """A user preference (project-wide unless `agent` is given)."""
    return tool("alma_add_preference", alma, body)


@router.post("/knowledge", response_model=MemoryOut, status_code=201, tags=["memory"])
def add_knowledge(body: AddKnowledgeArgs, alma: Alma) -> Any:
    """A domain fact for an agent (the domain is scope-checked)."""
    return tool("alma_add_knowledge", alma, body)


@router.post("/anti_patterns", response_model=MemoryOut, status_code=201, tags=["memory"])
def add_anti_pattern(body: AddAntiPatternArgs, alma: Alma) -> Any:
    """What not to do, why, and what to do instead."""
    return alma.add_anti_pattern(**body.model_dump()).to_dict()


@router.get("/memories", response_model=MemoryList, tags=["memory"])
def list_memories(
    alma: Alma,
    agent: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)] = None,
    type: Annotated[list[MemoryTypeName] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Any:
    """Memories of the project (or one agent, or some types), newest first."""
    return {"memories": [m.to_dict() for m in alma.list_memories(agent, type, limit)]}


@router.get("/memories/{memory_id}", response_model=MemoryOut, tags=["memory"])
def get_memory(memory_id: Name, alma: Alma) -> Any:
    return alma.get(memory_id).to_dict()


@router.delete("/memories/{memory_id}", response_model=MemoryOut, tags=["memory"])
def delete_memory(memory_id: Name, alma: Alma) -> Any:
    """Delete one memory; returns it."""
    return alma.delete(memory_id).to_dict()


@router.post("/forget", response_model=ForgetResult, tags=["memory"])
def forget(body: ForgetArgs, alma: Alma) -> Any:
    """Delete memories matching every criterion given (age, confidence, per-agent cap); `dry_run` first."""
    return tool("alma_forget", alma, body)


@router.post("/consolidate", tags=["memory"])
def consolidate(body: ConsolidateArgs, alma: Alma) -> Any:
    """Merge an agent's near-duplicate heuristics, facts or anti-patterns."""
    return tool("alma_consolidate", alma, body)


@router.get("/stats", tags=["memory"])
def stats(alma: Alma, agent: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)] = None) -> Any:
    """Counts per type and per agent (a `MemoryStats`)."""
    return tool("alma_stats", alma, StatsArgs(agent=agent))


@router.get("/health", tags=["memory"])
def health(alma: Alma) -> Any:
    """Whether the project's store answers, and which store and embedder it uses."""
    return jsonable(alma.health())


@router.delete("/users/{user_id}", response_model=Count, tags=["memory"])
def delete_user(user_id: Name, alma: Alma) -> Any:
    """Everything about one user: preferences, memories and records tagged with it (GDPR)."""
    return {"deleted": alma.delete_user(user_id)}


_NDJSON = "application/x-ndjson"
_EXPORTED: dict[int | str, dict[str, Any]] = {200: {"content": {_NDJSON: {}}, "description": "One memory per line."}}
# Not required: an empty project exports an empty body, and importing it back imports nothing.
_IMPORTED: dict[str, Any] = {"requestBody": {"required": False, "content": {_NDJSON: {"schema": {"type": "string"}}}}}


@router.get("/export", tags=["memory"], response_class=Response, responses=_EXPORTED)
def export(alma: Alma, with_embeddings: bool = False) -> Response:
    """Every memory of the project as JSON lines (what `alma import` and `POST /import` read)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = FilePath(tmp) / "export.jsonl"
        count = alma.export(path, with_embeddings=with_embeddings)
        body = path.read_bytes()
    return Response(body, media_type=_NDJSON, headers={"x-alma-count": str(count)})


@router.post("/import", response_model=Imported, tags=["memory"], openapi_extra=_IMPORTED)
async def import_(request: Request, alma: Alma) -> Any:
    """Load JSON lines (an export) into the project (scopes apply): all lines or none."""
    body = await request.body()

    def load() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = FilePath(tmp) / "import.jsonl"
            path.write_bytes(body)
            return alma.import_(path)

    return {"imported": await run_in_threadpool(load)}
