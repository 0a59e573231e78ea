"""Configuration: `.alma/config.yaml` (the seed's format under a top-level `alma:` key), validated once.

`${VAR}` and `${VAR:-default}` are expanded in every string. Any problem raises `ConfigError` naming the
file, the key path and what to do.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as _PydanticError

from ._errors import ConfigError

__all__ = [
    "AgentConfig",
    "AlmaConfig",
    "ChromaConfig",
    "GraphConfig",
    "LearningConfig",
    "PostgresConfig",
    "RetrievalConfig",
    "load_config",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[A-Za-z0-9_.:@/-]{1,200}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def agent_key(name: str) -> str:
    """The canonical form of an agent name: agent names are case-insensitive (`Helena` is `helena`)."""
    return name.strip().lower()


class AgentConfig(_Strict):
    """One agent: what it may learn and whom it shares with."""

    domain: str = Field("general", description="The agent's domain (coding, research, ...).")
    description: str = ""
    can_learn: list[str] = Field(default_factory=list, description="Categories it may learn; empty = any.")
    cannot_learn: list[str] = Field(default_factory=list, description="Categories it may never learn.")
    min_occurrences_for_heuristic: int = Field(3, ge=1, le=10_000)
    share_with: list[str] = Field(default_factory=list, description="Agents that may read its memories.")
    inherit_from: list[str] = Field(default_factory=list, description="Agents whose memories it reads.")

    @field_validator("share_with", "inherit_from")
    @classmethod
    def _canonical(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(agent_key(n) for n in names))


_MemoryTypeName = Literal["outcome", "heuristic", "anti_pattern", "preference", "knowledge"]
_TIMELESS: tuple[_MemoryTypeName, ...] = ("knowledge", "preference")


class RetrievalConfig(_Strict):
    """How `retrieve()` ranks (see `alma_core._retrieval`). Relevance first: score = relevance * quality *
    lesson, where quality = (w_relevance + w_recency*recency + w_success*success + w_confidence*confidence)
    / (sum of the weights) is a bounded boost, each factor in [0, 1]."""

    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    fusion: Literal["weighted", "rrf", "gated"] = Field(
        "weighted",
        description="Hybrid fusion: calibrated scores combined by dense_weight (a confident lexical match keeps"
        " its lexical score), or reciprocal-rank fusion. `gated` is the old name of `weighted`.",
    )
    dense_weight: float = Field(0.6, ge=0, le=1, description="Dense share of weighted fusion (lexical gets the rest).")
    w_relevance: float = Field(0.75, ge=0, description="The share of quality no other factor can take away.")
    w_recency: float = Field(0.1, ge=0)
    w_success: float = Field(0.1, ge=0)
    w_confidence: float = Field(0.05, ge=0)
    recency_half_life_days: float = Field(
        30.0, gt=0, description="Days after which a memory's recency factor halves (not for timeless types)."
    )
    timeless_types: list[_MemoryTypeName] = Field(
        default_factory=lambda: list(_TIMELESS),
        description="Memory types whose recency factor is always 1: facts and preferences do not age.",
    )
    lesson_boost: float = Field(
        0.5, ge=0, le=5, description="Extra worth of a well-evidenced heuristic or anti-pattern over one outcome."
    )
    max_error_warnings: int = Field(2, ge=0, le=1000, description="Recurring-error warnings kept per retrieve.")
    min_relevance: float = Field(0.0, ge=0, le=1)
    diversity: float = Field(0.0, ge=0, le=1, description="MMR trade-off; 0 disables diversity.")
    candidates: int = Field(
        30, ge=1, le=10_000, description="Candidates per type and search method before ranking (at least top_k)."
    )
    rerank_candidates: int = Field(30, ge=1, le=1000, description="Candidates a configured reranker re-scores.")
    cache_size: int = Field(512, ge=0)
    cache_ttl_seconds: float = Field(300.0, ge=0)


class LearningConfig(_Strict):
    """How outcomes turn into heuristics and anti-patterns."""

    min_failures_for_anti_pattern: int = Field(2, ge=1)
    strategy_similarity: float = Field(0.85, gt=0, le=1, description="Cosine above which strategies match.")
    retire_below_confidence: float = Field(
        0.2, ge=0, le=1, description="A heuristic whose confidence falls below this is retired (not retrieved)."
    )
    evidence_decay: float = Field(
        0.9, gt=0, le=1, description="Weight older evidence keeps at each new outcome of the same strategy."
    )
    confidence_z: float = Field(
        1.0, ge=0, le=5, description="Standard deviations below the Beta mean for the ranking's success bound."
    )
    recent_window: int = Field(5, ge=1, le=1000, description="Latest outcomes of a strategy used for demotion.")
    demote_failure_rate: float = Field(
        0.6, gt=0, le=1, description="A full recent window failing at least this often retires the heuristic."
    )


class PostgresConfig(_Strict):
    """PostgreSQL + pgvector (`storage: postgres`): a `uri`, or host/port/database/user/password."""

    uri: str | None = Field(None, description="postgresql://user:pass@host:port/db; overrides the fields below.")
    host: str = Field("localhost", description="Host name, or a unix-socket directory (starts with /).")
    port: int = Field(5432, ge=1, le=65535)
    database: str = "alma"
    user: str = "postgres"
    password: str | None = Field(None, description="Use ${ENV_VAR} rather than a literal password.")
    schema_name: str = Field(
        "public", alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", description="Schema of ALMA's tables."
    )
    vector_index_type: Literal["hnsw", "ivfflat"] = "hnsw"
    min_pool_size: int = Field(1, ge=0, le=1000)
    max_pool_size: int = Field(10, ge=1, le=1000)
    prepare_threshold: int | None = Field(
        5, ge=0, description="Runs of a statement on a connection before psycopg prepares it (0: at once; null: never)."
    )

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    def conninfo(self) -> str:
        """A libpq connection string for these settings."""
        if self.uri:
            return self.uri
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            "", host=self.host, port=self.port, dbname=self.database, user=self.user, password=self.password
        )


class ChromaConfig(_Strict):
    """Chroma (`storage: chroma`): embedded at `path` (default `<storage_dir>/chroma`), or a server.

    The seed's `persist_directory` is accepted as another name for `path`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    path: str | None = Field(
        None,
        validation_alias=AliasChoices("path", "persist_directory"),
        description="Directory of the embedded PersistentClient (seed name: persist_directory).",
    )
    host: str | None = Field(None, description="Chroma server host (client-server mode).")
    port: int = Field(8000, ge=1, le=65535)


class GraphConfig(_Strict):
    """Graph memory (`alma_core.graph`, docs/graph.md): entities and relationships extracted from memories."""

    backend: Literal["none", "memory", "kuzu"] = Field(
        "none", description="none (no graph) | memory (this process) | kuzu (embedded, extra `graph`)."
    )
    path: str | None = Field(None, description="Kuzu database directory (default: `graph/` beside the SQLite file).")
    extraction: Literal["off", "sync", "background"] = Field(
        "sync", description="When a write's entities reach the graph: in the write call, on a worker thread, never."
    )
    hops: int = Field(2, ge=1, le=3, description="How far `retrieve(use_graph=True)` walks from the query's entities.")
    weight: float = Field(0.6, ge=0, le=1, description="Weight of the graph factor in the ranking.")
    entity_types: list[str] = Field(default_factory=list, description="Domain entity types the extractor knows.")


class WebhookSettings(_Strict):
    """One receiver of `webhooks:` (the same fields as `WebhookConfig`; see docs/webhooks.md)."""

    url: str = Field(description="http(s) URL of the receiver.")
    events: list[str] | None = Field(None, description="Event types (created, updated, ...); default all writes.")
    secret: str | None = Field(None, description="Signing secret; use ${ENV_VAR}.")
    retry_count: int = Field(3, ge=0, le=20)
    retry_delay: float = Field(5.0, ge=0, le=3600)
    timeout: float = Field(10.0, gt=0, le=120)
    allow_private: bool = False


class AlmaConfig(_Strict):
    """Everything ALMA reads from `.alma/config.yaml`. Defaults work with no config at all."""

    project_id: str = Field("default", pattern=_NAME)
    storage: Literal["sqlite", "postgres", "chroma"] = "sqlite"
    storage_dir: str = ".alma"
    db_name: str = Field("alma.db", description="The SQLite file's name inside storage_dir: a name, not a path.")
    embedding_provider: Literal["local", "local-int8", "local-float32", "mock"] = "local"
    embedding_dim: int = Field(384, ge=8, le=8192)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    learning: LearningConfig = Field(default_factory=LearningConfig)
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    chroma: ChromaConfig = Field(default_factory=ChromaConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="Receivers of signed memory events (docs/webhooks.md)."
    )
    llm: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="A LangChain chat model for AutoLearner, as 'module:attribute' (an instance or a "
        "zero-argument factory); without one AutoLearner extracts offline.",
    )

    @field_validator("db_name")
    @classmethod
    def _file_name(cls, name: str) -> str:
        """A name, not a path: the store stays inside storage_dir (which is where a path belongs)."""
        if not name or name in (".", "..") or len(name) > 255 or any(c in name for c in "/\\\x00"):
            raise ValueError(f"db_name {name[:200]!r} must be a file name (no '/', '\\' or NUL; not '.' or '..')")
        return name

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, agents: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        """Agent names are case-insensitive: stored lower-case, and two differing only in case clash."""
        out: dict[str, AgentConfig] = {}
        for name, agent in agents.items():
            if not re.match(_NAME, name):
                raise ValueError(f"agent name {name!r} must be 1-200 of letters, digits and _.:@/-")
            if agent_key(name) in out:
                raise ValueError(f"agent {name!r} is defined twice (agent names are case-insensitive)")
            out[agent_key(name)] = agent
        return out

    @property
    def db_path(self) -> Path:
        return Path(self.storage_dir) / self.db_name

    def check_agents(self, source: str = "config") -> None:
        """Cross-agent rules: no self-reference, no inheritance cycle. A reference to an agent the config
        does not define is allowed with a warning (the seed's own config has them): the sharing takes
        effect once that agent is defined, and until then it is an unknown agent like any other."""
        names = set(self.agents)
        for name, agent in self.agents.items():
            for key in ("share_with", "inherit_from"):
                for other in getattr(agent, key):
                    if other not in names:
                        warnings.warn(
                            f"{source}: alma.agents.{name}.{key}: agent {other!r} is not defined; "
                            f"it cannot use ALMA until you define it under alma.agents",
                            UserWarning,
                            stacklevel=2,
                        )
                    if other == name:
                        raise ConfigError(f"{source}: alma.agents.{name}.{key}: an agent cannot list itself")
            overlap = set(agent.can_learn) & set(agent.cannot_learn)
            if overlap:
                raise ConfigError(
                    f"{source}: alma.agents.{name}: {sorted(overlap)} is in both can_learn and cannot_learn"
                )
        _check_cycles(self.agents, source)


def _check_cycles(agents: dict[str, AgentConfig], source: str) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise ConfigError(f"{source}: alma.agents: inherit_from forms a cycle ({cycle}); break it")
        state[name] = 1
        for parent in agents[name].inherit_from:
            if parent in agents:
                visit(parent, [*path, name])
        state[name] = 2

    for name in agents:
        visit(name, [])


def load_object(spec: str, where: str) -> Any:
    """The object at `module:attribute` (called if it is a class or a factory function)."""
    import importlib
    import inspect

    module_name, _, attr = spec.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot load {spec!r}: {exc}") from None
    return value() if inspect.isclass(value) or inspect.isfunction(value) else value


def _expand(value: Any, path: str, source: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{source}: {path}: environment variable {name} is not set; set it or use ${{{name}:-default}}"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", source) for i, v in enumerate(value)]
    return value


MAX_CONFIG_VALUES = 100_000  # every value of a config counted where it appears (a real config has a few hundred)


def _check_size(data: Any, source: str) -> None:
    """`ConfigError` when `data` holds more than MAX_CONFIG_VALUES values, counting a YAML alias each time it
    is used: nine anchors of nine aliases each ("billion laughs") parse to a few objects that expand to 9**9
    values, which reading the config would walk for hours. Iterative, and it stops at the limit."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            why = "each use of a YAML alias counts"
            raise ConfigError(f"{source}: more than {MAX_CONFIG_VALUES} values ({why}); not a config")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_config(data: Any, source: str = "config") -> AlmaConfig:
    """Validate a mapping (with or without the top-level `alma:` key) into an `AlmaConfig`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with a top-level 'alma:' key, got {type(data).__name__}")
    if "alma" in data:
        extra = sorted(set(data) - {"alma"})
        if extra:
            raise ConfigError(f"{source}: unknown top-level keys {extra}; everything goes under 'alma:'")
        data = data["alma"] or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: alma: expected a mapping, got {type(data).__name__}")
    _check_size(data, source)
    data = _expand(data, "alma", source)
    try:
        config = AlmaConfig.model_validate(data)
    except _PydanticError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("alma", *err["loc"]))
        hint = "remove it or check its spelling" if err["type"] == "extra_forbidden" else "fix the value"
        got = repr(err.get("input"))
        got = got if len(got) <= 200 else got[:199] + "…"  # a 10 MB project_id is not the message
        raise ConfigError(f"{source}: {where}: {err['msg']} (got {got}); {hint}") from None
    config.check_agents(source)
    return config


def load_config(path: str | os.PathLike[str]) -> AlmaConfig:
    """Read and validate a YAML config file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file; create one with `alma init`") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from None
    except RecursionError:
        raise ConfigError(f"{source}: not a config: YAML nested too deeply") from None
    try:
        return parse_config(data, source)
    except RecursionError:
        raise ConfigError(f"{source}: not a config: YAML nested too deeply") from None


STARTER_CONFIG = """\
# ALMA configuration. Every key is optional; these are the defaults unless marked "example".
alma:
  project_id: my-project          # memories of one project are never visible from another
  storage: sqlite                 # sqlite (one file) | postgres | chroma
  storage_dir: .alma              # where the SQLite file lives
  db_name: alma.db
  embedding_provider: local       # local (all-MiniLM-L6-v2, offline) | local-float32 | mock (hash embeddings)
  embedding_dim: 384

  # Agents (example). With agents configured, only these may learn. A write whose category
  # (task_type, domain or preference category) is in cannot_learn, or not in a non-empty
  # can_learn, raises ScopeViolation and stores nothing.
  agents:
    helena:
      domain: coding
      can_learn: [testing_strategies, selector_patterns]
      cannot_learn: [backend_logic]
      min_occurrences_for_heuristic: 3
      share_with: [qa_lead]       # qa_lead reads helena's memories, marked shared_from: helena
    victor:
      domain: coding
      can_learn: [api_patterns, database_queries]
      cannot_learn: [frontend_styling]
      inherit_from: [qa_lead]     # victor reads qa_lead's memories
    qa_lead:
      domain: coding

  retrieval:
    mode: hybrid                  # hybrid | dense | lexical
    w_relevance: 0.75             # score = relevance * quality: the other weights move it by at most 25%
    w_recency: 0.1
    w_success: 0.1
    w_confidence: 0.05
    recency_half_life_days: 30    # outcomes, heuristics, anti-patterns; knowledge and preferences don't age
"""
