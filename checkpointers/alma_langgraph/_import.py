"""Copy another saver's threads into an `AlmaSaver`: `alma checkpoints import PATH`.

A `SqliteSaver` file is copied row for row: its blobs are stored with their serde type as they are, so
nothing is deserialized (typed state stays typed, whatever classes this process has). Every row is checked
before the first is written (a file that is not a SqliteSaver's, a row of the wrong shape, metadata that
is not a JSON object, a pickled blob this saver would never load): a `ValidationError` naming the row, and
the store unchanged. Any other saver (`PostgresSaver`, given a `postgresql://` URI) is read through its
own API with `AlmaSerializer`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from alma_core import NotFound, ValidationError
from alma_core._checks import check_json
from alma_core.storage import PutRecord, Record

from ._crypto import location
from ._layout import META, checkpoint_ns, writes_ns
from ._saver import AlmaSaver
from ._serde import safe_serializer

__all__ = ["import_checkpoints"]

_CHUNK = 500


def import_checkpoints(saver: AlmaSaver, source: str | Path) -> dict[str, int]:
    """Copy every thread of a SqliteSaver file or a PostgresSaver URI; returns counts. Idempotent."""
    text = str(source)
    if text.startswith(("postgresql://", "postgres://")):
        return _from_postgres(saver, text)
    if not Path(text).is_file():
        raise NotFound(f"no SqliteSaver file at {text!r}")
    with closing(sqlite3.connect(f"file:{Path(text).resolve()}?mode=ro", uri=True)) as conn:
        try:
            _check_sqlite(conn, text)  # every row, before anything is written
            return _from_sqlite(saver, conn)
        except sqlite3.Error as exc:  # not SQLite, truncated, or no checkpoints / writes table
            raise ValidationError(f"{text}: not a SqliteSaver file: {exc}") from None


_CHECKPOINTS = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints ORDER BY thread_id, checkpoint_ns, checkpoint_id"
)
_WRITES = "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value FROM writes"
_MAX_ID = 1_000  # characters of a thread, namespace, checkpoint or task id (LangGraph's are uuids)


def _metadata(raw: Any) -> dict[str, Any]:
    """A row's metadata column as a JSON object (`ValueError` otherwise)."""
    if raw is None or raw in ("", b""):
        return {}
    try:
        meta = json.loads(raw, parse_constant=lambda name: _refuse(f"{name} is not a JSON value"))
    except RecursionError:
        raise ValueError("metadata is nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValueError(f"metadata is a JSON {type(meta).__name__}, not an object")
    check_json("metadata", meta, 100)
    return meta


def _refuse(why: str) -> Any:
    raise ValueError(why)


def _ids(**ids: Any) -> None:
    for name, value in ids.items():
        if not isinstance(value, str) or len(value) > _MAX_ID or (not value and name != "checkpoint_ns"):
            raise ValueError(f"{name} must be a string of at most {_MAX_ID} characters, got {value!r:.80}")


def _blob(type_: Any, blob: Any) -> None:
    if type_ is not None and (not isinstance(type_, str) or type_ == "pickle"):
        raise ValueError(f"serde type {type_!r:.80} cannot be loaded by AlmaSaver (it never unpickles)")
    if blob is not None and not isinstance(blob, bytes):
        raise ValueError(f"the blob is {type(blob).__name__}, not bytes")


def _check_sqlite(conn: sqlite3.Connection, source: str) -> None:
    """`ValidationError` naming the first row the import could not store, or could not read back."""
    for table, query in (("checkpoints", _CHECKPOINTS), ("writes", _WRITES)):
        for number, row in enumerate(conn.execute(query), 1):
            try:
                if table == "checkpoints":
                    thread, ns, cid, parent, type_, blob, metadata = row
                    _ids(thread_id=thread, checkpoint_ns=ns, checkpoint_id=cid)
                    if parent is not None:
                        _ids(parent_checkpoint_id=parent)
                    _metadata(metadata)
                else:
                    thread, ns, cid, task, path, idx, channel, type_, blob = row
                    _ids(thread_id=thread, checkpoint_ns=ns, checkpoint_id=cid, task_id=task, channel=channel)
                    if not isinstance(path, str) or isinstance(idx, bool) or not isinstance(idx, int):
                        raise ValueError("task_path must be a string and idx an integer")
                _blob(type_, blob)
            except ValueError as exc:
                raise ValidationError(f"{source}: {table} row {number}: {exc}; nothing was imported") from None


def _from_sqlite(saver: AlmaSaver, conn: sqlite3.Connection) -> dict[str, int]:
    pid = saver.project_id
    threads: set[str] = set()
    counts = {"threads": 0, "checkpoints": 0, "writes": 0}
    rows = conn.execute(_CHECKPOINTS)
    for chunk in _chunks(rows):
        ops = []
        for thread, ns, cid, parent, type_, blob, metadata in chunk:
            meta = _metadata(metadata)
            meta[META] = {"thread_id": thread, "ns": ns, "parent": parent, "type": type_}
            namespace = checkpoint_ns(thread, ns)
            blob = saver.packer.seal(type_, blob, location(pid, namespace, cid))  # encrypted when the saver is
            ops.append(PutRecord(Record(pid, namespace, cid, blob, meta)))
            threads.add(thread)
        saver.storage.batch(ops)
        counts["checkpoints"] += len(ops)
    rows = conn.execute(_WRITES)
    for chunk in _chunks(rows):
        ops = []
        for thread, ns, cid, task, path, idx, channel, type_, value in chunk:
            namespace, key = writes_ns(thread, ns, cid), f"{task}/{idx}"
            meta = {"task_id": task, "idx": idx, "channel": channel, "type": type_, "path": path}
            value = saver.packer.seal(type_, value, location(pid, namespace, key))
            ops.append(PutRecord(Record(pid, namespace, key, value, meta)))
        saver.storage.batch(ops)
        counts["writes"] += len(ops)
    counts["threads"] = len(threads)
    return counts


def _from_postgres(saver: AlmaSaver, uri: str) -> dict[str, int]:
    from langgraph.checkpoint.postgres import PostgresSaver

    counts = {"threads": 0, "checkpoints": 0, "writes": 0}
    threads: set[str] = set()
    with PostgresSaver.from_conn_string(uri) as source:
        source.serde = safe_serializer()
        for t in reversed(list(source.list(None))):  # oldest first
            conf = t.config["configurable"]
            parent = (t.parent_config or {}).get("configurable", {}).get("checkpoint_id")
            config: Any = {"configurable": {**conf, "checkpoint_id": parent}}
            saved = saver.put(config, t.checkpoint, t.metadata, t.checkpoint["channel_versions"])
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in t.pending_writes or []:
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                saver.put_writes(saved, writes, task_id)
                counts["writes"] += len(writes)
            counts["checkpoints"] += 1
            threads.add(conf["thread_id"])
    counts["threads"] = len(threads)
    return counts


def _chunks(rows: Any) -> Iterator[list[Any]]:
    while chunk := rows.fetchmany(_CHUNK):
        yield chunk
