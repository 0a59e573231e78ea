"""`ALMA`: the facade agents use. `retrieve()` before a task, `learn()` after it.

The facade wires the services (`Retriever`, `Learner`, `Forgetting`, the workflow API) from one
`AlmaContext` and delegates to them. Memory writes go through `_store()` or the learner: validate, check
scope, embed, write in one transaction with the events staged for the outboxes, then emit them. The hot
calls are plans (`alma_core._plans`), so their async twins are natively async on PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _workflow_api
from ._async import planned, to_thread, twin
from ._errors import ConfigError, EmbeddingMismatch, NotFound, StorageError, ValidationError
from ._lazy import bind
from ._workflow_api import WorkflowAPI

if TYPE_CHECKING:  # bound at the first ALMA(): `from alma_core import ALMA` loads no pydantic or numpy
    from ._deferred import *  # noqa: F403
    from ._plans import Plan

__all__ = ["ALMA", "PROJECT_AGENT"]

PROJECT_AGENT = "*"  # owner of project-wide memories (e.g. preferences added without an agent)


def _bind() -> None:
    bind(globals(), vars(_workflow_api))


class ALMA(WorkflowAPI):
    """Persistent, scoped, learning memory for a project's agents."""

    def __init__(
        self,
        project_id: str | None = None,
        agents: Mapping[str, AgentConfig | Mapping[str, Any]] | None = None,
        storage: BaseStorage | str | os.PathLike[str] | None = None,
        embedder: Embedder | str | Any | None = None,
        *,
        config: AlmaConfig | None = None,
        emitter: EventEmitter | None = None,
        reindex: bool | Callable[[int, int], Any] = False,
        graph: Any = None,
    ) -> None:
        """`reindex`: when the store was built with another embedder, re-embed every memory now instead of
        raising `EmbeddingMismatch` (pass a `(done, total)` callable to follow progress). `graph`: graph
        memory (True, "memory", "kuzu", a `BackendGraphStore` or `GraphIndex`; default: the config's
        `graph:` section, off unless set), fed from every write (docs/graph.md)."""
        _bind()
        config = config or AlmaConfig()
        updates: dict[str, Any] = {}
        if project_id is not None:
            updates["project_id"] = project_id
        if agents is not None:
            updates["agents"] = {k: v if isinstance(v, AgentConfig) else dict(v) for k, v in agents.items()}
        if updates:
            try:
                config = AlmaConfig.model_validate({**config.model_dump(), **updates})
            except _PydanticError as exc:
                where, msg = first_error(exc)
                raise ConfigError(f"ALMA({where}): {msg}") from None
            config.check_agents("ALMA(agents=...)")
        self.config = config
        self.project_id = config.project_id
        self.scopes = ScopePolicy(config.agents)
        self.embedder: Embedder = make_embedder(
            embedder if embedder is not None else config.embedding_provider, config.embedding_dim
        )
        self.storage: BaseStorage = open_storage(storage if storage is not None else config)
        self.events = emitter or get_emitter()
        self.context = AlmaContext(self.project_id, self.storage, self.embedder, self.scopes, self.events, config)
        mismatch = self._check_embedder(raise_on_mismatch=not reindex)
        self.retriever = Retriever.from_context(self.context)
        self._cache: RetrievalCache[MemorySlice] = RetrievalCache(
            config.retrieval.cache_size, config.retrieval.cache_ttl_seconds, copy_slice, freeze_slice
        )
        self.learner = Learner(self.context)
        self.forgetting = Forgetting(self.context)
        self.graph: Any = None  # a graph.GraphIndex when graph memory is on
        if graph not in (None, False) or config.graph.backend != "none":
            from .graph._index import open_graph

            self.graph = self.context.graph = open_graph(graph, config, storage)
            self.retriever.graph_weight = config.graph.weight
        self.reindexed: int | None = None  # how many memories construction re-embedded, if it had to
        if mismatch:
            self.reindexed = self.reindex(progress=reindex if callable(reindex) else None)
        self.webhooks: Any = None  # a started WebhookManager when the config lists `webhooks:`
        if config.webhooks:
            from .webhooks import from_config

            self.webhooks = from_config(self)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] = ".alma/config.yaml", **overrides: Any) -> ALMA:
        """Build from a YAML config (relative `storage_dir` resolves against the working directory)."""
        _bind()
        return cls(config=load_config(path), **overrides)

    # ---- plumbing ---------------------------------------------------------------------------------

    def _embedder_record(self) -> Record:
        """What the store records about the embedder that built its vectors."""
        wanted = {"name": self.embedder.name, "dim": int(self.embedder.dim)}
        return Record(SYSTEM_PROJECT, "meta", "embedder", metadata=wanted)

    def _check_embedder(self, raise_on_mismatch: bool = True) -> bool:
        """The store remembers which embedder built its vectors; another one cannot search them.

        Returns whether they differ (only when not raising)."""
        mine = self._embedder_record()
        wanted = mine.metadata
        record, known = self.storage.batch(
            [GetRecord(SYSTEM_PROJECT, "meta", "embedder"), GetRecord(SYSTEM_PROJECT, "projects", self.project_id)]
        )
        if known is None:  # the project registry lets `reindex` find every project of the store
            self.storage.execute(PutRecord(Record(SYSTEM_PROJECT, "projects", self.project_id)))
        if record is None:
            self.storage.execute(PutRecord(mine))
            return False
        if record.metadata == wanted:
            return False
        if not raise_on_mismatch:
            return True
        have = record.metadata
        raise EmbeddingMismatch(
            f"the store was built with embedder {have.get('name')!r} ({have.get('dim')}-d), not "
            f"{wanted['name']!r} ({wanted['dim']}-d); rebuild its vectors with `alma reindex` "
            f"(or ALMA(..., reindex=True)), or use the original embedder"
        )

    def _store(self, memories: Sequence[Memory], records: Sequence[Record] = ()) -> list[Memory]:
        """The one write path for memories: check all, embed, write in one transaction (with `records`,
        for import), emit."""
        return run(self.storage, self._store_plan(memories, records))

    def _store_plan(self, memories: Sequence[Memory], records: Sequence[Record] = ()) -> Plan[list[Memory]]:
        ctx = self.context
        for memory in memories:
            if memory.project_id != self.project_id:
                raise ValidationError(f"memory {memory.id} belongs to project {memory.project_id!r}")
            check_memory(memory)
            ctx.check_scope(memory)
        yield Compute(ctx.embed, memories)
        yield [PutMemories(list(memories)), *map(PutRecord, records), *ctx.staged(MemoryEventType.CREATED, memories)]
        yield After(ctx.emit, MemoryEventType.CREATED, memories)
        yield After(ctx.index, memories)
        return list(memories)

    # ---- retrieve ---------------------------------------------------------------------------------

    @planned
    def retrieve(
        self,
        task: str,
        agent: str,
        top_k: int = 5,
        user_id: str | None = None,
        include_shared: bool = True,
        memory_types: Iterable[MemoryType | str] | None = None,
        *,
        mode: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        use_graph: bool = False,
    ) -> Plan[MemorySlice]:
        """The memories that matter for `task`, up to `top_k` per type, ranked (see `RetrievalConfig`);
        `since` / `until` keep those created in that window (`since` inclusive, `until` exclusive).
        `MemorySlice.ranked()` gives them as one list, best first. `use_graph`: also follow graph memory
        from the task's entities (docs/graph.md); the score breakdown then shows the `graph` factor."""
        check_text("task", task)
        check_text("agent", agent)
        check_optional_text("user_id", user_id)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 1000:
            raise ValidationError(f"top_k must be an integer in 1..1000, got {top_k!r}")
        if mode is not None and mode not in ("hybrid", "dense", "lexical"):
            raise ValidationError(f"mode must be hybrid, dense or lexical, got {mode!r}")
        after = None if since is None else as_utc(since)
        before = None if until is None else as_utc(until)
        types = list(check_memory_types(memory_types, tuple(MemoryType)))
        agent = self.scopes.check_agent(check_text("agent", agent))
        readers = [*self.scopes.readable(agent, include_shared), PROJECT_AGENT]
        key = ((yield Generation(self.project_id)), task, agent, tuple(readers), top_k, user_id,
               tuple(types), mode or self.config.retrieval.mode, after, before, use_graph)  # fmt: skip
        cached = self._cache.get(key)
        if cached is not None:
            yield After(self.context.emit, MemoryEventType.ACCESSED, cached, agent=agent)
            return cached
        base = self.context.filter(agents=tuple(readers), user_id=user_id, created_after=after, created_before=before)
        graph = (yield Compute(self._graph_scores, task, readers)) if use_graph else None
        vector = yield Compute(self.retriever.query_vector, task, mode)
        result = yield from self.retriever.plan(
            base, task, top_k, types, agent, mode, vector=vector, user_types=(MemoryType.PREFERENCE,), graph=graph
        )
        self._cache.put(key, result)
        yield After(self.context.emit, MemoryEventType.ACCESSED, result, agent=agent)
        return result

    def _graph_scores(self, task: str, readers: Sequence[str]) -> dict[str, float]:
        """Memory id -> graph score for the memories the task's entities lead to (within `readers`)."""
        if self.graph is None:
            raise ValidationError("use_graph=True needs graph memory: set alma.graph.backend or ALMA(graph=...)")
        return self.graph.expand(task, readers)  # type: ignore[no-any-return]

    # ---- learn ------------------------------------------------------------------------------------

    @planned
    def learn(
        self,
        agent: str,
        task: str,
        outcome: bool | str,
        strategy_used: str = "",
        task_type: str | None = None,
        duration_ms: int | None = None,
        error_message: str | None = None,
        feedback: str | None = None,
        timestamp: datetime | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> Plan[Outcome]:
        """Record a task's outcome and update the evidence behind its strategy.

        `outcome` is a bool or "success" / "failure". Without `task_type`, it is inferred from the task
        text among the agent's `can_learn` categories ("general" when none matches).
        """
        learned = yield from self.learner.plan([self.learner.outcome(
            agent, task, outcome, strategy_used, task_type, duration_ms, error_message, feedback, timestamp, metadata
        )])  # fmt: skip
        return learned[0]

    @planned
    def learn_many(self, items: Iterable[Mapping[str, Any]]) -> Plan[list[Outcome]]:
        """Learn many outcomes (each a mapping of `learn`'s arguments) in one transaction: all or none."""
        outcomes = []
        for i, item in enumerate(items):
            try:
                outcomes.append(self.learner.outcome(**dict(item)))
            except TypeError as exc:
                raise ValidationError(f"learn_many item {i}: {exc}") from None
        return (yield from self.learner.plan(outcomes)) if outcomes else []

    # ---- other writes -----------------------------------------------------------------------------

    @planned
    def add_user_preference(
        self,
        user_id: str,
        preference: str,
        category: str = "general",
        source: str = "explicit",
        agent: str | None = None,
        created_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Plan[UserPreference]:
        """Remember what a user wants. Without `agent` it is project-wide (every agent reads it)."""
        if agent is not None:
            self.scopes.check_agent(agent)
        stamp = as_utc(created_at)
        pref = build_model(
            UserPreference, project_id=self.project_id, agent=agent or PROJECT_AGENT, user_id=user_id,
            category=category, preference=preference, source=source, created_at=stamp, updated_at=stamp,
            metadata=metadata or {},
        )  # fmt: skip
        return (yield from self._store_plan([pref]))[0]  # type: ignore[return-value]

    add_preference = add_user_preference

    @planned
    def add_domain_knowledge(
        self,
        agent: str,
        domain: str,
        fact: str,
        source: str = "",
        created_at: datetime | None = None,
        confidence: float = 1.0,
        metadata: dict[str, Any] | None = None,
    ) -> Plan[DomainKnowledge]:
        """Remember a fact of `domain` for `agent` (scope-checked against the domain)."""
        self.scopes.check_agent(agent)
        stamp = as_utc(created_at)
        item = build_model(
            DomainKnowledge, project_id=self.project_id, agent=agent, domain=domain, fact=fact, source=source,
            created_at=stamp, updated_at=stamp, confidence=confidence, metadata=metadata or {},
        )  # fmt: skip
        return (yield from self._store_plan([item]))[0]  # type: ignore[return-value]

    add_knowledge = add_domain_knowledge

    @planned
    def add_anti_pattern(
        self,
        agent: str,
        pattern: str,
        why_bad: str = "",
        better_alternative: str = "",
        task_type: str | None = None,
        created_at: datetime | None = None,
        confidence: float = 1.0,
        metadata: dict[str, Any] | None = None,
    ) -> Plan[AntiPattern]:
        """Record what not to do, why, and what to do instead."""
        self.scopes.check_agent(agent)
        stamp = as_utc(created_at)
        item = build_model(
            AntiPattern, project_id=self.project_id, agent=agent, pattern=pattern, why_bad=why_bad,
            better_alternative=better_alternative, task_type=task_type, created_at=stamp, updated_at=stamp,
            last_seen=stamp, confidence=confidence, metadata=metadata or {},
        )  # fmt: skip
        return (yield from self._store_plan([item]))[0]  # type: ignore[return-value]

    # ---- read, delete, forget ---------------------------------------------------------------------

    @planned
    def get(self, memory_id: str) -> Plan[Memory]:
        """One memory of this project by id, or `NotFound`."""
        check_text("memory_id", memory_id)
        found = (yield [FindMemories(self.context.filter(ids=(memory_id,)))])[0]
        if not found:
            raise NotFound(f"no memory {memory_id!r} in project {self.project_id!r}")
        return found[0]  # type: ignore[no-any-return]

    def list_memories(
        self,
        agent: str | None = None,
        memory_types: Iterable[MemoryType | str] | None = None,
        limit: int | None = None,
    ) -> list[Memory]:
        """Memories of the project (or one agent), newest first."""
        types = check_memory_types(memory_types, ()) or None
        agents = (agent,) if agent else None
        return self.storage.execute(FindMemories(self.context.filter(agents=agents, types=types), limit=limit))  # type: ignore[no-any-return]

    @planned
    def delete(self, memory_id: str) -> Plan[Memory]:
        """Delete one memory; returns it. `NotFound` if it does not exist in this project."""
        ctx = self.context
        check_text("memory_id", memory_id)
        yield WRITE  # the memory read is the memory deleted
        memory = yield from self.get.__wrapped__(self, memory_id)  # type: ignore[attr-defined]
        yield [DeleteMemories(ctx.filter(ids=(memory_id,))), *ctx.staged(MemoryEventType.DELETED, [memory])]
        yield After(ctx.emit, MemoryEventType.DELETED, [memory])
        yield After(ctx.unindex, [memory])
        return memory  # type: ignore[no-any-return]

    @planned
    def forget(
        self,
        agent: str | None = None,
        older_than_days: float | None = None,
        below_confidence: float | None = None,
        max_per_agent: int | None = None,
        dry_run: bool = False,
        memory_types: Iterable[MemoryType | str] | None = None,
    ) -> Plan[list[Memory]]:
        """Delete memories matching every given criterion; returns them (`dry_run` deletes nothing).

        User preferences go only when `memory_types` names them. `max_per_agent` keeps each agent's
        newest N of each type. Emits a `deleted` event per memory (payload `reason: "forget"`).
        """
        return (yield from self.forgetting.forget(agent, older_than_days, below_confidence, max_per_agent, dry_run,
                                                  memory_types))  # fmt: skip

    @planned
    def decay_confidence(
        self, agent: str | None = None, half_life_days: float = 90.0, dry_run: bool = False
    ) -> Plan[list[Memory]]:
        """Fade the confidence of heuristics, anti-patterns and knowledge not validated for a while
        (halved every `half_life_days` idle days); returns the changed memories. Pair with
        `forget(below_confidence=...)`. Emits an `updated` event per memory (payload `reason: "decay"`)."""
        return (yield from self.forgetting.decay_confidence(agent, half_life_days, dry_run))

    def delete_user(self, user_id: str) -> int:
        """Delete everything about one user in every store: memories, tagged records (checkpoints,
        artifacts, handoffs, work items, sessions, chat histories, LangGraph threads) and the learning
        evidence built from their outcomes (see `_erasure`), and what the knowledge graph holds of them.
        Returns a `UserErasure`: the count, as an int, with its breakdown."""
        ctx = self.context

        def stage(tx: Transaction, removed: list[Memory]) -> None:
            for op in ctx.staged(MemoryEventType.DELETED, removed, reason="delete_user"):
                tx.execute(op)

        erased, gone = erase_user(self, user_id, stage=stage)
        ctx.emit(MemoryEventType.DELETED, gone, reason="delete_user")
        graph = ctx.unindex(gone, user_id)
        return (
            UserErasure(erased.memories, erased.records, erased.evidence, erased.scrubbed, graph) if graph else erased
        )

    # ---- stats, health ----------------------------------------------------------------------------

    @planned
    def stats(self, agent: str | None = None) -> Plan[MemoryStats]:
        """Counts per type (and per agent) for the project, or for one agent."""
        if agent is not None:
            self.scopes.check_agent(agent)
        counts = (yield [CountMemories(self.context.filter(agents=(agent,) if agent else None))])[0]
        stats = MemoryStats()
        for (owner, memory_type), n in counts.items():
            field = TYPE_FIELDS[memory_type]
            setattr(stats, field, getattr(stats, field) + n)
            stats.by_agent[owner] = stats.by_agent.get(owner, 0) + n
            stats.total += n
        stats.cache_hit_ratio = self._cache.hit_ratio
        return stats

    def health(self) -> dict[str, Any]:
        """Whether the store answers, and what it is."""
        info: dict[str, Any] = {
            "project_id": self.project_id,
            "storage": self.storage.name,
            "embedder": {"name": self.embedder.name, "dim": self.embedder.dim},
            "agents": sorted(self.config.agents),
        }
        try:
            info["memories"] = self.stats().total
            info["status"] = "ok"
            info["unreadable_rows_skipped"] = self.storage.bad_rows.count
        except StorageError as exc:
            info["status"], info["error"] = "error", str(exc)
        return info

    # ---- export / import / reindex ------------------------------------------------------------------

    def export(self, path: str | os.PathLike[str], *, with_embeddings: bool = False) -> int:
        """Write every memory and record (learning evidence, workflows) of the project as JSON lines,
        safely (see `_transfer`); returns how many memories."""
        return export_project(self, path, with_embeddings)

    def import_(self, path: str | os.PathLike[str]) -> int:
        """Load a JSONL export into this project (scopes apply): all lines or none, idempotent. Returns
        how many distinct memories it stored."""
        return import_project(self, path)

    def repair(self) -> dict[str, Any]:
        """Move the project's unreadable memories (which reads skip) to the `alma/quarantine` records;
        returns their ids (see `_repair`)."""
        return repair_project(self)

    def reindex(self, progress: Callable[[int, int], Any] | None = None, batch_size: int = 256) -> int:
        """Re-embed every memory of every project with the current embedder, then record it as the
        store's embedder. Returns how many memories were re-embedded."""
        projects = self.storage.execute(ListRecords(SYSTEM_PROJECT, "projects", with_values=False))
        project_ids = {r.key for r in projects} | {self.project_id}
        done = 0
        for project_id in sorted(project_ids):
            memories = self.storage.execute(FindMemories(MemoryFilter(project_id=project_id)))
            for start in range(0, len(memories), batch_size):
                chunk = memories[start : start + batch_size]
                for memory in chunk:
                    memory.embedding = None
                self.context.embed(chunk)
                self.storage.execute(PutMemories(chunk))
                done += len(chunk)
                if progress:
                    progress(done, len(memories))
        self.storage.execute(PutRecord(self._embedder_record()))
        return done

    # ---- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()
        try:
            if self.graph is not None:
                self.graph.close()  # FlushTimeout when its extractor hangs: the memory store closes anyway
        finally:
            self.storage.close()

    def __enter__(self) -> ALMA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ALMA(project_id={self.project_id!r}, storage={self.storage.name!r}, embedder={self.embedder.name!r})"

    # ---- async twins --------------------------------------------------------------------------------

    aretrieve = twin(retrieve)
    alearn = twin(learn)
    alearn_many = twin(learn_many)
    aadd_user_preference = twin(add_user_preference)
    aadd_preference = aadd_user_preference
    aadd_domain_knowledge = twin(add_domain_knowledge)
    aadd_knowledge = aadd_domain_knowledge
    aadd_anti_pattern = twin(add_anti_pattern)
    aget = twin(get)
    adelete = twin(delete)
    aforget = twin(forget)
    adecay_confidence = twin(decay_confidence)
    adelete_user = to_thread(delete_user)
    arepair = to_thread(repair)
    astats = twin(stats)
    ahealth = to_thread(health)
