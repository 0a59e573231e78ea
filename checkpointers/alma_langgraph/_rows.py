"""A checkpoint record of format 3: one row per put, holding the channel versions it introduces.

    value     packed (zstd above the threshold, sealed when encryption is on) msgpack of
              [checkpoint serde type, checkpoint bytes, [[blob key, serde type, data, chain, count], ...]]
    metadata  the checkpoint's metadata, plus META = {thread_id, ns, parent, type, "v": 3,
              "rows": [ids of the checkpoint rows it points to],
              "at": {blob key: the index in rows of the row holding it, -1 for a blob record},
              "ch": {channel: [the indexes of the rows holding its delta chain's entries, oldest first]}}

The checkpoint keeps its small values inline (as in format 2); each larger channel value is an entry of
the row that introduced its version (a list that only grew: a delta over the entries of its `chain`, see
`_channels`). `at` and `ch` name where every other entry the checkpoint needs lives, so a read fetches
the head row and the rows it points to by primary key, and the rows' metadata alone say which entries
a pruned row must hand over (`handover_plan`: they become blob records, format 2's
place, where a read also looks when a pointed row is gone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ormsgpack

from alma_core.storage import ListRecords, Op, PutRecords, Record

from ._channels import Entry
from ._crypto import location
from ._layout import META, Plan, blobs_ns, checkpoint_ns

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["POINTED", "ROW", "ROWS", "handed_over", "handover_plan", "kept_of", "pack_row", "pointers", "pointing",
           "unpack_row"]  # fmt: skip

ROWS = 3  # `META["v"]` of a checkpoint record that holds its new channel versions
ROW = "alma-row"  # the serde type of its value (before the packer's suffixes)
POINTED = "rows"  # META entry: the rows a checkpoint points to (what `ListLinked` fetches with it)


def pointing(at: dict[str, str], chains: dict[str, list[str]]) -> dict[str, Any]:
    """META's pointer entries for these places (row ids, "" for a blob record): each row id once."""
    rows: dict[str, int] = {}
    for row in (*at.values(), *(r for ids in chains.values() for r in ids)):
        if row and row not in rows:
            rows[row] = len(rows)
    found: dict[str, Any] = {}
    if rows:
        found[POINTED] = list(rows)
    if at:
        found["at"] = {key: rows.get(row, -1) for key, row in at.items()}
    if chains:
        found["ch"] = {channel: [rows.get(row, -1) for row in ids] for channel, ids in chains.items()}
    return found


def pointers(info: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The places `pointing` wrote: (blob key -> row, channel -> the rows of its chain)."""
    rows = info.get(POINTED) or []
    at = {key: rows[i] if i >= 0 else "" for key, i in (info.get("at") or {}).items()}
    return at, {channel: [rows[i] if i >= 0 else "" for i in ids] for channel, ids in (info.get("ch") or {}).items()}


def pack_row(saver: AlmaSaver, checkpoint: Any, entries: Mapping[str, Entry], aad: bytes | None) -> tuple[str, bytes]:
    """A format-3 record's stored type and value."""
    cp_type, cp_bytes = saver.serde.dumps_typed(checkpoint)
    rows = [[k, e.type, e.data, list(e.chain), e.count] for k, e in entries.items()]
    body = ormsgpack.packb([cp_type, cp_bytes, rows])
    return saver.packer.pack(ROW, body, aad)


def unpack_row(saver: AlmaSaver, record: Record, *, checkpoint: bool = True) -> tuple[Any, dict[str, Entry]]:
    """The checkpoint of a format-3 record (its inline values only; None unless `checkpoint`) and its
    entries by blob key."""
    where = _where(record) if saver.packer.cipher is not None else None  # (the aad binds sealed rows only)
    _, body = saver.packer.unpack(record.metadata[META]["type"], record.value, where)
    cp_type, cp_bytes, raw = ormsgpack.unpackb(body)
    entries = {k: Entry(t, d, tuple(chain), n) for k, t, d, chain, n in raw}
    return saver.serde.loads_typed((cp_type, cp_bytes)) if checkpoint else None, entries


def _where(record: Record) -> bytes:
    return location(record.project_id, record.namespace, record.key)


def handover_plan(saver: AlmaSaver, doomed: Sequence[Record], kept: Sequence[Record]) -> Plan[None]:
    """Before `doomed` checkpoint records go: the entries of theirs that a `kept` record points to (by key
    in `at`, by channel in `ch`: a row holds one entry per channel) become blob records (written once,
    keyed `handed_over(key, row)`), where reads find them when the pointed row is gone."""
    gone = {(r.namespace, r.key) for r in doomed}
    wanted: dict[tuple[str, str], set[str]] = {}  # (checkpoint namespace, row id) -> blob keys or channels
    for r in kept:
        at, chains = pointers(r.metadata[META])
        refs = [*at.items(), *((c, row) for c, ids in chains.items() for row in ids)]
        for ref, row in refs:
            if row and (r.namespace, row) in gone:
                wanted.setdefault((r.namespace, row), set()).add(ref)
    if not wanted:
        return None
    by_ns: dict[str, list[str]] = {}
    for namespace, row in sorted(wanted):
        by_ns.setdefault(namespace, []).append(row)
    found = yield [ListRecords(saver.project_id, ns, keys=tuple(ids)) for ns, ids in by_ns.items()]
    blobs: list[Record] = []
    for record in (r for listed in found for r in listed):
        info = record.metadata[META]
        if info.get("v") != ROWS:
            continue
        _, entries = unpack_row(saver, record, checkpoint=False)
        namespace, wants = blobs_ns(info["thread_id"], info["ns"]), wanted[(record.namespace, record.key)]
        for key in sorted(k for k in entries if k in wants or k.split("/", 1)[0] in wants):
            blobs.append(saver.channels.blob(saver.project_id, namespace, handed_over(key, record.key), entries[key]))
    if blobs:
        yield [PutRecords(tuple(blobs), if_absent=True)]
    return None


def handed_over(key: str, row: str) -> str:
    """The blob record key of the entry `key` that the row `row` handed over: an entry is known by its
    key and row (the same version may be stored differently elsewhere, e.g. as a format-2 delta)."""
    return f"{key}@{row}"


def kept_of(saver: AlmaSaver, spaces: set[tuple[str, str]]) -> list[Op]:
    """Listings (without values) of the checkpoints of these (thread, ns), for `handover_plan`."""
    return [ListRecords(saver.project_id, checkpoint_ns(t, ns), with_values=False) for t, ns in sorted(spaces)]
