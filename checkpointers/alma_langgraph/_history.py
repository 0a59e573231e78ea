"""`get_delta_channel_history` (LangGraph's `DeltaChannel`) read in a few queries, not one per ancestor.

The contract is `BaseCheckpointSaver.get_delta_channel_history`'s: walk the parent chain of the target
checkpoint; per channel, collect each ancestor's writes to it (oldest first, each checkpoint's in
`writes_sort_key` order) down to the nearest ancestor that stores a value for it, whose value is the
`seed`. Here the chain is read a page of checkpoint records at a time (newest first, one query a
page), which ancestors store a value is one query over the blob keys of the whole page, the writes of
every ancestor on the path are one step, and the seeds are one query (plus one for a list's delta
chain). The default walks `get_tuple` once per ancestor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import DeltaChannelHistory, PendingWrite, get_checkpoint_id

from alma_core.storage import GetRecord, ListRecords, Op, Record

from ._channels import Entry
from ._layout import FORMAT, META, Plan, blob_key, blobs_ns, checkpoint_ns, writes_ns
from ._reads import Opened, open_record

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from ._saver import AlmaSaver

__all__ = ["delta_history_plan"]

PAGE = 200  # checkpoint records per query while walking the chain


def delta_history_plan(
    saver: AlmaSaver, config: RunnableConfig, channels: Sequence[str]
) -> Plan[dict[str, DeltaChannelHistory]]:
    if not channels:
        return {}
    conf = config["configurable"]
    thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or "")
    checkpoint_id = get_checkpoint_id(config)
    pid, namespace, blobs = saver.project_id, checkpoint_ns(thread_id, ns), blobs_ns(thread_id, ns)
    if checkpoint_id:
        (target,) = yield [GetRecord(pid, namespace, checkpoint_id)]
    else:
        (latest,) = yield [ListRecords(pid, namespace, order_by="key", limit=1, with_values=False)]
        target = latest[0] if latest else None
    remaining = set(channels)
    path: list[Record] = []  # on-path ancestors, newest first
    seeds: dict[str, tuple[int, Any]] = {}  # channel -> (position on path, version or ("value", v))
    loaded: dict[str, dict[str, Any]] = {}  # checkpoint id -> its checkpoint (without blob values)
    opened: dict[str, Opened] = {}
    parent = target.metadata[META]["parent"] if target is not None else None
    before = target.key if target is not None else None
    while parent is not None and remaining:
        (page,) = yield [ListRecords(pid, namespace, order_by="key", before_key=before, limit=PAGE)]
        by_key = {r.key: r for r in page}
        start = len(path)
        while parent in by_key:
            record = by_key[parent]
            path.append(record)
            opened[record.key] = open_record(saver, record)
            loaded[record.key] = opened[record.key].checkpoint
            parent = record.metadata[META]["parent"]
        keys = {
            blob_key(ch, loaded[r.key]["channel_versions"][ch])
            for r in path[start:]
            if r.metadata[META].get("v") == FORMAT
            for ch in remaining
            if ch in loaded[r.key]["channel_versions"]
        }
        stored_keys: set[str] = set()
        if keys:
            (stored,) = yield [ListRecords(pid, blobs, keys=tuple(sorted(keys)), with_values=False)]
            stored_keys = {r.key for r in stored}
        for i in range(start, len(path)):
            cp, v2 = loaded[path[i].key], path[i].metadata[META].get("v") == FORMAT
            held = opened[path[i].key].wanted()  # format 3: the versions it has an entry for
            for ch in list(remaining):
                version = cp["channel_versions"].get(ch)
                if ch in cp["channel_values"]:
                    seeds[ch] = (i, ("value", cp["channel_values"][ch]))
                elif v2 and version is not None and blob_key(ch, version) in stored_keys:
                    seeds[ch] = (i, version)
                elif not v2 and version is not None and blob_key(ch, version) in held:
                    seeds[ch] = (i, ("row", path[i]))
                else:
                    continue
                remaining.discard(ch)
        if not page or (parent is not None and parent > page[-1].key and parent not in by_key):
            break  # the chain ends here: the parent is gone
        before = page[-1].key
    depth = len(path) if remaining else max((i for i, _ in seeds.values()), default=-1) + 1
    on_path = path[:depth]
    found_writes: list[list[Record]] = []
    if on_path:
        found_writes = yield [ListRecords(pid, writes_ns(thread_id, ns, r.key)) for r in on_path]
    seed_values = yield from _seed_plan(saver, blobs, seeds)
    history: dict[str, DeltaChannelHistory] = {}
    for ch in channels:
        limit = seeds[ch][0] + 1 if ch in seeds else len(on_path)
        writes: list[PendingWrite] = []
        for records in reversed(found_writes[:limit]):  # oldest ancestor first
            writes.extend(w for w in saver._pending(records) if w[1] == ch)
        entry: DeltaChannelHistory = {"writes": writes}
        if ch in seed_values:
            entry["seed"] = seed_values[ch]
        history[ch] = entry
    return history


def _seed_plan(saver: AlmaSaver, blobs: str, seeds: dict[str, tuple[int, Any]]) -> Plan[dict[str, Any]]:
    """The seed values: inline ones as they are, blobs fetched in one query (and their delta chains)."""
    values = {ch: how[1] for ch, (_, how) in seeds.items() if isinstance(how, tuple) and how[0] == "value"}
    rows = {ch: how[1] for ch, (_, how) in seeds.items() if isinstance(how, tuple) and how[0] == "row"}
    if rows:  # format 3: the seeds' checkpoints read whole (their rows and the rows they point to)
        records = list({r.key: r for r in rows.values()}.values())
        checkpoints, _ = yield from saver._load_plan(records)
        by_id = {r.key: cp for r, cp in zip(records, checkpoints, strict=True)}
        values.update((ch, by_id[r.key]["channel_values"][ch]) for ch, r in rows.items()
                      if ch in by_id[r.key]["channel_values"])  # fmt: skip
    versions = {ch: how for ch, (_, how) in seeds.items() if not isinstance(how, tuple)}
    if not versions:
        return values
    keys = tuple(sorted(blob_key(ch, v) for ch, v in versions.items()))
    (found,) = yield [ListRecords(saver.project_id, blobs, keys=keys)]
    by_key = {r.key: saver.channels.entry(r) for r in found}
    chains = {f"{k.split('/', 1)[0]}/{v}" for k, e in by_key.items() for v in e.chain} - by_key.keys()
    if chains:
        more: list[Op] = [ListRecords(saver.project_id, blobs, keys=tuple(sorted(chains)))]
        (chain,) = yield more
        by_key.update((r.key, saver.channels.entry(r)) for r in chain)

    def lookup(key: str) -> tuple[Entry, str] | None:
        entry = by_key.get(key)
        return None if entry is None else (entry, "")

    values.update(saver.channels.decode(saver.serde, blobs, versions, lookup))
    return values
