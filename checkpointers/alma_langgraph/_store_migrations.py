"""Append-only, versioned migrations of `AlmaStore`'s records, applied once per project on first use.

1. `vectors-out-of-metadata`: items written before an item's vector became a record of its own (under
   `lgv/`, see `_store`) kept it base64-encoded in their metadata as `vec`, where search no longer looks;
   each such vector moves to its vector record (unless a newer one is there) and leaves the metadata.

Each migration runs with its marker record in one write transaction, after re-checking the marker
inside it, so several processes opening a store at once migrate it once. A store whose markers are all
present costs one read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import replace

from alma_core.storage import BaseStorage, GetRecord, ListRecords, Op, PutRecord, Record

from ._layout import Plan, run
from ._store import STORE, VECTORS

__all__ = ["MIGRATIONS", "migrate_store"]

MARKERS = "lgx/store-migrations"
_CHUNK = 500


def _vectors_out_of_metadata(project_id: str) -> Plan[int]:
    (found,) = yield [ListRecords(project_id, STORE, prefix=True, with_values=False, descending=False)]
    old = [r.key for r in found if "vec" in r.metadata]
    spaces = [r.namespace for r in found if "vec" in r.metadata]
    moved = 0
    for start in range(0, len(old), _CHUNK):
        keys, namespaces = old[start : start + _CHUNK], spaces[start : start + _CHUNK]
        items: list[Record | None] = yield [
            GetRecord(project_id, ns, k) for ns, k in zip(namespaces, keys, strict=True)
        ]
        ops: list[Op] = []
        for item in items:
            if item is None:
                continue  # expired since
            meta = {k: v for k, v in item.metadata.items() if k != "vec"}
            ops.append(PutRecord(replace(item, metadata=meta)))
            try:
                vector = base64.b64decode(str(item.metadata["vec"]), validate=True)
            except (binascii.Error, ValueError):
                continue  # unreadable: the item stays, unsearchable by query, as it was
            vectors = VECTORS + item.namespace[len(STORE) :]
            ops.append(PutRecord(Record(project_id, vectors, item.key, vector), if_absent=True))
            moved += 1
        if ops:
            yield ops
    return moved


MIGRATIONS: list[tuple[str, Callable[[str], Plan[int]]]] = [
    ("1-vectors-out-of-metadata", _vectors_out_of_metadata),
]


def migrate_store(storage: BaseStorage, project_id: str) -> int:
    """Apply the migrations this project's store lacks; returns how many items they changed."""
    last = MIGRATIONS[-1][0]
    if storage.execute(GetRecord(project_id, MARKERS, last)) is not None:
        return 0
    return run(storage, _pending(project_id), write=True)


def _pending(project_id: str) -> Plan[int]:
    done: list[Record | None] = yield [GetRecord(project_id, MARKERS, name) for name, _ in MIGRATIONS]
    changed = 0
    for (name, migration), marker in zip(MIGRATIONS, done, strict=True):
        if marker is None:
            count = yield from migration(project_id)
            yield [PutRecord(Record(project_id, MARKERS, name, None, {"changed": count}))]
            changed += count
    return changed
