"""A put as storage operations: one checkpoint row (format 3, see `_rows`) in one `PutRecords`.

The lean path, taken by every put that needs no read first: one operation (one statement), nothing read
back, no seq kept for the row (its uuid6 key orders it), and no work for options that are off (no
associated data is built without a cipher, no retention index without a TTL). A put that must read
before it writes (fencing, or the first checkpoint of a thread, see `_guards`) runs the same operations
inside its checks' `WriteIf`, in one write transaction (one round trip on PostgreSQL).

Small scalar values (None, bool, numbers, short strings) stay inline in the checkpoint, as in
PostgresSaver. The channels in `new_versions` become entries of the row; every other channel points to
the row that holds its version, as the parent's record said (this saver remembers what it wrote and
read). A checkpoint whose parent it does not know (another process wrote it, or a thread of format 1)
holds all of its values itself, so a thread never loses a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)

from alma_core.storage import Op, PutRecords, Record

from ._channels import Entry, Held
from ._crypto import location
from ._guards import Guard, needs_guard
from ._layout import META, blob_key, blobs_ns, checkpoint_ns, escape, writes_ns
from ._rows import ROWS, pack_row, pointing

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["Put", "guard", "prepare_put", "writes_ops"]

_SMALL = 256  # characters or bytes: a string up to this long is kept inline


@dataclass(slots=True)
class Put:
    """A prepared put: its operations, the config it returns, what to remember once it committed, and
    whether it must read first (then `guard` checks it)."""

    ops: list[Op]
    saved: RunnableConfig
    learned: list[Any]
    guarded: bool
    where: tuple[str, str, str, str | None]  # thread_id, checkpoint_ns, checkpoint id, parent id
    held: Held  # where each entry the checkpoint needs lives (see `_channels.Held`)


_SCALARS = (type(None), bool, int, float)


def small(value: Any) -> bool:
    """Kept inline in every checkpoint record rather than as a blob."""
    kind = type(value)
    return kind in _SCALARS or (kind in (str, bytes) and len(value) <= _SMALL)


def prepare_put(
    saver: AlmaSaver,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> Put:
    """The operations of one put (see the module docstring). The hot path of every graph step: one pass
    over the values, no lookups for a checkpoint that has nothing to point to."""
    conf = config["configurable"]
    thread_id, ns, parent = str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or ""), conf.get("checkpoint_id")
    project_id, versions, checkpoint_id = saver.project_id, checkpoint["channel_versions"], checkpoint["id"]
    inline, values = {}, {}
    for k, v in checkpoint["channel_values"].items():
        if small(v) or (k not in versions and k not in new_versions):
            inline[k] = v
        else:
            values[k] = v
    cp_ns = checkpoint_ns(thread_id, ns)
    held: Held = {}
    info: dict[str, Any] = {"thread_id": thread_id, "ns": ns, "parent": parent, "type": "", "v": ROWS}
    learned: list[Any] = []
    entries: dict[str, Entry] = {}
    if values:
        known = saver._located(thread_id, ns, parent)
        writing, at, chains = _kept(known, values, versions, new_versions, held)
        entries, learned, places = saver.channels.encode(
            saver.serde, blobs_ns(thread_id, ns), values, writing, checkpoint_id
        )
        for key, rows in places.items():
            chains[key.split("/", 1)[0]] = list(rows)
        held.update((key, (checkpoint_id, places.get(key, ()))) for key in entries)
        if at or chains:
            info.update(pointing(at, chains))
    aad = location(project_id, cp_ns, checkpoint_id) if saver.packer.cipher is not None else None
    info["type"], blob = pack_row(saver, {**checkpoint, "channel_values": inline}, entries, aad)
    meta: dict[str, Any] = get_checkpoint_metadata(config, metadata)  # type: ignore[assignment]  # (a new dict)
    meta[META] = info
    ops: list[Op] = [PutRecords((Record(project_id, cp_ns, checkpoint_id, blob, meta),), sequenced=False)]
    if saver.retention.ttl is not None or "ttl" in conf:  # (the retention index: only with a TTL)
        ops.extend(saver.retention.on_put(config, thread_id))
    saved: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    }
    guarded = needs_guard(saver.fencing, ns, parent)
    return Put(ops, saved, learned, guarded, (thread_id, ns, checkpoint_id, parent), held)


def _kept(
    known: Held | None, values: dict[str, Any], versions: ChannelVersions, new_versions: ChannelVersions, held: Held
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[str]]]:
    """The versions this put writes, and where the ones it keeps live (blob key -> row; channel -> its
    chain's rows), as the parent's record said; `held` gets the kept entries' places. A parent this saver
    does not know: every value is written in this row."""
    at: dict[str, str] = {}
    chains: dict[str, list[str]] = {}
    if known is None:
        return {k: versions[k] for k in values if k in versions}, at, chains
    writing = {k: v for k, v in new_versions.items() if k in values}
    for k in values:
        if k in writing or k not in versions:
            continue
        key = blob_key(k, versions[k])
        place = known.get(key)
        if place is None:
            writing[k] = versions[k]
            continue
        held[key] = place  # the version, and its delta chain, where the parent found them
        at[key] = place[0]
        if place[1]:
            chains[escape(k)] = list(place[1])
    return writing, at, chains


def guard(saver: AlmaSaver, put: Put) -> Guard:
    """The checks of a guarded put (see `_guards`)."""
    thread_id, ns, checkpoint_id, parent = put.where
    return Guard(saver.project_id, thread_id, ns, checkpoint_id, parent, saver.fencing)


def writes_ops(
    saver: AlmaSaver, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
) -> list[Op]:
    """A task's pending writes as at most two `PutRecords`: regular writes written once (a retried task
    keeps its first), special ones (errors, interrupts: negative indexes) replaced. Unsequenced: reads
    order writes by task path, task and index, never by seq (and each checkpoint's writes namespace
    would otherwise start a seq of its own)."""
    conf = config["configurable"]
    checkpoint_id = conf.get("checkpoint_id")
    if checkpoint_id is None:
        raise ValueError("put_writes needs a config with a checkpoint_id")
    namespace = writes_ns(str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or ""), checkpoint_id)
    sealed = saver.packer.cipher is not None
    regular: list[Record] = []
    special: list[Record] = []
    for i, (channel, value) in enumerate(writes):
        idx = WRITES_IDX_MAP.get(channel, i)
        key = f"{task_id}/{idx}"
        type_, blob = saver.packer.dumps(
            saver.serde, value, location(saver.project_id, namespace, key) if sealed else None
        )
        meta = {"task_id": task_id, "idx": idx, "channel": channel, "type": type_, "path": task_path}
        (regular if idx >= 0 else special).append(Record(saver.project_id, namespace, key, blob, meta))
    ops: list[Op] = [PutRecords(tuple(regular), if_absent=True, sequenced=False)] if regular else []
    return [*ops, PutRecords(tuple(special), sequenced=False)] if special else ops
