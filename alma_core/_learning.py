"""The learning protocol: how outcomes become heuristics and anti-patterns.

`ALMA.learn()` calls `prepare()` outside the write transaction (embedding work) and `apply()` inside
it, so evidence updates commit atomically with the outcome. Write transactions are serialized across
processes, so the read-modify-write of the evidence below never loses a count.

Evidence lives in the record space, one record per (agent, task_type, strategy) in namespace
`learn/<agent>/<task_type>`: metadata holds the counts, the decayed counts, recent errors and the ids
of the heuristic / anti-pattern it backs; the value is the strategy's float32 embedding. A strategy
matches an existing record when their normalised forms are equal or their embeddings' cosine is at
least `LearningConfig.strategy_similarity`, so paraphrases update one heuristic.

Confidence (a Beta(1, 1) posterior mean over exponentially decayed evidence):
    ws <- ws * d + [success],  wf <- wf * d + [failure]      (d = LearningConfig.evidence_decay)
    confidence = (ws + 1) / (ws + wf + 2)
Ranking uses a lower bound, so one lucky success never outranks a long record:
    success_lcb = max(0, mean - z * sd) of Beta(ws + 1, wf + 1)     (z = LearningConfig.confidence_z)
Demotion: a heuristic is retired (not retrieved) while its confidence is below `retire_below_confidence`
or while its last `recent_window` outcomes fail at a rate >= `demote_failure_rate`; it comes back when
the evidence recovers.
Anti-patterns form from a failing strategy, and from one error that recurs across different strategies
of a task type (see `_error_anti_pattern`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._batching import BufferedTransaction, DeferredTransaction
from ._checks import as_utc, build_model, check_memory, check_optional_text, check_text, parse_success
from ._errors import ValidationError
from ._evidence_cache import CachedTransaction, CacheSlot, EvidenceCache
from ._models import AntiPattern, Heuristic, Memory, Outcome, utcnow
from ._plans import After, Compute, InTransaction, Plan, arun, run
from ._text import WORD, stem
from .events import MemoryEventType
from .storage._base import FindMemories, GetRecord, ListRecords, MemoryFilter, PutMemories, PutRecord, Record
from .storage._vectors import VectorMatrix, VectorRow

if TYPE_CHECKING:
    from datetime import datetime

    from ._config import LearningConfig
    from ._context import AlmaContext
    from .storage._base import Transaction

__all__ = [
    "Learner",
    "evidence_namespace",
    "normalise_error",
    "normalise_strategy",
    "strategy_confidence",
    "success_lower_bound",
]

_STOP = frozenset({
    "a", "an", "the", "to", "of", "and", "or", "for", "in", "on", "at", "by", "with", "into", "from", "then",
    "than", "this", "that", "these", "those", "it", "its", "be", "is", "are", "was", "were", "use", "using",
    "used", "via", "please", "just", "always", "first",
})  # fmt: skip
_SUFFIXES = ("ing", "ies", "es", "ed", "s")
MAX_ERRORS = 5  # recent distinct errors an evidence record keeps
_RECENT_TEXTS = 512  # strategy and heuristic texts whose vectors a Learner remembers
_MAX_ERROR_STRATEGIES = 5
_VOLATILE = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8,}|\d{4,}")  # addresses, ids, hashes, timings


@functools.lru_cache(maxsize=4096)  # strategies repeat: one is normalised at every learn
def normalise_strategy(text: str) -> str:
    """Case, punctuation, stop words, plural/tense suffixes and word order removed: a comparison key."""
    words = {stem(w, _SUFFIXES) for w in WORD.findall(text.lower()) if w not in _STOP}
    return " ".join(sorted(words)) or text.strip().lower()


def strategy_confidence(w_success: float, w_failure: float) -> float:
    """Beta(1, 1) posterior mean of the (decayed) success and failure counts."""
    return (w_success + 1.0) / (w_success + w_failure + 2.0)


def success_lower_bound(w_success: float, w_failure: float, z: float = 1.0) -> float:
    """Mean minus `z` standard deviations of Beta(ws + 1, wf + 1), floored at 0: a success rate that
    is likely at least this high, so 1 success of 1 (0.43 at z=1) ranks below 9 of 10 (0.73)."""
    a, b = w_success + 1.0, w_failure + 1.0
    mean = a / (a + b)
    sd = (a * b / ((a + b) ** 2 * (a + b + 1.0))) ** 0.5
    return max(0.0, mean - z * sd)


def recent_failure_rate(recent: str) -> float:
    """Share of failures in a string of the latest outcomes ("1" success, "0" failure)."""
    return recent.count("0") / len(recent) if recent else 0.0


def normalise_error(text: str) -> str:
    """An error's comparison key: lower case, whitespace collapsed, volatile parts (long numbers,
    hex ids, addresses) masked, so "Timeout after 30000ms" and "Timeout after 45000ms" are one error."""
    return " ".join(_VOLATILE.sub("#", text.lower()).split())[:500]


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:24]


def evidence_namespace(agent: str, task_type: str) -> str:
    """The record namespace of an agent's evidence for one task type."""
    return f"learn/{agent}/{task_type}"


def _condition(task_type: str) -> str:
    return f"{task_type.replace('_', ' ')} tasks"


def _heuristic_text(outcome: Outcome) -> str:
    """The text of the heuristic the outcome's strategy would form (`Heuristic.text`)."""
    return f"{_condition(outcome.task_type)}: {outcome.strategy_used}"


def _memory_id(prefix: str, outcome: Outcome, key: str) -> str:
    """A derived memory's id: stable per project, agent, task type and evidence key."""
    return f"{prefix}-{_digest(outcome.project_id, outcome.agent, outcome.task_type, key)}"


@dataclass
class _Prepared:
    """Per outcome: its normalised strategy, the strategy's vector and its would-be heuristic's vector."""

    norm: str
    vector: np.ndarray
    heuristic_vector: np.ndarray

    @property
    def key(self) -> str:
        """The evidence key of the normalised strategy."""
        return _strategy_key(self.norm)


@functools.lru_cache(maxsize=4096)  # strategies repeat: a learn asks for its key two or three times
def _strategy_key(norm: str) -> str:
    return _digest(norm)


@functools.lru_cache(maxsize=4096)
def _lookup(project_id: str, memory_id: str) -> FindMemories:
    """The op that loads one memory with its vector. Ops are immutable, and a learn loads the same few
    heuristics and anti-patterns again and again: building the filter and the op each time cost more
    than answering it from the evidence cache."""
    return FindMemories(MemoryFilter(project_id=project_id, ids=(memory_id,)), with_embeddings=True)


def _assign(model: Memory, **values: Any) -> None:
    """Set fields of a memory the learner built or loaded itself, in one step: these models validate
    nothing on assignment, so pydantic's per-field `__setattr__` only did the bookkeeping of which fields
    were set, which nothing here reads (no `exclude_unset`)."""
    model.__dict__.update(values)


class _StrategyIndex:
    """The strategy vectors of each evidence namespace, in memory, so matching a new strategy is one
    matrix product instead of a scan of every evidence record.

    An index is current while the namespace's newest record `seq` is the one it has seen; records written
    since (by any process) are read newest-first until the known seq. Deleted records are caught by the
    caller, which re-reads the match and rebuilds the index when it is gone.
    """

    _PAGE = 256

    def __init__(self) -> None:
        self._indexes: dict[tuple[str, str], tuple[int, VectorMatrix]] = {}
        self._lock = threading.Lock()

    def forget(self, project_id: str, ns: str) -> None:
        with self._lock:
            self._indexes.pop((project_id, ns), None)

    def nearest(self, tx: Transaction, project_id: str, ns: str, vector: np.ndarray, threshold: float) -> str | None:
        """The key of the most similar strategy at or above `threshold`, or None."""
        newest = tx.execute(ListRecords(project_id, ns, limit=1, with_values=False))
        top = newest[0].seq if newest else 0
        with self._lock:
            seen, matrix = self._indexes.get((project_id, ns), (0, VectorMatrix(dim=len(vector))))
            if matrix.dim != len(vector):
                seen, matrix = 0, VectorMatrix(dim=len(vector))
            before: int | None = None
            while top > seen:
                page = tx.execute(ListRecords(project_id, ns, before_seq=before, limit=self._PAGE))
                for record in page:
                    if record.seq <= seen:
                        break
                    if record.value and record.metadata.get("kind") == "strategy":
                        row = np.frombuffer(record.value, dtype=np.float32)
                        if row.shape == vector.shape:
                            matrix.upsert(VectorRow(record.key, row, None, None, None))
                if len(page) < self._PAGE or page[-1].seq <= seen:
                    break
                before = page[-1].seq
            self._indexes[(project_id, ns)] = (top, matrix)
            hits = matrix.search(np.asarray(vector, dtype=np.float32), 1)
        return hits[0][0] if hits and hits[0][1] >= threshold else None


class Learner:
    """Turns outcomes into evidence, heuristics and anti-patterns (see the module docstring): the
    learning service of an `AlmaContext`."""

    def __init__(self, context: AlmaContext) -> None:
        self.context = context
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # strategy text -> vector
        self._strategy_index = _StrategyIndex()
        self._recent_owner: object = None  # the embedder those vectors came from
        self._recent_lock = threading.Lock()
        self._evidence = CacheSlot()  # what the last committed learn read and wrote (`_evidence_cache`)

    @property
    def config(self) -> LearningConfig:
        return self.context.config.learning

    # ---- the write path ---------------------------------------------------------------------------

    def outcome(
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
        metadata: dict[str, Any] | None = None,
        workflow_id: str | None = None,
    ) -> Outcome:
        """A checked `Outcome` of this project from `ALMA.learn`'s arguments (task type inferred when missing)."""
        scopes = self.context.scopes
        check_text("agent", agent)
        scopes.check_agent(agent)
        check_text("task", task)
        if not isinstance(strategy_used, str):
            raise ValidationError(f"strategy_used must be a string, got {type(strategy_used).__name__}")
        check_optional_text("task_type", task_type)
        if task_type is None:
            task_type = scopes.infer_category(agent, task)
        stamp = as_utc(timestamp)
        return build_model(
            Outcome, project_id=self.context.project_id, agent=agent, task=task, task_type=task_type,
            success=parse_success(outcome), strategy_used=strategy_used, duration_ms=duration_ms,
            error_message=error_message, feedback=feedback, created_at=stamp, updated_at=stamp,
            metadata=metadata or {}, workflow_id=workflow_id,
        )  # fmt: skip

    def plan(self, outcomes: list[Outcome]) -> Plan[list[Outcome]]:
        """Learn `outcomes` in one write transaction, as a plan (`alma_core._plans`): embed first (outside
        the write lock), store them and update the evidence, stage the events; announce them after commit."""
        ctx = self.context
        for outcome in outcomes:
            check_memory(outcome)
            ctx.check_scope(outcome)
        prepared = yield Compute(self.prepare, outcomes)  # embeds the outcomes too, in the same call
        derived, cache = yield InTransaction(self._apply_cached, outcomes, prepared)
        yield After(self._evidence.keep, cache)
        created = [*outcomes, *(m for m, new in derived if new)]
        updated = [m for m, new in derived if not new]
        yield [*ctx.staged(MemoryEventType.CREATED, created), *ctx.staged(MemoryEventType.UPDATED, updated)]
        yield After(self._announce, outcomes, created[len(outcomes) :], updated)
        return outcomes

    def _apply_cached(
        self, tx: Transaction, outcomes: Sequence[Outcome], prepared: Sequence[_Prepared | None]
    ) -> tuple[list[tuple[Memory, bool]], EvidenceCache | None]:
        """`apply` with the reads the last learn's cache answers (when the store says it is current)."""
        cache = self._evidence.take(tx)
        return self.apply(tx if cache is None else CachedTransaction(tx, cache), outcomes, prepared), cache

    def _announce(self, outcomes: list[Outcome], created: list[Memory], updated: list[Memory]) -> None:
        self.context.emit(MemoryEventType.CREATED, outcomes)
        self.context.emit(MemoryEventType.CREATED, created)
        self.context.emit(MemoryEventType.UPDATED, updated)
        self.context.index([*outcomes, *created])

    def learn(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Learn checked outcomes (see `plan`); returns them, stored."""
        return run(self.context.storage, self.plan(outcomes)) if outcomes else []

    async def alearn(self, outcomes: list[Outcome]) -> list[Outcome]:
        """The async twin of `learn`: natively async on PostgreSQL (see `alma_core._plans`)."""
        return await arun(self.context.storage, self.plan(outcomes)) if outcomes else []

    def prepare(self, outcomes: Sequence[Outcome]) -> list[_Prepared | None]:
        """Embed, in one call before the transaction opens, what learning needs: each outcome's text (set
        as its embedding when missing), its strategy and the heuristic text that would form. Strategy
        texts repeat, so each distinct text is embedded once and recent ones are remembered."""
        dim = self.context.embedder.dim
        bare = [o for o in outcomes if o.embedding is None or len(o.embedding) != dim]
        todo = [o for o in outcomes if o.strategy_used.strip()]
        reusable = [o.strategy_used for o in todo] + [_heuristic_text(o) for o in todo]
        vectors = self._texts_vectors([o.text for o in bare], reusable)
        for outcome in bare:
            outcome.embedding = vectors[outcome.text]
        return [
            _Prepared(normalise_strategy(o.strategy_used), vectors[o.strategy_used], vectors[_heuristic_text(o)])
            if o.strategy_used.strip() else None
            for o in outcomes
        ]  # fmt: skip

    def _texts_vectors(self, fresh: list[str], reusable: list[str]) -> dict[str, np.ndarray]:
        """Vectors of every text, from one embedding call over the distinct texts not remembered yet;
        `reusable` texts are remembered (an LRU of `_RECENT_TEXTS`)."""
        with self._recent_lock:
            if self._recent_owner is not self.context.embedder:
                self._recent.clear()
                self._recent_owner = self.context.embedder
            found = {t: v for t in reusable if (v := self._recent.get(t)) is not None}
        missing = list(dict.fromkeys(t for t in [*fresh, *reusable] if t not in found))
        if missing:
            found.update(zip(missing, self.context.embedder.embed_documents(missing), strict=True))
        with self._recent_lock:
            for text in dict.fromkeys(reusable):
                self._recent[text] = found[text]
                self._recent.move_to_end(text)
            while len(self._recent) > _RECENT_TEXTS:
                self._recent.popitem(last=False)
        return found

    def apply(
        self, tx: Transaction, outcomes: Sequence[Outcome], prepared: Sequence[_Prepared | None]
    ) -> list[tuple[Memory, bool]]:
        """Store the outcomes and update evidence, in the caller's transaction. Returns (memory,
        created) for each derived write.

        Writes of a batch go through a `BufferedTransaction`: each memory and evidence record is written
        once per batch, however many of its outcomes touched it. One outcome's memory writes are
        deferred to one `PutMemories` with the outcome (`DeferredTransaction`)."""
        changes: dict[str, tuple[Memory, bool]] = {}
        buffered: BufferedTransaction | DeferredTransaction
        if len(outcomes) > 1:
            tx.execute(PutMemories(list(outcomes)))
            buffered = BufferedTransaction(tx, shared=True)  # _apply_one puts back all it changes
        else:
            buffered = DeferredTransaction(tx)
            buffered.execute(PutMemories(list(outcomes)))
        for outcome, prep in zip(outcomes, prepared, strict=True):
            if prep is None:
                continue
            for memory, created in self._apply_one(buffered, outcome, prep):
                was_created = changes[memory.id][1] if memory.id in changes else created
                changes[memory.id] = (memory, was_created)
        buffered.flush()
        return list(changes.values())

    # ---- evidence ---------------------------------------------------------------------------------

    def _namespace(self, outcome: Outcome) -> str:
        return evidence_namespace(outcome.agent, outcome.task_type)

    def _match(self, tx: Transaction, outcome: Outcome, prep: _Prepared) -> Record | None:
        """The evidence record of the same strategy: equal normalised form, else the nearest embedding."""
        ns = self._namespace(outcome)
        record: Record | None = tx.execute(GetRecord(outcome.project_id, ns, prep.key))
        if record is not None and record.metadata.get("kind") == "alias":  # merged by consolidation
            record = tx.execute(GetRecord(outcome.project_id, ns, record.metadata["target"]))
        if record is not None:
            return record
        threshold = float(self.config.strategy_similarity)
        key = self._strategy_index.nearest(tx, outcome.project_id, ns, prep.vector, threshold)
        if key is None:
            return None
        found: Record | None = tx.execute(GetRecord(outcome.project_id, ns, key))
        if found is None or found.metadata.get("kind") != "strategy":  # deleted or merged meanwhile: rebuild
            self._strategy_index.forget(outcome.project_id, ns)
            key = self._strategy_index.nearest(tx, outcome.project_id, ns, prep.vector, threshold)
            found = tx.execute(GetRecord(outcome.project_id, ns, key)) if key is not None else None
        return found

    def _apply_one(self, tx: Transaction, outcome: Outcome, prep: _Prepared) -> list[tuple[Memory, bool]]:
        cfg = self.config
        record = self._match(tx, outcome, prep)
        meta: dict[str, Any] = dict(record.metadata) if record is not None else {
            "kind": "strategy", "agent": outcome.agent, "task_type": outcome.task_type,
            "strategy": outcome.strategy_used, "norm": prep.norm, "successes": 0, "failures": 0,
            "w_success": 0.0, "w_failure": 0.0, "errors": [], "heuristic_id": None, "anti_pattern_id": None,
        }  # fmt: skip
        decay = float(cfg.evidence_decay)
        meta["w_success"] = meta["w_success"] * decay + (1.0 if outcome.success else 0.0)
        meta["w_failure"] = meta["w_failure"] * decay + (0.0 if outcome.success else 1.0)
        meta["successes" if outcome.success else "failures"] += 1
        meta["recent"] = (meta.get("recent", "") + ("1" if outcome.success else "0"))[-int(cfg.recent_window) :]
        if not outcome.success and outcome.error_message:
            errors = [e for e in meta["errors"] if e != outcome.error_message.strip()]
            meta["errors"] = [*errors, outcome.error_message.strip()][-MAX_ERRORS:]
        meta["last_outcome_at"] = outcome.created_at.isoformat()
        _count_user(meta, outcome)
        key = record.key if record is not None else prep.key
        value = record.value if record is not None else prep.vector.astype(np.float32).tobytes()
        changes: list[tuple[Memory, bool]] = []
        # the heuristic and the anti-pattern read the same evidence: its confidence and demotion, once
        confidence, demoted = strategy_confidence(meta["w_success"], meta["w_failure"]), self._demoted(meta)
        heuristic = self._heuristic(tx, outcome, prep, meta, key, confidence, demoted)
        if heuristic is not None:
            changes.append(heuristic)
            meta["heuristic_id"] = heuristic[0].id
        anti = self._anti_pattern(tx, outcome, meta, key, confidence, demoted)
        if anti is not None:
            changes.append(anti)
            meta["anti_pattern_id"] = anti[0].id
        tx.execute(PutRecord(Record(outcome.project_id, self._namespace(outcome), key, value, meta)))
        if heuristic is not None and heuristic[1]:  # a new heuristic may be what older anti-patterns lacked
            changes.extend(self._refresh_alternatives(tx, outcome, key))
        if not outcome.success and outcome.error_message and outcome.error_message.strip():
            error_anti = self._error_anti_pattern(tx, outcome, key)
            if error_anti is not None:
                changes.append(error_anti)
        return changes

    def _demoted(self, meta: dict[str, Any]) -> bool:
        """A full recent window failing at least `demote_failure_rate` of the time."""
        recent = str(meta.get("recent", ""))
        full = len(recent) >= int(self.config.recent_window)
        return full and recent_failure_rate(recent) >= float(self.config.demote_failure_rate)

    def _load(self, tx: Transaction, project_id: str, memory_id: str | None) -> Memory | None:
        if not memory_id:
            return None
        found = tx.execute(_lookup(project_id, memory_id))
        return found[0] if found else None

    # ---- heuristics -------------------------------------------------------------------------------

    def _heuristic(
        self,
        tx: Transaction,
        outcome: Outcome,
        prep: _Prepared,
        meta: dict[str, Any],
        key: str,
        confidence: float,
        demoted: bool,
    ) -> tuple[Memory, bool] | None:
        existing = self._load(tx, outcome.project_id, meta.get("heuristic_id"))
        min_occ = self.context.scopes.config(outcome.agent).min_occurrences_for_heuristic
        now = utcnow()
        if existing is None:
            if meta["successes"] < min_occ or confidence < self.config.retire_below_confidence:
                return None
            heuristic = Heuristic(
                id=_memory_id("h", outcome, key),
                project_id=outcome.project_id, agent=outcome.agent, condition=_condition(outcome.task_type),
                strategy=meta["strategy"], task_type=outcome.task_type, created_at=now, updated_at=now,
                last_validated=outcome.created_at, workflow_id=outcome.workflow_id,
            )  # fmt: skip
            if meta["strategy"] == outcome.strategy_used:
                heuristic.embedding = prep.heuristic_vector
            else:  # matched a paraphrase: embed the canonical text (rare, small)
                heuristic.embedding = self.context.embedder.embed_documents([heuristic.text])[0]
            created = True
        else:
            assert isinstance(existing, Heuristic)
            heuristic, created = existing, False
            if outcome.success:
                _assign(heuristic, last_validated=max(heuristic.last_validated, outcome.created_at))
        _assign(
            heuristic, updated_at=now, success_count=meta["successes"],
            occurrence_count=meta["successes"] + meta["failures"], confidence=round(confidence, 6),
        )  # fmt: skip
        retired = confidence < self.config.retire_below_confidence or demoted
        lcb = success_lower_bound(meta["w_success"], meta["w_failure"], float(self.config.confidence_z))
        heuristic.metadata.update(
            evidence_key=key, failure_count=meta["failures"], recent_errors=list(meta["errors"]), retired=retired,
            demoted=demoted, success_lcb=round(lcb, 6),
        )  # fmt: skip
        tx.execute(PutMemories([heuristic]))
        return heuristic, created

    # ---- anti-patterns ----------------------------------------------------------------------------

    def _strategies(self, tx: Transaction, outcome: Outcome) -> list[Record]:
        """The strategy evidence records of the outcome's task type (without their vectors)."""
        ns = self._namespace(outcome)
        if isinstance(tx, BufferedTransaction):  # read only here: no copies
            records = tx.peek_records(outcome.project_id, ns)
        else:
            records = tx.execute(ListRecords(outcome.project_id, ns, with_values=False))
        return [r for r in records if r.metadata.get("kind") == "strategy"]

    def _refresh_alternatives(self, tx: Transaction, outcome: Outcome, key: str) -> list[tuple[Memory, bool]]:
        """Point the task type's other anti-patterns at the best alternative now known."""
        updated: list[tuple[Memory, bool]] = []
        strategies = self._strategies(tx, outcome)
        for record in strategies:
            if record.key == key:
                continue
            anti = self._load(tx, outcome.project_id, record.metadata.get("anti_pattern_id"))
            if not isinstance(anti, AntiPattern):
                continue
            better = _best_alternative(strategies, avoid={record.key})
            if better != anti.better_alternative:
                anti.better_alternative, anti.updated_at = better, utcnow()
                tx.execute(PutMemories([anti]))
                updated.append((anti, False))
        return updated

    def _anti_pattern(
        self, tx: Transaction, outcome: Outcome, meta: dict[str, Any], key: str, confidence: float, demoted: bool
    ) -> tuple[Memory, bool] | None:
        existing = self._load(tx, outcome.project_id, meta.get("anti_pattern_id"))
        failing = meta["failures"] >= self.config.min_failures_for_anti_pattern and (confidence < 0.5 or demoted)
        if existing is None and not failing:
            return None
        total = meta["successes"] + meta["failures"]
        why = f"failed {meta['failures']} of {total} times"
        if meta["errors"]:
            why += ": " + "; ".join(meta["errors"])
        now = utcnow()
        if existing is None:
            anti = AntiPattern(
                id=_memory_id("a", outcome, key),
                project_id=outcome.project_id, agent=outcome.agent, pattern=meta["strategy"],
                task_type=outcome.task_type, created_at=now, updated_at=now, last_seen=outcome.created_at,
                workflow_id=outcome.workflow_id,
            )  # fmt: skip
            anti.embedding = self.context.embedder.embed_documents([meta["strategy"]])[0]
            created = True
        else:
            assert isinstance(existing, AntiPattern)
            anti, created = existing, False
        _assign(
            anti, updated_at=now, occurrence_count=meta["failures"], why_bad=why,
            last_seen=anti.last_seen if outcome.success else max(anti.last_seen, outcome.created_at),
            better_alternative=_best_alternative(self._strategies(tx, outcome), avoid={key}),
            confidence=round(1.0 - confidence, 6),
        )  # fmt: skip
        anti.metadata.update(evidence_key=key, retired=not failing, success_count=meta["successes"])
        tx.execute(PutMemories([anti]))
        return anti, created

    def _error_anti_pattern(self, tx: Transaction, outcome: Outcome, strategy_key: str) -> tuple[Memory, bool] | None:
        """One error recurring across different strategies of a task type: the error itself is the
        anti-pattern (what keeps going wrong), once seen `min_failures_for_anti_pattern` times with at
        least two strategies. why_bad lists the strategies that hit it; better_alternative is the
        task type's best-performing strategy, or "" when none is known."""
        assert outcome.error_message is not None
        error = outcome.error_message.strip()
        ns, key = self._namespace(outcome), "error:" + _digest(normalise_error(error))
        record: Record | None = tx.execute(GetRecord(outcome.project_id, ns, key))
        meta: dict[str, Any] = dict(record.metadata) if record is not None else {
            "kind": "error", "error": error, "count": 0, "strategies": [], "anti_pattern_id": None,
        }  # fmt: skip
        meta["count"] += 1
        _count_user(meta, outcome)
        strategies = [s for s in meta["strategies"] if s[0] != strategy_key]
        meta["strategies"] = [*strategies, [strategy_key, outcome.strategy_used.strip()]][-_MAX_ERROR_STRATEGIES:]
        result = None
        if meta["count"] >= self.config.min_failures_for_anti_pattern and len(meta["strategies"]) >= 2:
            result = self._put_error_anti_pattern(tx, outcome, meta, key)
            meta["anti_pattern_id"] = result[0].id
        tx.execute(PutRecord(Record(outcome.project_id, ns, key, b"", meta)))
        return result

    def _put_error_anti_pattern(
        self, tx: Transaction, outcome: Outcome, meta: dict[str, Any], key: str
    ) -> tuple[Memory, bool]:
        existing = self._load(tx, outcome.project_id, meta.get("anti_pattern_id"))
        now = utcnow()
        if existing is None:
            anti = AntiPattern(
                id=_memory_id("a", outcome, key),
                project_id=outcome.project_id, agent=outcome.agent,
                pattern=f"{_condition(outcome.task_type)} failing with: {meta['error']}",
                task_type=outcome.task_type, created_at=now, updated_at=now, last_seen=outcome.created_at,
                workflow_id=outcome.workflow_id,
            )  # fmt: skip
            anti.embedding = self.context.embedder.embed_documents([anti.pattern])[0]
            created = True
        else:
            assert isinstance(existing, AntiPattern)
            anti, created = existing, False
            anti.updated_at, anti.last_seen = now, max(existing.last_seen, outcome.created_at)
        names = [name for _, name in meta["strategies"]]
        anti.occurrence_count = meta["count"]
        anti.why_bad = f"the same error recurred {meta['count']} times across strategies: " + "; ".join(names)
        avoid = {k for k, _ in meta["strategies"]}
        anti.better_alternative = _best_alternative(self._strategies(tx, outcome), avoid)
        anti.confidence = round(meta["count"] / (meta["count"] + 1.0), 6)
        anti.metadata.update(evidence_key=key, kind="recurring_error", retired=False)
        tx.execute(PutMemories([anti]))
        return anti, created


def _count_user(meta: dict[str, Any], outcome: Outcome) -> None:
    """Count the outcome's user in its evidence, so `delete_user` can remove or scrub what they built."""
    user = outcome.user_id_value
    if user is not None:
        users = dict(meta.get("users") or {})
        users[user] = users.get(user, 0) + 1
        meta["users"] = users


def _best_alternative(strategies: Sequence[Record], avoid: set[str]) -> str:
    """The best-performing strategy that has formed a heuristic (skipping the `avoid` evidence keys),
    or "" when none does better than even."""
    best, best_conf = "", 0.5
    for record in strategies:
        m = record.metadata
        if record.key in avoid or not m.get("heuristic_id"):
            continue
        conf = strategy_confidence(m["w_success"], m["w_failure"])
        if conf > best_conf:
            best, best_conf = str(m["strategy"]), conf
    return best
