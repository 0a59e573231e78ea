"""Checkpoint records back to checkpoints with their channel values, in as few queries as they need.

A record of format 3 (`_rows`) holds the entries it introduced and points (`at`) to the rows holding the
others: one query fetches every pointed row of a page of records, by primary key. Format 2 keeps its
values in blob records (one query per blob namespace); format 1 holds the whole checkpoint. Whatever a
pointed row no longer holds (it was pruned and handed its entries over: `_rows.handed_over`), and every
delta chain entry not fetched yet, comes from the blob records in one more query.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alma_core.storage import ListRecords, Op, Record

from ._channels import Entry, Held
from ._layout import BLOBS, FORMAT, META, Plan, blob_key, blobs_ns
from ._rows import POINTED, ROWS, handed_over, pointers, unpack_row

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["Opened", "load_linked", "load_plan", "locations", "open_record"]

_KEYS_PER_OP = 500  # keys per ListRecords (under SQLite's bound-parameter limit)


@dataclass(slots=True)
class Opened:
    """A checkpoint record opened: its checkpoint (inline values only), format, blob namespace, its own
    entries (format 3), where each other version it keeps lives (`at`: blob key -> row id, "" for a blob
    record), the rows of each channel's delta chain (`chains`, in chain order) and, once the deltas
    were found, where each of their chain entries lives (`parts`)."""

    record: Record
    checkpoint: Any
    format: int
    blobs: str
    entries: dict[str, Entry] = field(default_factory=dict)
    at: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)

    def wanted(self) -> dict[str, str]:
        """Blob key -> where, for every channel version whose value is not inline (format 3: only those
        with an entry; a version without one has no value)."""
        if self.format < FORMAT:
            return {}
        inline = self.checkpoint["channel_values"]
        keys = [blob_key(c, v) for c, v in self.checkpoint["channel_versions"].items() if c not in inline]
        if self.format == FORMAT:
            return dict.fromkeys(keys, "")
        own = self.record.key
        return {k: own if k in self.entries else self.at[k] for k in keys if k in self.entries or k in self.at}


def open_record(saver: AlmaSaver, record: Record) -> Opened:
    info = record.metadata[META]
    namespace = blobs_ns(info["thread_id"], info["ns"])
    version = int(info.get("v") or 1)
    if version == ROWS:
        checkpoint, entries = unpack_row(saver, record)
        return Opened(record, checkpoint, ROWS, namespace, entries, *pointers(info))
    return Opened(record, saver._load(info["type"], record), version, namespace)


def locations(opened: Opened) -> Held:
    """Where every entry the checkpoint needs lives: what a put on top of it points to."""
    if opened.format != ROWS:
        return {key: ("", ()) for key in opened.wanted()}
    held = {key: (row, tuple(opened.chains.get(key.split("/", 1)[0], ()))) for key, row in opened.at.items()}
    own = opened.record.key
    held.update((key, (own, tuple(opened.chains.get(key.split("/", 1)[0], ())))) for key in opened.entries)
    return held


class _Pool:
    """Entries fetched so far, by (blob namespace, where, key); what is still to fetch."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], Entry] = {}
        self.rows: set[tuple[str, str]] = set()  # (checkpoint namespace, id) fetched or given
        self.blobs: set[tuple[str, str]] = set()  # (blob namespace, key) asked of the blob records

    def add_row(self, record: Record, blobs: str, entries: Mapping[str, Entry]) -> None:
        self.rows.add((record.namespace, record.key))
        for key, entry in entries.items():
            self.entries[(blobs, record.key, key)] = entry

    def add(self, saver: AlmaSaver, r: Record) -> None:
        """A fetched blob record, or a checkpoint row's entries."""
        if r.namespace.startswith(BLOBS):
            self.entries[(r.namespace, "", r.key)] = saver.channels.entry(r)
        elif (info := r.metadata.get(META, {})).get("v") == ROWS and (r.namespace, r.key) not in self.rows:
            self.add_row(r, blobs_ns(info["thread_id"], info["ns"]), unpack_row(saver, r, checkpoint=False)[1])

    def lookup(self, opened: Opened) -> Any:
        own, at, parts = opened.record.key, opened.at, opened.parts

        def find(key: str) -> tuple[Entry, str] | None:
            where = own if key in opened.entries else at.get(key) or parts.get(key, "")
            entry = self.entries.get((opened.blobs, where, key))
            if entry is None and where:  # the row is gone: what it handed over
                entry = self.entries.get((opened.blobs, "", handed_over(key, where)))
            return None if entry is None else (entry, where)

        return find

    def missing(self, opened: Opened) -> tuple[set[str], set[str]]:
        """(row ids, blob keys) this checkpoint still needs fetched: pointed rows first, then blob
        records for what a fetched row did not hold, and the chain entries of what was found."""
        rows: set[str] = set()
        keys: set[str] = set()
        find = self.lookup(opened)
        todo = list(opened.wanted().items())
        while todo:
            key, where = todo.pop()
            found = find(key)
            if found is not None:
                channel = key.split("/", 1)[0]
                chain_rows = opened.chains.get(channel) or [""] * len(found[0].chain)
                for version, row in zip(found[0].chain, chain_rows, strict=False):
                    opened.parts[f"{channel}/{version}"] = row
                    todo.append((f"{channel}/{version}", row))
                continue
            if where and (opened.record.namespace, where) not in self.rows:
                rows.add(where)
            elif (opened.blobs, blob := handed_over(key, where) if where else key) not in self.blobs:
                keys.add(blob)
        return rows, keys


def load_plan(
    saver: AlmaSaver,
    records: Sequence[Record],
    extra: Sequence[Op] = (),
    have: Mapping[tuple[str, str], Record] | None = None,
) -> Plan[tuple[list[Any], list[Any]]]:
    """The checkpoints of `records` with their channel values; `extra` ops run in the first step;
    `have`: records read with them (the rows they point to), by (namespace, key)."""
    opened = [open_record(saver, r) for r in records]
    pool = _Pool()
    for o in opened:
        pool.add_row(o.record, o.blobs, o.entries)
    if have is not None:  # every row the records point to was asked for: what is not here is gone
        for r in have.values():
            pool.add(saver, r)
        for o in opened:
            pointed = {*o.at.values(), *(row for rows in o.chains.values() for row in rows)} - {""}
            pool.rows.update((o.record.namespace, row) for row in pointed)
    extra_results: list[Any] = []
    first = True
    while True:
        rows: dict[str, set[str]] = {}
        keys: dict[str, set[str]] = {}
        for o in opened:
            want_rows, want_keys = pool.missing(o)
            if want_rows:
                rows.setdefault(o.record.namespace, set()).update(want_rows)
            if want_keys:
                keys.setdefault(o.blobs, set()).update(want_keys)
        fetch = _fetch_ops(saver.project_id, rows) + _fetch_ops(saver.project_id, keys)
        if not fetch and not (first and extra):
            break
        results = yield [*(extra if first else ()), *fetch]
        if first:
            extra_results, results = list(results[: len(extra)]), results[len(extra) :]
            first = False
        for namespace, ids in rows.items():
            pool.rows.update((namespace, i) for i in ids)
        for namespace, wanted in keys.items():
            pool.blobs.update((namespace, k) for k in wanted)
        for found in results:
            for r in found:
                pool.add(saver, r)
    checkpoints = []
    for o in opened:
        cp = o.checkpoint
        if o.format >= FORMAT:
            inline = cp["channel_values"]
            versions = {c: v for c, v in cp["channel_versions"].items() if c not in inline}
            values = saver.channels.decode(saver.serde, o.blobs, versions, pool.lookup(o))
            if values:
                cp["channel_values"] = {**inline, **values}
        checkpoints.append(cp)
    if opened and opened[0].format >= FORMAT:
        _remember_newest(saver, opened[0])
    return checkpoints, extra_results


def _remember_newest(saver: AlmaSaver, newest: Opened) -> None:
    """The newest checkpoint read: the parent of a put to come (its rows' places kept by the saver)."""
    info = newest.record.metadata[META]
    saver._remember(info["thread_id"], info["ns"], newest.record.key, locations(newest))


def _held(record: Record, info: dict[str, Any], keys: dict[str, Any]) -> Held:
    """`locations` of a format-3 checkpoint, built when a put on top asks (`load_linked` keeps this, with its
    own entries' keys only, instead of building it at every read)."""
    return locations(Opened(record, None, ROWS, blobs_ns(info["thread_id"], info["ns"]), keys, *pointers(info)))


class _Missing(Exception):
    """An entry is not in the rows at hand: `load_linked` hands over to `load_plan`."""


def load_linked(
    saver: AlmaSaver, records: Sequence[Record], have: Mapping[tuple[str, str], Record]
) -> list[Any] | None:
    """`load_plan`'s checkpoints without its steps, when every record is of format 3 and every entry
    they need is in them or in the rows read with them (`have`: `ListLinked`'s references), as in a
    store nobody pruned. One loop, oldest first (a checkpoint points only to older rows): each row is
    unpacked once and its values decoded at once; a row's entries are kept for the rest of the loop only
    when a listed checkpoint points to it, so a page holds one row's unpacked bytes at a time, not all.
    None: something lives elsewhere (a blob record, a row pruned since), and `load_plan` reads it."""
    infos = []
    for record in records:
        info = record.metadata[META]
        if info.get("v") != ROWS:
            return None
        infos.append(info)
    pointed: set[str] = set().union(*(info.get(POINTED) or () for info in infos))  # (row ids: a key is a uuid)
    rows: dict[tuple[str, str], dict[str, Entry]] = {}
    checkpoints: list[Any] = [None] * len(records)
    decode, serde = saver.channels.decode, saver.serde
    try:
        for i in range(len(records) - 1, -1, -1):
            record, info = records[i], infos[i]
            place = (record.namespace, record.key)
            cp, entries = unpack_row(saver, record)
            rows[place] = entries
            inline = cp["channel_values"]
            versions = {c: v for c, v in cp["channel_versions"].items() if c not in inline}
            if versions:
                blobs = blobs_ns(info["thread_id"], info["ns"])
                opened = Opened(record, cp, ROWS, blobs, entries, *pointers(info))
                values = decode(serde, blobs, versions, _finder(saver, opened, rows, have))
                if values:
                    cp["channel_values"] = {**inline, **values}
            if record.key not in pointed:
                del rows[place]
            checkpoints[i] = cp
            if i == 0:  # the newest: its places, computed only when a put on top asks (`AlmaSaver._located`)
                where = functools.partial(_held, record, info, dict.fromkeys(entries))
                saver._remember(info["thread_id"], info["ns"], record.key, where)
    except _Missing:
        return None
    return checkpoints


def _finder(
    saver: AlmaSaver,
    opened: Opened,
    rows: dict[tuple[str, str], dict[str, Entry]],
    have: Mapping[tuple[str, str], Record],
) -> Any:
    """`Channels.decode`'s lookup for `load_linked`: each entry in its row (`at`, or `ch` for a delta
    chain's entries), the row unpacked on first use; `_Missing` when the row or its entry is not here."""
    own, namespace = opened.record.key, opened.record.namespace
    at, chains, parts = opened.at, opened.chains, opened.parts

    def find(key: str) -> tuple[Entry, str] | None:
        if key in opened.entries:
            where = own
        elif key in at:
            where = at[key]
        elif key in parts:
            where = parts[key]
        else:
            return None  # a version without an entry: no value
        entries = rows.get((namespace, where))
        if entries is None:
            row = have.get((namespace, where)) if where else None  # ("": a blob record, not read here)
            if row is None or row.metadata.get(META, {}).get("v") != ROWS:
                raise _Missing
            entries = rows[(namespace, where)] = unpack_row(saver, row, checkpoint=False)[1]
        entry = entries.get(key)
        if entry is None:
            raise _Missing
        if entry.chain:
            channel = key.split("/", 1)[0]
            chain_rows = chains.get(channel) or [""] * len(entry.chain)
            for version, row_id in zip(entry.chain, chain_rows, strict=False):
                parts[f"{channel}/{version}"] = row_id
        return entry, where

    return find


def _fetch_ops(project_id: str, wanted: Mapping[str, set[str]]) -> list[Op]:
    """ListRecords of these keys per namespace, in chunks."""
    ops: list[Op] = []
    for namespace, keys in wanted.items():
        ordered = sorted(keys)
        for i in range(0, len(ordered), _KEYS_PER_OP):
            ops.append(ListRecords(project_id, namespace, keys=tuple(ordered[i : i + _KEYS_PER_OP])))
    return ops
