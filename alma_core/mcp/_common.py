"""What every MCP tool shares: the strict argument base, size limits, JSON conversion, the spec type."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError

from .._checks import MAX_DEPTH, check_json

if TYPE_CHECKING:
    from .._alma import ALMA

__all__ = [
    "DESTROY",
    "MAX_NAME",
    "MAX_STATE_BYTES",
    "MAX_STATE_DEPTH",
    "MAX_TEXT",
    "MEMORY_TYPES",
    "NON_FINITE",
    "READ",
    "WRITE",
    "Hints",
    "MemoryTypeName",
    "Output",
    "ToolArgs",
    "ToolSpec",
    "WithMetadata",
    "agent_field",
    "check_agent",
    "error_reply",
    "json_size",
    "jsonable",
    "non_finite",
    "one_line",
    "optional_name",
    "pydantic_reason",
    "request_head",
    "slice_output",
]

MAX_TEXT = 20_000  # characters of one task, strategy, fact, preference
MAX_NAME = 200  # agents, ids, categories
MAX_METADATA_BYTES = 64 * 1024
MAX_STATE_BYTES = 1024 * 1024  # one checkpointed workflow state, as JSON
MAX_STATE_DEPTH = 100  # nesting of a state: the serializer recurses (a few frames a level; Python stops near 1000)
MAX_REASON = 300  # characters of a one-line error
MemoryTypeName = Literal["outcome", "heuristic", "anti_pattern", "preference", "knowledge"]
MEMORY_TYPES: tuple[str, ...] = get_args(MemoryTypeName)
Output = tuple[dict[str, Any], str]
_V = TypeVar("_V")


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of what the Python API returns (pydantic models, dataclasses, datetimes, ...)."""
    if isinstance(value, BaseModel):
        dump = getattr(value, "to_dict", None)
        return jsonable(dump() if callable(dump) else value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


NON_FINITE = "the arguments hold NaN or Infinity, which JSON does not have; send finite numbers or null"


def non_finite(value: Any) -> bool:
    """Whether a parsed JSON-RPC message holds NaN or an infinity: the SDK's parsers read them, and its
    session would hand the tools `null` in their place (iterative: no recursion on deep input)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_HEAD_ID = re.compile(r'\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,15}|"[^"\\]{0,200}")')
_HEAD_CALL = re.compile(r'"method"\s*:\s*"tools/call"\s*,\s*"params"\s*:\s*\{\s*"name"\s*:\s*"([A-Za-z0-9_]{1,100})"')


def request_head(raw: str | bytes) -> tuple[int | str | None, str | None, str | None]:
    """(id, method, tool name) of a JSON-RPC request the SDK could not parse: by Python's parser (it reads
    lone surrogates and huge numbers), else, for nesting past its stack, from the head of the text as
    clients write it (jsonrpc, id, method, params.name). Nones for what cannot be read."""
    try:
        message = json.loads(raw)
        params = message.get("params") if isinstance(message, dict) else None
        name = params.get("name") if isinstance(params, dict) else None
        request_id, method = message.get("id"), message.get("method")
    except (ValueError, RecursionError, AttributeError):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        found, call = _HEAD_ID.match(text), _HEAD_CALL.search(text[:1000])
        request_id = json.loads(found.group(1)) if found else None
        method, name = ("tools/call", call.group(1)) if call else (None, None)
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None, None, None
    return request_id, method if isinstance(method, str) else None, name if isinstance(name, str) else None


def error_reply(request_id: Any, method: Any, name: Any, reason: str, code: int = -32602) -> dict[str, Any]:
    """A JSON-RPC reply answering a request outside the SDK's session: a tool error for a tool call, else
    an error with `code` (default: invalid params)."""
    if method == "tools/call":
        result = {"content": [{"type": "text", "text": one_line(f"{name or 'tools/call'}: {reason}")}], "isError": True}
        return {"jsonrpc": "2.0", "id": request_id, "result": result}
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": one_line(reason)}}


def one_line(text: str) -> str:
    """`text` on one line, at most MAX_REASON characters: what an error tells a client."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def pydantic_reason(exc: PydanticError) -> str:
    """The first problem of a pydantic error as `where: what` (plus how many more)."""
    errors = exc.errors()
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("literal[", "bool"))) or "arguments"
    extra = f" ({len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {err['msg'].removeprefix('Value error, ')}{extra}"


def json_size(value: _V, limit: int, what: str, max_depth: int = MAX_DEPTH) -> _V:
    """`value` unchanged, or `ValidationError` (a `ValueError`, so a pydantic validation error) when it is
    not plain JSON (NaN or infinity, a lone surrogate, nested over `max_depth`) or its JSON is over `limit`
    bytes. A JSON body may hold `NaN`: Python's parser reads it, and it would be stored as nothing valid."""
    check_json(what, value, max_depth)
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
    if size > limit:
        raise ValueError(f"{what} is {size} bytes as JSON; the limit is {limit}")
    return value


class ToolArgs(BaseModel):
    """Strict: wrong types are errors (no "5" -> 5), unknown arguments are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def agent_field() -> Any:
    """The `agent` argument every agent-scoped tool takes."""
    return Field(min_length=1, max_length=MAX_NAME, description="Agent name as configured in .alma/config.yaml.")


def optional_name(description: str) -> Any:
    """An optional name argument (an agent, a task type, a checkpoint id...): omitted, or 1..MAX_NAME characters."""
    return Field(None, min_length=1, max_length=MAX_NAME, description=description)


class WithMetadata(ToolArgs):
    metadata: dict[str, Any] | None = Field(
        None, description=f"Free-form JSON object kept with the item (<= {MAX_METADATA_BYTES} bytes)."
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return json_size(value, MAX_METADATA_BYTES, "metadata") if value is not None else None


def check_agent(alma: ALMA, agent: str | None) -> None:
    if agent is not None:
        alma.scopes.check_agent(agent)


def slice_output(found: Any, max_tokens: int | None) -> Output:
    memories = {t: [m.to_dict() for m in found.of_type(t)] for t in MEMORY_TYPES}
    prompt = found.to_prompt(max_tokens=max_tokens)
    data = {"query": found.query, "agent": found.agent, "total": len(found), "prompt": prompt, "memories": memories}
    return data, prompt or "(no memories for this task)"


# ---- specs ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Hints:
    """MCP tool annotations: hints for clients deciding what needs a confirmation."""

    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False


READ = Hints(read_only=True, idempotent=True)
WRITE = Hints()
DESTROY = Hints(destructive=True)


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, what an LLM reads about it, its input model, its handler and hints."""

    name: str
    title: str
    description: str
    args: type[ToolArgs]
    handler: Callable[[ALMA, Any], Output]
    hints: Hints
