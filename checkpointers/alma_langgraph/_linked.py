"""`get_tuple` and `list`: one `ListLinked` (one statement on a store with the "linked" capability:
PostgreSQL, SQLite), then the checkpoints opened. One path on every backend: a store without the
capability answers the same op with `expand_linked`'s `ListRecords`.

A checkpoint record of format 3 lists the rows it points to (`_rows.POINTED`, written by `_puts`), so one
`ListLinked` returns the checkpoints with their pending writes (children) and those rows (references):
one round trip where a generic plan takes a read transaction of three statements. `read` runs it alone
(the store runs it without BEGIN and COMMIT) and opens the checkpoints from what it returned
(`_reads.load_linked`: no plan machinery). What a pointed row handed over when it was pruned, and the
blobs of older formats, are fetched by `_reads.load_plan` in further steps: then the whole plan runs
again in one read transaction, so reads stay exact, only slower.
A thread listed without a namespace is one listing too (`ListRecords.per_namespace`: each of the
thread's namespaces read in its index's key order, then merged; no sort of the whole thread).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from alma_core.storage import BaseStorage, Linked, ListLinked, ListRecords, expand_linked

from ._layout import CHECKPOINTS, META, WRITES, Plan, checkpoint_ns, run, thread_prefix
from ._maintenance import writes_ns_of
from ._reads import load_linked
from ._rows import POINTED

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["get_op", "get_plan", "linked", "list_op", "list_plan", "read", "read_linked"]


def linked(storage: BaseStorage) -> bool:
    """Whether the store answers `ListLinked` in one statement."""
    return "linked" in storage.capabilities


def _with_links(records: ListRecords) -> ListLinked:
    return ListLinked(records, CHECKPOINTS, children=WRITES, refs=CHECKPOINTS, refs_path=(META, POINTED))


def read_linked(storage: BaseStorage, op: ListLinked) -> Plan[Linked]:
    """`op` as one step where the store has the "linked" capability, else `expand_linked`'s steps."""
    if linked(storage):
        (found,) = yield [op]
        return found  # type: ignore[no-any-return]
    return (yield from expand_linked(op))


def _listed(saver: AlmaSaver, found: Linked, checkpoints: list[Any]) -> list[CheckpointTuple]:
    listed = zip(found.records, checkpoints, strict=True)
    if not found.children:  # (no pending writes anywhere: no namespace to build per checkpoint)
        return [saver._tuple(r, cp, ()) for r, cp in listed]
    return [saver._tuple(r, cp, found.children.get(writes_ns_of(r), ())) for r, cp in listed]


def _tuples(saver: AlmaSaver, found: Linked) -> Plan[list[CheckpointTuple]]:
    checkpoints = load_linked(saver, found.records, found.refs)  # no further step (the common case)
    if checkpoints is None:
        checkpoints, _ = yield from saver._load_plan(found.records, have=found.refs)
    return _listed(saver, found, checkpoints)


def read(
    saver: AlmaSaver, op: ListLinked | None, plan: Callable[[], Plan[list[CheckpointTuple]]]
) -> list[CheckpointTuple]:
    """What `plan` returns, without its machinery where one step answers it (the common case: one
    `ListLinked` alone, one statement without BEGIN, every entry in the rows it returned); else `plan`
    whole in one read transaction (its steps must see one snapshot)."""
    if op is None:
        return []
    if linked(saver.storage):
        found: Linked = saver.storage.execute(op)
        checkpoints = load_linked(saver, found.records, found.refs)
        if checkpoints is not None:
            return _listed(saver, found, checkpoints)
    return run(saver.storage, plan(), write=False)


def get_op(saver: AlmaSaver, config: RunnableConfig) -> ListLinked:
    """The read of `get_tuple`: the checkpoint of `config` (or its namespace's latest) with what it links to."""
    conf = config["configurable"]
    namespace = checkpoint_ns(str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or ""))
    checkpoint_id = get_checkpoint_id(config)
    if checkpoint_id:
        return _with_links(ListRecords(saver.project_id, namespace, keys=(checkpoint_id,)))
    return _latest(saver.project_id, namespace)


@functools.lru_cache(maxsize=4096)
def _latest(project_id: str, namespace: str) -> ListLinked:
    """The read of a namespace's latest checkpoint (immutable: built once per namespace, not per read)."""
    return _with_links(ListRecords(project_id, namespace, order_by="key", limit=1))


def get_plan(saver: AlmaSaver, config: RunnableConfig) -> Plan[list[CheckpointTuple]]:
    """`get_tuple` as a plan: [the tuple] or []."""
    found = yield from read_linked(saver.storage, get_op(saver, config))
    return (yield from _tuples(saver, found))


def list_op(
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
    project_id: str,
) -> ListLinked | None:
    """The read of `list` (None: it reads nothing)."""
    only: str | None = None
    if config is None:
        namespace, prefix = CHECKPOINTS, True
    else:
        conf = config["configurable"]
        only = get_checkpoint_id(config)
        ns = conf.get("checkpoint_ns")
        thread_id = str(conf["thread_id"])
        if ns is None:
            namespace, prefix = thread_prefix(CHECKPOINTS, thread_id), True
        else:
            namespace, prefix = checkpoint_ns(thread_id, ns), False
    if limit is not None and limit <= 0:
        return None
    return _with_links(ListRecords(
        project_id, namespace, prefix=prefix, where=dict(filter) if filter else None,
        before_key=get_checkpoint_id(before) if before else None, order_by="key", limit=limit,
        keys=(only,) if only else None, per_namespace=config is not None and prefix,
    ))  # fmt: skip


def list_plan(saver: AlmaSaver, op: ListLinked | None) -> Plan[list[CheckpointTuple]]:
    """`list` as a plan (`op`: `list_op`'s)."""
    if op is None:
        return []
    found = yield from read_linked(saver.storage, op)
    return (yield from _tuples(saver, found))
