"""Items written by an older AlmaStore (vector base64-encoded in metadata `vec`) are migrated once, on
first use: their vectors move to vector records, so query search finds them again."""

from __future__ import annotations

import base64
import json

import numpy as np

from alma_core import ALMA
from alma_core.storage import DeleteRecords, GetRecord, ListRecords, PutRecord, Record
from alma_langgraph import AlmaStore
from alma_langgraph._store_migrations import MARKERS, migrate_store


def _old_item(alma: ALMA, key: str, text: str) -> Record:
    vector = np.asarray(alma.embedder.embed_documents([text])[0], dtype=np.float32)
    meta = {"ttl": None, "vec": base64.b64encode(vector.tobytes()).decode("ascii")}
    return Record(alma.project_id, "lgs/docs/", key, json.dumps({"text": text}).encode(), meta)


def test_old_items_vectors_move_out_of_metadata_once_and_search_finds_them(alma: ALMA) -> None:
    texts = {"a": "postgres tuning for write heavy loads", "b": "gardening in spring", "c": "baking sourdough bread"}
    alma.storage.batch([PutRecord(_old_item(alma, k, t)) for k, t in texts.items()])
    before = alma.storage.execute(GetRecord(alma.project_id, "lgs/docs/", "a"))

    store = AlmaStore(alma)
    hits = store.search(("docs",), query=texts["b"], limit=3)
    assert hits[0].key == "b" and all(h.score is not None for h in hits)
    items = alma.storage.execute(ListRecords(alma.project_id, "lgs/", prefix=True))
    assert len(items) == 3 and not any("vec" in r.metadata for r in items)
    after = alma.storage.execute(GetRecord(alma.project_id, "lgs/docs/", "a"))
    assert (after.value, after.created_at, after.updated_at) == (before.value, before.created_at, before.updated_at)
    assert store.get(("docs",), "a").value == {"text": texts["a"]}  # type: ignore[union-attr]

    AlmaStore(alma)  # migrated already: nothing is rewritten
    again = alma.storage.execute(GetRecord(alma.project_id, "lgs/docs/", "a"))
    assert again.seq == after.seq


def test_a_newer_vector_record_is_kept(alma: ALMA) -> None:
    store = AlmaStore(alma)
    store.put(("docs",), "a", {"text": "fresh text"})
    stale = _old_item(alma, "a", "something else entirely")
    current = alma.storage.execute(GetRecord(alma.project_id, "lgv/docs/", "a")).value
    alma.storage.batch([PutRecord(stale)])
    alma.storage.batch([DeleteRecords(alma.project_id, MARKERS)])  # as if this store predated the migration
    assert migrate_store(alma.storage, alma.project_id) == 1
    assert alma.storage.execute(GetRecord(alma.project_id, "lgv/docs/", "a")).value == current
