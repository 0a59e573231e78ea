"""`AlmaSaver` / `AsyncAlmaSaver`: LangGraph checkpointers on ALMA's record space.

Checkpoints and writes are records of the project (see `_layout`), so they live in the same store as
the memories (one SQLite file holds both) and move to any backend that implements the record
operations. Puts and pending writes are one batch of `PutRecords` (see `_puts`); every other
method is a plan run by `_layout.run` (sync, one transaction) or `_layout.arun` (async, through
`storage.abatch`). Serialization is LangGraph's `JsonPlusSerializer` with pickle off
and the strict msgpack allow-list: loading bytes from the store never imports or runs arbitrary code.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import random
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    SerializerProtocol,
    get_checkpoint_id,
    writes_sort_key,
)

from alma_core import ALMA
from alma_core.storage import (
    BaseStorage,
    DeleteRecords,
    ListNamespaces,
    Op,
    Record,
    open_storage,
)

from ._channels import Channels, Held
from ._crypto import KeyRing, key_ring, location
from ._guards import arun_guarded, run_guarded
from ._heads import Heads
from ._history import delta_history_plan
from ._layout import (
    CHECKPOINTS,
    META,
    SPACES,
    Plan,
    arun,
    run,
    thread_prefix,
    unescape,
)
from ._lessons import RunLessons
from ._linked import get_op, get_plan, list_op, list_plan, read
from ._maintenance import (
    copy_thread_plan,
    delete_for_runs_plan,
    keep_latest_plan,
    prune_plan,
)
from ._puts import Put, guard, prepare_put, writes_ops
from ._reads import load_plan
from ._rekey import rotate_keys
from ._retention import Retention, SweepResult
from ._serde import Packer, safe_serializer

__all__ = ["AlmaSaver", "AsyncAlmaSaver", "safe_serializer"]

_REMEMBERED = 10_000  # checkpoints whose entries' places this saver knows (see `_remember`)


def _ids(config: RunnableConfig) -> tuple[str, str, str | None]:
    conf = config["configurable"]
    return str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or ""), get_checkpoint_id(config)


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


class AlmaSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on ALMA's store: `graph.compile(checkpointer=AlmaSaver(alma))`.

    Sync and async methods are both real: async ones go through the storage's `abatch`.
    """

    def __init__(
        self,
        alma: ALMA | BaseStorage | str | os.PathLike[str] | sqlite3.Connection,
        *,
        project_id: str | None = None,
        serde: SerializerProtocol | None = None,
        compress_above: int | str | None = "auto",
        lessons: RunLessons | None = None,
        ttl: float | Mapping[str, Any] | None = None,
        keep_last: int | None = None,
        fencing: bool = False,
        encryption: KeyRing | str | Mapping[str, bytes | str] | bool | None = None,
        head_cache: int = 1024,
    ) -> None:
        """`alma`: an ALMA, a storage, a SQLite path or `postgresql://` URI, or an open `sqlite3.Connection`
        (like `SqliteSaver(conn)`: the saver never closes a connection or storage it was given).
        `compress_above`: zstd-compress blobs larger than this many bytes (None: never; "auto": 4096
        when `zstandard` is installed). `lessons` (opt-in): learn an outcome from each finished run
        (see `RunLessons`). `ttl`: minutes after its last checkpoint at which a thread expires, or
        `{"default_ttl": minutes, "strategy": "delete" | "keep_latest"}`; `keep_last`: checkpoints kept
        per thread and namespace; both are applied by `sweep()` (see `_retention`). `fencing`: a put
        whose parent is no longer the thread's head raises `CheckpointConflict` (see `_guards`).
        `encryption`: AES-GCM at rest, a `KeyRing` or `"id:base64key,..."` (newest first); None reads
        `ALMA_CHECKPOINT_KEYS` when it is set; False turns it off (see `_crypto`). `head_cache`: threads
        whose latest checkpoint is kept between reads while the store did not change (0: off; see `_heads`)."""
        super().__init__(serde=serde or safe_serializer())
        self.packer = Packer(compress_above, key_ring(encryption))
        self.channels = Channels(self.packer)
        self.lessons = lessons
        self._stored: OrderedDict[tuple[str, str, str], Held | Callable[[], Held]] = OrderedDict()  # `_remember`
        self._stored_lock = threading.Lock()  # LangGraph puts from background threads while reads go on
        self.retention = Retention(self, ttl, keep_last)
        self.fencing = bool(fencing)
        if isinstance(alma, ALMA):
            self.storage: BaseStorage = alma.storage
            self.project_id: str = project_id or alma.project_id
        else:
            self.storage = open_storage(alma)
            self.project_id = project_id or "default"
        self.heads = Heads(0 if "async" in self.storage.capabilities else head_cache)  # (native async: no token)

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str | os.PathLike[str], *, project_id: str = "default", **options: Any
    ) -> Iterator[AlmaSaver]:
        """A saver on an ALMA store, closed on exit: a SQLite path (or ":memory:") or a `postgresql://`
        URI, like LangGraph's `PostgresSaver.from_conn_string`. No embedder is loaded. `options` go to the
        constructor (`ttl`, `keep_last`, `fencing`, `encryption`, ...)."""
        storage = open_storage(conn_string)
        try:
            yield cls(storage, project_id=project_id, **options)
        finally:
            storage.close()

    def setup(self) -> None:
        """Create the store's schema if needed. Idempotent."""
        self.storage.setup()

    # ---- plans --------------------------------------------------------------------------------

    def _stored_put(self, put: Put) -> None:
        """After the put committed: its list versions become delta bases, its entries' places known."""
        self.channels.learn(put.learned)
        thread_id, ns, checkpoint_id, _ = put.where
        self._remember(thread_id, ns, checkpoint_id, put.held)

    def _remember(self, thread_id: str, ns: str, checkpoint_id: str, held: Held | Callable[[], Held]) -> None:
        """Where the entries a checkpoint needs live (see `_channels.Held`): a put on top of it points there.
        A callable computes it when first asked for (a read remembers its newest checkpoint so)."""
        with self._stored_lock:
            self._stored[(thread_id, ns, checkpoint_id)] = held
            if len(self._stored) > _REMEMBERED:
                self._stored.popitem(last=False)

    def _located(self, thread_id: str, ns: str, checkpoint_id: str | None) -> Held | None:
        """What `_remember` holds of a checkpoint (None: nothing)."""
        if checkpoint_id is None:
            return None
        key = (thread_id, ns, checkpoint_id)
        with self._stored_lock:
            kept = self._stored.get(key)
        if not callable(kept):
            return kept
        held = kept()
        with self._stored_lock:
            if self._stored.get(key) is kept:
                self._stored[key] = held
        return held

    def _forget(self, *thread_ids: str) -> None:
        """Entries of the threads may have moved or gone: remember nothing of them (one pass for all)."""
        self.channels.forget(*thread_ids)
        gone = set(thread_ids)
        with self._stored_lock:
            for key in [k for k in self._stored if k[0] in gone]:
                del self._stored[key]

    def _load_plan(
        self,
        records: Sequence[Record],
        extra: Sequence[Op] = (),
        have: Mapping[tuple[str, str], Record] | None = None,
    ) -> Plan[tuple[list[Checkpoint], list[Any]]]:
        """The checkpoints of `records` with their channel values (see `_reads`); `extra` ops run in the
        first step; `have`: records read with them (`_linked`: the rows they point to)."""
        return load_plan(self, records, extra, have)

    def _tuple(self, record: Record, checkpoint: Checkpoint, writes: Sequence[Record]) -> CheckpointTuple:
        info = record.metadata[META]
        thread_id, ns, parent = info["thread_id"], info["ns"], info["parent"]
        metadata = {k: v for k, v in record.metadata.items() if k != META}
        return CheckpointTuple(
            config=_config(thread_id, ns, record.key),
            checkpoint=checkpoint,
            metadata=metadata,  # type: ignore[arg-type]
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=self._pending(writes),
        )

    def _pending(self, writes: Sequence[Record]) -> list[PendingWrite]:
        if not writes:
            return []

        def order(w: Record) -> tuple[str, str, int]:
            return writes_sort_key(w.metadata.get("path", ""), w.metadata["task_id"], w.metadata["idx"])

        return [
            (w.metadata["task_id"], w.metadata["channel"], self._load(w.metadata["type"], w))
            for w in sorted(writes, key=order)
        ]

    def _load(self, type_: str, record: Record) -> Any:
        """A stored blob's value, opened for the record it was read from (see `_crypto`)."""
        where = location(record.project_id, record.namespace, record.key)
        return self.packer.loads(self.serde, type_, record.value, where)

    def _moved(self, r: Record, namespace: str, meta: dict[str, Any], type_: str) -> Record:
        """`r` copied to `namespace`: an encrypted blob is re-sealed for its new place."""
        value = r.value
        if self.packer.cipher is not None:
            plain = self.packer.unseal(type_, value, location(r.project_id, r.namespace, r.key))
            value = self.packer.seal(type_, plain, location(r.project_id, namespace, r.key))
        return Record(r.project_id, namespace, r.key, value, meta)

    def _delete_thread_plan(self, *thread_ids: str) -> Plan[None]:
        self._forget(*thread_ids)
        yield [
            DeleteRecords(self.project_id, thread_prefix(space, t), prefix=True) for t in thread_ids for space in SPACES
        ]
        return None

    def _delete_for_runs_plan(self, run_ids: Sequence[str]) -> Plan[None]:
        return delete_for_runs_plan(self, run_ids)

    def _copy_thread_plan(self, source: str, target: str) -> Plan[None]:
        return copy_thread_plan(self, source, target)

    def _prune_plan(self, thread_ids: Sequence[str], strategy: str) -> Plan[None]:
        return prune_plan(self, thread_ids, strategy)

    def _keep_latest_plan(self, thread_id: str, keep: int = 1) -> Plan[None]:
        """See `_maintenance.keep_latest_plan` (also used by the sweeper)."""
        return keep_latest_plan(self, thread_id, keep)

    # ---- sync API ------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint of `config` (the latest of its thread and namespace without a checkpoint_id)."""
        if get_checkpoint_id(config):
            return self._read_one(config)
        key = _ids(config)[:2]
        version = self.heads.version(self)  # taken before the read (see `_heads`)
        found = None if version is None else self.heads.get(key, version)
        if found is None:
            found = self._read_one(config)
            if found is not None and version is not None:
                self.heads.put(key, version, found)
        return found

    def _read_one(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = read(self, get_op(self, config), lambda: get_plan(self, config))
        return found[0] if found else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, filtered by thread / namespace, metadata equality, `before`, `limit`."""
        op = list_op(config, filter, before, limit, self.project_id)
        yield from read(self, op, lambda: list_plan(self, op))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and its new channel versions in one transaction (see `_puts`)."""
        put = prepare_put(self, config, checkpoint, metadata, new_versions)
        if put.guarded:
            run_guarded(self.storage, guard(self, put), put.ops)
        else:
            self.storage.batch(put.ops)
        saved = put.saved
        self._stored_put(put)
        if self.lessons is not None:
            self.lessons.on_put(saved, checkpoint, metadata)
        return saved

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Store a task's pending writes for the checkpoint of `config` (one blind batch, see `_puts`)."""
        if ops := writes_ops(self, config, writes, task_id, task_path):
            self.storage.batch(ops)
        if self.lessons is not None:
            self.lessons.on_writes(self, config, writes)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread, in all namespaces."""
        run(self.storage, self._delete_thread_plan(str(thread_id)), write=True)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) created by these runs."""
        run(self.storage, self._delete_for_runs_plan(run_ids), write=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread (the whole parent chain) to another thread."""
        run(self.storage, self._copy_thread_plan(str(source_thread_id), str(target_thread_id)), write=True)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`"keep_latest"` (DeltaChannel-safe, see `_keep_latest_plan`) or `"delete"`, per thread."""
        run(self.storage, self._prune_plan(thread_ids, strategy), write=True)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Each channel's writes along the parent chain down to its seed, in a few queries (see `_history`)."""
        return run(self.storage, delta_history_plan(self, config, channels), write=False)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await arun(self.storage, delta_history_plan(self, config, channels))

    def sweep(self, *, now: float | None = None) -> SweepResult:
        """Delete the threads whose TTL has passed and cut threads to `keep_last` checkpoints; safe
        from several processes at once. Returns the counts this call removed (see `_retention`)."""
        return self.retention.sweep(now)

    async def asweep(self, *, now: float | None = None) -> SweepResult:
        return await self.retention.asweep(now)

    def rotate_keys(self) -> int:
        """Re-encrypt every blob under the key ring's newest key (rows written in plaintext before
        encryption was on included); returns how many it rewrote. See `_rekey`."""
        return rotate_keys(self)

    def set_ttl(self, thread_id: str, ttl: float | Mapping[str, Any] | None) -> None:
        """Give one thread its own TTL in minutes (or `{"ttl": minutes, "strategy": ...}`); None removes
        it. A run's config can do the same: `{"configurable": {"thread_id": ..., "ttl": 60}}`."""
        self.retention.set_ttl(str(thread_id), ttl)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Monotonic string versions, like LangGraph's own savers."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    def thread_ids(self) -> builtins.list[str]:
        """Every thread id with checkpoints in this saver's project, sorted."""
        spaces = self.storage.execute(ListNamespaces(self.project_id, CHECKPOINTS))
        return sorted({unescape(ns[len(CHECKPOINTS) :].split("/")[0]) for ns in spaces})

    # ---- async API -----------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """`get_tuple` on a worker thread on a store without a native async driver (SQLite: one
        hand-off, as `arun` takes there; the head cache and the lean read with it, see `_heads` and
        `_linked.read`), else the plan on the store's async driver."""
        if self.heads.size > 0 or "async" not in self.storage.capabilities:
            return await asyncio.to_thread(self.get_tuple, config)
        found = await arun(self.storage, get_plan(self, config))
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        op = list_op(config, filter, before, limit, self.project_id)
        if "async" in self.storage.capabilities:
            listed = await arun(self.storage, list_plan(self, op))
        else:  # one worker-thread hand-off for the lean read (and its fallback in one read transaction)
            listed = await asyncio.to_thread(read, self, op, lambda: list_plan(self, op))
        for found in listed:
            yield found

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        put = prepare_put(self, config, checkpoint, metadata, new_versions)
        if put.guarded:
            await arun_guarded(self.storage, guard(self, put), put.ops)
        else:
            await self.storage.abatch(put.ops)
        saved = put.saved
        self._stored_put(put)
        if self.lessons is not None:
            await self.lessons.aon_put(saved, checkpoint, metadata)
        return saved

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if ops := writes_ops(self, config, writes, task_id, task_path):
            await self.storage.abatch(ops)
        if self.lessons is not None:
            await self.lessons.aon_writes(self, config, writes)

    async def adelete_thread(self, thread_id: str) -> None:
        await arun(self.storage, self._delete_thread_plan(str(thread_id)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await arun(self.storage, self._delete_for_runs_plan(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await arun(self.storage, self._copy_thread_plan(str(source_thread_id), str(target_thread_id)))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await arun(self.storage, self._prune_plan(thread_ids, strategy))


class AsyncAlmaSaver(AlmaSaver):
    """`AlmaSaver` with an async `from_conn_string` and `setup`, for `async with` code (like
    `AsyncSqliteSaver`; its sync methods work too)."""

    async def setup(self) -> None:  # type: ignore[override]
        """Create the store's schema if needed (awaitable, like `AsyncSqliteSaver.setup`). Idempotent."""
        await asyncio.to_thread(self.storage.setup)

    @classmethod
    @asynccontextmanager
    async def from_conn_string(  # type: ignore[override]
        cls, conn_string: str | os.PathLike[str], *, project_id: str = "default", **options: Any
    ) -> AsyncIterator[AsyncAlmaSaver]:
        """Like `AlmaSaver.from_conn_string`; a store with an async pool (PostgreSQL) closes it too."""
        storage = open_storage(conn_string)
        try:
            yield cls(storage, project_id=project_id, **options)
        finally:
            aclose = getattr(storage, "aclose", None)
            if aclose is not None:
                await aclose()
            else:
                storage.close()
