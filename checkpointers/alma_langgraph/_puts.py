"""A put as storage operations: the checkpoint record and its new channel blobs in one `PutRecords`.

The lean path, taken by every put that needs no read first: one operation (one `executemany` on
SQLite, one statement on PostgreSQL), nothing read back, and no work for options that are off (no
associated data is built without a cipher, no retention index without a TTL). A put that must read
before it writes (fencing, or the first checkpoint of a thread, see `_guards`) runs the same operations
after its checks, in one write transaction.

Small scalar values (None, bool, numbers, short strings) stay inline in the checkpoint record, as in
PostgresSaver: a blob of a few bytes would cost a row for nothing. Only the channels in `new_versions`
are serialized; a checkpoint whose parent this saver has not seen stored in this format also writes its
other channel values (write-once: blobs already stored stay), so a thread written in the old format or
by another process never loses a value.
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

from ._crypto import location
from ._guards import guarded_put, needs_guard
from ._layout import FORMAT, META, Plan, blob_key, blobs_ns, checkpoint_ns, writes_ns

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["Put", "prepare_put", "put_plan", "writes_ops"]

_SMALL = 256  # characters or bytes: a string up to this long is kept inline


@dataclass(slots=True)
class Put:
    """A prepared put: its operations, the config it returns, what to remember once it committed, and
    whether it must read first (then `put_plan` runs it)."""

    ops: list[Op]
    saved: RunnableConfig
    learned: list[Any]
    guarded: bool
    where: tuple[str, str, str, str | None]  # thread_id, checkpoint_ns, checkpoint id, parent id


def small(value: Any) -> bool:
    """Kept inline in every checkpoint record rather than as a blob."""
    kind = type(value)
    return value is None or kind in (bool, int, float) or (kind in (str, bytes) and len(value) <= _SMALL)


def prepare_put(
    saver: AlmaSaver,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> Put:
    """The operations of one put (see the module docstring)."""
    conf = config["configurable"]
    thread_id, ns, parent = str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or ""), conf.get("checkpoint_id")
    project_id, versions, checkpoint_id = saver.project_id, checkpoint["channel_versions"], checkpoint["id"]
    inline, values = {}, {}
    for k, v in checkpoint["channel_values"].items():
        if small(v) or (k not in versions and k not in new_versions):
            inline[k] = v
        else:
            values[k] = v
    namespace = blobs_ns(thread_id, ns)
    blobs, learned = saver.channels.encode(saver.serde, project_id, namespace, values, new_versions)
    ops: list[Op] = []
    if parent is None or (thread_id, ns, parent) not in saver._stored:
        rest = {k: versions[k] for k in values if k in versions and k not in new_versions}
        if rest:
            more, _ = saver.channels.encode(saver.serde, project_id, namespace, values, rest)
            ops.append(PutRecords(tuple(more), if_absent=True))
    cp_ns = checkpoint_ns(thread_id, ns)
    aad = location(project_id, cp_ns, checkpoint_id) if saver.packer.cipher is not None else None
    type_, blob = saver.packer.dumps(saver.serde, {**checkpoint, "channel_values": inline}, aad)
    meta: dict[str, Any] = dict(get_checkpoint_metadata(config, metadata))
    meta[META] = {"thread_id": thread_id, "ns": ns, "parent": parent, "type": type_, "v": FORMAT,
                  "b": blob_keys(saver, namespace, inline, versions, learned)}  # fmt: skip
    ops.insert(0, PutRecords((Record(project_id, cp_ns, checkpoint_id, blob, meta), *blobs)))
    ops.extend(saver.retention.on_put(config, thread_id))
    saved: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    }
    guarded = needs_guard(saver.fencing, ns, parent)
    return Put(ops, saved, learned, guarded, (thread_id, ns, checkpoint_id, parent))


def blob_keys(
    saver: AlmaSaver, namespace: str, inline: dict[str, Any], versions: ChannelVersions, learned: list[Any]
) -> list[str]:
    """The keys of the blobs a read of this checkpoint needs: one per channel version not inline, and
    the delta chains under them that this saver knows (a reader fetches any other; see `_linked`)."""
    chains = {slot[1]: known.chain for slot, known in learned}
    keys: list[str] = []
    for channel, version in versions.items():
        if channel in inline:
            continue
        keys.append(blob_key(channel, version))
        chain = chains[channel] if channel in chains else saver.channels.chain(namespace, channel, version)
        keys.extend(blob_key(channel, v) for v in chain)
    return keys


def put_plan(saver: AlmaSaver, put: Put) -> Plan[None]:
    """A guarded put: its checks, then its writes, in the transaction the plan runs in."""
    thread_id, ns, checkpoint_id, parent = put.where
    if put.guarded:
        yield from guarded_put(saver.project_id, thread_id, ns, checkpoint_id, parent, saver.fencing, put.ops)
    else:
        yield put.ops
    return None


def writes_ops(
    saver: AlmaSaver, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
) -> list[Op]:
    """A task's pending writes as at most two `PutRecords`: regular writes written once (a retried task
    keeps its first), special ones (errors, interrupts: negative indexes) replaced."""
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
    ops: list[Op] = [PutRecords(tuple(regular), if_absent=True)] if regular else []
    return [*ops, PutRecords(tuple(special))] if special else ops
