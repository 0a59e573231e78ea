"""Record listings as SQL on SQLite, and `ListLinked` in one statement: the listing, its records'
children and the records their metadata names, read from one snapshot without BEGIN and COMMIT."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any

from ._base import Linked, ListLinked, ListRecords, Record, expand_linked, linked_spaces
from ._sqlite_tx import MAX_CHAR

__all__ = ["list_linked", "list_sql", "ns_where", "seq_page"]

_ORDER = {"seq": "seq", "key": "key"}
MAX_KEYS = 500  # bound parameters per statement, well under SQLite's limit
_COLUMNS = "project_id, namespace, key, value, metadata, seq, created_at, updated_at, expires_at"
_LIVE = "(r.expires_at IS NULL OR r.expires_at > :now)"
_LIVE_ARG = "(expires_at IS NULL OR expires_at > ?)"
_R_COLUMNS = ", ".join(f"r.{c}" for c in _COLUMNS.split(", "))


def ns_where(project_id: str, namespace: str, prefix: bool) -> tuple[list[str], list[Any]]:
    if prefix:
        return ["project_id = ?", "namespace >= ?", "namespace < ?"], [project_id, namespace, namespace + MAX_CHAR]
    return ["project_id = ?", "namespace = ?"], [project_id, namespace]


def list_sql(op: ListRecords, columns: str | None = None) -> tuple[str, list[Any], dict[str, Any]] | None:
    """`ListRecords` as SQL: (statement, arguments, the `where` entries checked in Python after it);
    None when it matches nothing."""
    if op.namespaces is not None:
        if not op.namespaces:
            return None
        clauses = ["project_id = ?", f"namespace IN ({','.join('?' * len(op.namespaces))})"]
        args: list[Any] = [op.project_id, *op.namespaces]
    else:
        clauses, args = ns_where(op.project_id, op.namespace, op.prefix)
    clauses.append("(expires_at IS NULL OR expires_at > ?)")
    args.append(time.time())
    for column, bound in (("seq", op.before_seq), ("key", op.before_key), ("updated_at", op.updated_before)):
        if bound is not None:
            clauses.append(f"{column} < ?")
            args.append(bound)
    if op.keys is not None:
        if not op.keys:
            return None
        clauses.append(f"key IN ({','.join('?' * len(op.keys))})")
        args.extend(op.keys)
    post_filter: dict[str, Any] = {}
    for key, value in (op.where or {}).items():
        if value is None or isinstance(value, (str, int, float, bool)):
            path = '$."' + str(key).replace('"', '""') + '"'
            if value is None:
                clauses.append("json_type(metadata, ?) = 'null'")
                args.append(path)
            else:
                clauses.append("json_extract(metadata, ?) = ?")
                args.extend([path, value])
        else:
            post_filter[key] = value
    order = "DESC" if op.descending else "ASC"
    value_col = "value" if op.with_values else "NULL"
    columns = columns or f"project_id, namespace, key, {value_col}, metadata, seq, created_at, updated_at, expires_at"
    by = f"{_ORDER[op.order_by]} {order}"
    if op.per_namespace and op.prefix and op.namespaces is None and op.limit is not None and not post_filter:
        return (*_per_namespace(op, clauses[3:], args[3:], columns, by), post_filter)
    if op.order_by == "seq" and op.descending and op.limit is not None and not post_filter:
        return (*seq_page(columns, " AND ".join(clauses), args, op.limit, op.offset), post_filter)
    sql = f"SELECT {columns} FROM records WHERE {' AND '.join(clauses)} ORDER BY {by}"
    if not post_filter:
        sql += " LIMIT ? OFFSET ?"
        args.extend([-1 if op.limit is None else op.limit, op.offset])
    return sql, args, post_filter


def seq_page(columns: str, where: str, args: list[Any], limit: int, offset: int = 0) -> tuple[str, list[Any]]:
    """The records matching `where`, newest seq first, `limit` of them after `offset`, in one statement.
    `records_seq` holds sequenced records only (seq > 0, migration 7), so the page is read in its order
    first; the unsequenced records (seq 0: they come last) are read after it, only when it held fewer
    than the page needs (the compound stops at its LIMIT): a namespace of many sequenced records is never
    scanned. (A listing without a limit, or oldest first, reads every matching row and sorts them.)"""
    sequenced = f"SELECT {columns} FROM records WHERE {where} AND seq > 0 ORDER BY seq DESC LIMIT ?"
    unsequenced = f"SELECT {columns} FROM records WHERE {where} AND seq = 0"
    sql = f"SELECT * FROM ({sequenced}) UNION ALL SELECT * FROM ({unsequenced}) LIMIT ? OFFSET ?"
    return sql, [*args, limit + offset, *args, limit, offset]


def _per_namespace(op: ListRecords, clauses: list[str], args: list[Any], columns: str, by: str) -> tuple[str, list]:
    """`ListRecords.per_namespace`: the prefix's namespaces by a skip scan (one index seek each), each
    one's first `limit + offset` rowids in its index's order, then only those rows sorted."""
    assert op.limit is not None
    hi = op.namespace + MAX_CHAR
    where = " AND ".join(["project_id = ?", "namespace = ns.name", *clauses])
    sql = f"""WITH RECURSIVE ns(name) AS (
            SELECT min(namespace) FROM records WHERE project_id = ? AND namespace >= ? AND namespace < ?
            UNION ALL
            SELECT (SELECT min(namespace) FROM records WHERE project_id = ? AND namespace > ns.name AND namespace < ?)
              FROM ns WHERE ns.name IS NOT NULL)
        SELECT {columns} FROM records WHERE rowid IN (
            SELECT s.rowid FROM ns JOIN records AS s ON s.rowid IN (
                SELECT rowid FROM records WHERE {where} ORDER BY {by} LIMIT ?) WHERE ns.name IS NOT NULL)
        ORDER BY {by} LIMIT ? OFFSET ?"""
    pid = op.project_id
    return sql, [pid, op.namespace, hi, pid, hi, pid, *args, op.limit + op.offset, op.limit, op.offset]


def list_linked(conn: Any, op: ListLinked, list_records: Callable[[ListRecords], list[Record]]) -> Linked:
    """One statement: the listing as a subquery, then its records' children and references joined to it
    (each row tagged 0, 1 or 2). A listing whose `where` is checked in Python takes its two steps."""
    if _one_record(op.records):
        return _one_linked(conn, op)
    listing = list_sql(op.records, "rowid AS rid, project_id, namespace, key, metadata, seq")
    if listing is None:
        return Linked()
    sql, args, post_filter = listing
    if post_filter:
        plan = expand_linked(op)
        ops = next(plan)
        try:
            while True:
                ops = plan.send([list_records(o) for o in ops])
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
    if op.children is not None or op.refs is not None:  # (in `_statement`'s order)
        args += [op.base, op.base + MAX_CHAR, len(op.base) + 1, time.time()]
    if op.children is not None:
        args.append(op.children)
    if op.refs is not None:
        args += [op.refs, "$" + "".join('."' + part.replace('"', '""') + '"' for part in op.refs_path)]
    statement = _statement(sql, op.children is not None, op.refs is not None, op.records.with_values)
    rows = conn.execute(statement, args).fetchall()
    found = Linked()
    column = 3 if op.records.order_by == "key" else 6  # (tag, project_id, namespace, key, value, metadata, seq)
    heads = [row for row in rows if row[0] == 0]
    if len(heads) > 1:
        heads.sort(key=lambda row: row[column], reverse=op.records.descending)
    found.records = [_record(row) for row in heads]
    for row in sorted((row for row in rows if row[0] == 1), key=lambda row: row[3]):
        found.children.setdefault(row[2], []).append(_record(row))
    found.refs = {(row[2], row[3]): _record(row) for row in rows if row[0] == 2}
    return found


def _one_record(op: ListRecords) -> bool:
    """A listing of at most one record of one namespace: its latest by key, or one key (a checkpoint's get)."""
    one = (op.limit == 1 and op.keys is None) or (op.limit is None and op.keys is not None and len(op.keys) == 1)
    return (
        one and not op.prefix and op.namespaces is None and op.where is None and op.before_seq is None
        and op.before_key is None and op.updated_before is None and op.offset == 0 and op.order_by == "key"
        and op.descending and op.with_values
    )  # fmt: skip


_ONE = f"SELECT {_COLUMNS} FROM records WHERE project_id = ? AND namespace = ? AND " + _LIVE_ARG


def _one_linked(conn: Any, op: ListLinked) -> Linked:
    """`_one_record`'s listing with its children and references: two or three statements on the primary
    key in one read transaction (cheaper on SQLite than the joined statement, whose fixed cost a single
    record does not spread)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        found = _one_read(conn, op)
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")
    return found


def _one_read(conn: Any, op: ListLinked) -> Linked:
    listing, now = op.records, time.time()
    pid, namespace = listing.project_id, listing.namespace
    if listing.keys is not None:
        head = conn.execute(_ONE + " AND key = ?", (pid, namespace, now, listing.keys[0])).fetchone()
    else:
        head = conn.execute(_ONE + " ORDER BY key DESC LIMIT 1", (pid, namespace, now)).fetchone()
    if head is None:
        return Linked()
    found = Linked([_record((0, *head))])
    children, refs, keys = linked_spaces(op, found.records[0])
    if children is not None:
        kids = conn.execute(_ONE + " ORDER BY key", (pid, children, now)).fetchall()
        if kids:
            found.children[children] = [_record((1, *kid)) for kid in kids]
    for i in range(0, len(keys) if refs is not None else 0, MAX_KEYS):
        chunk = keys[i : i + MAX_KEYS]
        rows = conn.execute(f"{_ONE} AND key IN ({','.join('?' * len(chunk))})", (pid, refs, now, *chunk))
        found.refs.update(((r[1], r[2]), _record((2, *r))) for r in rows)
    return found


@functools.lru_cache(maxsize=256)
def _statement(listing: str, children: bool, refs: bool, with_values: bool) -> str:
    """The statement of a `ListLinked` (built once per listing's SQL): the listing finds rows (their
    rowids, keys and metadata) and each branch reads what it returns from the table."""
    value = "r.value" if with_values else "NULL"
    parts = [f"SELECT 0, {_R_COLUMNS.replace('r.value', value)} FROM p JOIN records AS r ON r.rowid = p.rid"]
    if children:
        parts.append(
            f"""SELECT 1, {_R_COLUMNS} FROM p JOIN records AS r ON r.project_id = p.project_id
                 AND r.namespace = :children || substr(p.namespace, :n) || '/' || p.key
                WHERE p.namespace >= :base AND p.namespace < :hi AND {_LIVE}"""
        )
    if refs:
        parts.append(
            f"""SELECT 2, {_R_COLUMNS} FROM (
                  SELECT DISTINCT p.project_id AS pid, :refs || substr(p.namespace, :n) AS ns, j.value AS k
                    FROM p, json_each(p.metadata, :path) AS j
                   WHERE p.namespace >= :base AND p.namespace < :hi AND j.type = 'text' AND j.value != ''
                ) AS w JOIN records AS r ON r.project_id = w.pid AND r.namespace = w.ns AND r.key = w.k
                WHERE {_LIVE}"""
        )
    return _numbered(f"WITH p AS ({listing}) " + " UNION ALL ".join(parts), children, refs)


def _numbered(sql: str, children: bool, refs: bool) -> str:
    """`sql` with its parameters numbered: the listing's `?` first (`?1`, `?2`...), then the named ones
    in the order `list_linked` appends them (positional binding, no dict per call)."""
    pieces = sql.split("?")
    sql = "".join(piece + f"?{n}" for n, piece in enumerate(pieces[:-1], start=1)) + pieces[-1]
    names = [*(["base", "hi", "n", "now"] if children or refs else []), *(["children"] if children else []),
             *(["refs", "path"] if refs else [])]  # fmt: skip
    numbers = {name: f"?{i}" for i, name in enumerate(names, start=len(pieces))}
    return re.sub(r":(base|hi|now|n|children|refs|path)\b", lambda m: numbers[m.group(1)], sql)


def _record(row: tuple[Any, ...]) -> Record:
    _, project_id, namespace, key, value, metadata, seq, created, updated, expires = row
    return Record(project_id, namespace, key, value, _loads(metadata), seq, created, updated, expires)


def _loads(text: str) -> Any:
    """JSON metadata: orjson where it is installed (it comes with langchain-core: ~5 us a record less
    in a checkpoint listing), the standard parser for what orjson refuses (NaN, lone surrogates) and for
    a number of 19+ digits: orjson reads an integer beyond 64 bits as a float, silently. A number token
    follows ":", "," or "[" (JSON's grammar, metadata being an object), so a run of digits inside a
    string (a LangGraph channel version in a checkpoint's pointers has 32) keeps the fast parser."""
    if _ORJSON is not None and _LONG_NUMBER.search(text) is None:
        try:
            return _ORJSON(text)
        except ValueError:
            pass
    return json.loads(text)


_LONG_NUMBER = re.compile(r"[:,\[][ \t\n\r]*-?[0-9]{19}")  # (JSON's whitespace; its digits are ASCII)


def _orjson() -> Callable[[str], Any] | None:
    try:
        import orjson
    except ImportError:  # pragma: no cover - optional
        return None
    return orjson.loads  # type: ignore[no-any-return]


_ORJSON = _orjson()
