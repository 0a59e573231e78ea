"""The saver's maintenance plans: `delete_for_runs`, `copy_thread`, `prune` and the collection of
blobs no remaining checkpoint needs (see `_channels`). Before checkpoint rows go, the entries of theirs
that a remaining checkpoint points to become blob records (`_rows.handover_plan`). Each is a plan
(`_layout.Plan`) the saver runs in one transaction (sync) or step by step (async)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from alma_core.storage import DeleteRecords, GetRecord, ListRecords, Op, PutRecord, Record

from ._layout import (
    BLOBS,
    CHECKPOINTS,
    FORMAT,
    META,
    SPACES,
    Plan,
    blob_key,
    blobs_ns,
    checkpoint_ns,
    thread_prefix,
    writes_ns,
)
from ._rows import ROWS, handed_over, handover_plan, kept_of, pointers

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = [
    "PRUNE_STRATEGIES",
    "collect_plan",
    "copy_thread_plan",
    "delete_checkpoints",
    "delete_for_runs_plan",
    "keep_latest_plan",
    "prune_plan",
    "writes_ns_of",
]

PRUNE_STRATEGIES = ("keep_latest", "delete")


def delete_for_runs_plan(saver: AlmaSaver, run_ids: Sequence[str]) -> Plan[None]:
    if isinstance(run_ids, str):
        raise TypeError("run_ids must be a sequence of run IDs, not a str")
    if not run_ids:
        return None
    found = yield [
        ListRecords(saver.project_id, CHECKPOINTS, prefix=True, where={"run_id": str(r)}, with_values=False)
        for r in run_ids
    ]
    doomed = [r for records in found for r in records]
    if doomed:
        spaces = {(r.metadata[META]["thread_id"], r.metadata[META]["ns"]) for r in doomed}
        listed = yield kept_of(saver, spaces)
        gone = {(r.namespace, r.key) for r in doomed}
        kept = [r for records in listed for r in records if (r.namespace, r.key) not in gone]
        yield from handover_plan(saver, doomed, kept)
        yield delete_checkpoints(doomed)
        yield from collect_plan(saver, spaces)
    return None


def collect_plan(saver: AlmaSaver, spaces: set[tuple[str, str]]) -> Plan[None]:
    """Delete the blobs of these (thread, ns) that no remaining checkpoint needs (its channel
    versions and their delta chains)."""
    spaces_ = sorted(spaces)
    for thread_id, _ in spaces_:
        saver._forget(thread_id)
    if not spaces_:
        return None
    found = yield [
        op
        for thread_id, ns in spaces_
        for op in (
            ListRecords(saver.project_id, checkpoint_ns(thread_id, ns)),
            ListRecords(saver.project_id, blobs_ns(thread_id, ns), with_values=False),
        )
    ]
    ops: list[Op] = []
    for i, (thread_id, ns) in enumerate(spaces_):
        checkpoints, blobs = found[2 * i], found[2 * i + 1]
        needed: set[str] = set()
        rows = {r.key for r in checkpoints}
        chains: set[tuple[str, str]] = set()  # (channel, row gone) of a delta chain a checkpoint still needs
        for r in checkpoints:
            info = r.metadata[META]
            if info.get("v") == FORMAT:
                cp = saver._load(info["type"], r)
                needed.update(blob_key(c, v) for c, v in cp["channel_versions"].items())
            elif info.get("v") == ROWS:  # a blob record, or what a row that is gone handed over
                at, ch = pointers(info)
                needed.update(k if not row else handed_over(k, row) for k, row in at.items() if row not in rows)
                chains.update((c, row) for c, ids in ch.items() for row in ids if row not in rows)
        for b in blobs:
            if b.key in needed and "d" in b.metadata and "@" not in b.key:
                channel = b.key.split("/", 1)[0]
                needed.update(f"{channel}/{v}" for v in b.metadata["d"])
        doomed = tuple(b.key for b in blobs if b.key not in needed and _chain_of(b.key) not in chains)
        if doomed:
            ops.append(DeleteRecords(saver.project_id, blobs_ns(thread_id, ns), doomed))
    if ops:
        yield ops
    return None


def copy_thread_plan(saver: AlmaSaver, source: str, target: str) -> Plan[None]:
    saver._forget(target)
    spaces = yield [
        ListRecords(saver.project_id, thread_prefix(space, source), prefix=True, order_by="key", descending=False)
        for space in SPACES
    ]
    ops: list[Op] = []
    for space, records in zip(SPACES, spaces, strict=True):
        src, dst = thread_prefix(space, source), thread_prefix(space, target)
        for r in records:
            meta = r.metadata
            if space == CHECKPOINTS:
                meta = {**meta, META: {**meta[META], "thread_id": str(target)}}
            type_ = meta[META]["type"] if space == CHECKPOINTS else meta["t"] if space == BLOBS else meta["type"]
            ops.append(PutRecord(saver._moved(r, dst + r.namespace[len(src) :], meta, type_)))
    if spaces[0]:  # the copy expires like a thread this saver wrote
        ops.extend(saver.retention.on_put({}, str(target)))
    if ops:
        yield ops
    return None


def prune_plan(saver: AlmaSaver, thread_ids: Sequence[str], strategy: str) -> Plan[None]:
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(f"Unknown prune strategy: {strategy!r} (use one of {PRUNE_STRATEGIES})")
    for thread_id in map(str, thread_ids):
        if strategy == "delete":
            yield from saver._delete_thread_plan(thread_id)
        else:
            yield from saver._keep_latest_plan(thread_id)
    return None


def keep_latest_plan(saver: AlmaSaver, thread_id: str, keep: int = 1) -> Plan[None]:
    """Keep each namespace's latest `keep` checkpoints (with their writes and blobs), and, for a thread that
    uses a DeltaChannel, every ancestor back to the nearest one holding a stored value for each
    delta channel (their writes rebuild the channel). A kept checkpoint whose parent goes has no parent."""
    (records,) = yield [
        ListRecords(saver.project_id, thread_prefix(CHECKPOINTS, thread_id), prefix=True, order_by="key",
                    with_values=False)
    ]  # fmt: skip
    by_ns: dict[str, dict[str, Record]] = {}
    for r in records:
        by_ns.setdefault(r.namespace, {})[r.key] = r
    doomed: list[Record] = []
    survivors: list[Record] = []
    orphans: list[Record] = []
    for namespace, chain in by_ns.items():
        kept = [chain[k] for k in sorted(chain, reverse=True)[:keep]]
        delta = set(kept[-1].metadata.get("counters_since_delta_snapshot") or {})
        parent = kept[-1].metadata[META]["parent"]
        while delta and parent in chain:
            (ancestor,) = yield [GetRecord(saver.project_id, namespace, parent)]
            if ancestor is None:
                break
            kept.append(ancestor)
            (values,), _ = yield from saver._load_plan([ancestor])
            delta -= set(values.get("channel_values", {}))
            parent = ancestor.metadata[META]["parent"]
        kept_ids = {r.key for r in kept}
        doomed.extend(r for key, r in chain.items() if key not in kept_ids)
        survivors.extend(kept)
        oldest = kept[-1]
        if oldest.metadata[META]["parent"] is not None and oldest.metadata[META]["parent"] not in kept_ids:
            orphans.append(oldest)
    if not doomed:
        return None
    yield from handover_plan(saver, doomed, survivors)
    ops = delete_checkpoints(doomed)
    if orphans:
        full = yield [GetRecord(saver.project_id, r.namespace, r.key) for r in orphans]
        for r in full:
            if r is not None:
                meta = {**r.metadata, META: {**r.metadata[META], "parent": None}}
                ops.append(PutRecord(Record(r.project_id, r.namespace, r.key, r.value, meta)))
    yield ops
    yield from collect_plan(saver, {(r.metadata[META]["thread_id"], r.metadata[META]["ns"]) for r in doomed})
    return None


def _chain_of(key: str) -> tuple[str, str]:
    """(channel, the row it came from, "" for a blob of format 2) of a blob record's key."""
    base, _, row = key.partition("@")
    return base.split("/", 1)[0], row


def writes_ns_of(record: Record) -> str:
    info = record.metadata[META]
    return writes_ns(info["thread_id"], info["ns"], record.key)


def delete_checkpoints(records: Sequence[Record]) -> list[Op]:
    """Delete checkpoint records and their writes."""
    by_ns: dict[tuple[str, str], list[str]] = {}
    for r in records:
        by_ns.setdefault((r.project_id, r.namespace), []).append(r.key)
    ops: list[Op] = [DeleteRecords(p, ns, tuple(keys)) for (p, ns), keys in by_ns.items()]
    ops.extend(DeleteRecords(r.project_id, writes_ns_of(r)) for r in records)
    return ops
