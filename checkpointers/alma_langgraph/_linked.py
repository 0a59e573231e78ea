"""`get_tuple` and `list`: one `ListLinked` (one statement on a store with the "linked" capability:
PostgreSQL, SQLite), then the checkpoints opened (`_reads.load_plan`). One path on every backend: a store
without the capability answers the same op with `expand_linked`'s `ListRecords`.

A checkpoint record of format 3 lists the rows it points to (`_rows.POINTED`, written by `_puts`), so one
`ListLinked` returns the checkpoints with their pending writes (children) and those rows (references):
one round trip where the generic plan takes a read transaction of three statements. The step runs
alone, so the store runs it without BEGIN and COMMIT. What a pointed row handed over when it was pruned,
and the blobs of a checkpoint of format 2, are fetched by `_reads.load_plan` in a further step, which
`_layout.run_read` runs with the first again in one read transaction: reads stay exact, only slower.
A thread listed without a namespace is one listing too (`ListRecords.per_namespace`: each of the
thread's namespaces read in its index's key order, then merged; no sort of the whole thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from alma_core.storage import BaseStorage, Linked, ListLinked, ListRecords, expand_linked

from ._layout import CHECKPOINTS, META, WRITES, Plan, checkpoint_ns, thread_prefix
from ._maintenance import writes_ns_of
from ._rows import POINTED

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["get_plan", "linked", "list_plan", "read_linked"]


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


def _tuples(saver: AlmaSaver, found: Linked) -> Plan[list[CheckpointTuple]]:
    checkpoints, _ = yield from saver._load_plan(found.records, have=found.refs)
    listed = zip(found.records, checkpoints, strict=True)
    return [saver._tuple(r, cp, found.children.get(writes_ns_of(r), [])) for r, cp in listed]


def get_plan(saver: AlmaSaver, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
    conf = config["configurable"]
    namespace = checkpoint_ns(str(conf["thread_id"]), str(conf.get("checkpoint_ns", "") or ""))
    checkpoint_id = get_checkpoint_id(config)
    if checkpoint_id:
        records = ListRecords(saver.project_id, namespace, keys=(checkpoint_id,))
    else:
        records = ListRecords(saver.project_id, namespace, order_by="key", limit=1)
    found = yield from read_linked(saver.storage, _with_links(records))
    tuples = yield from _tuples(saver, found)
    return tuples[0] if tuples else None


def list_plan(
    saver: AlmaSaver,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> Plan[list[CheckpointTuple]]:
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
        return []

    op = _with_links(ListRecords(
        saver.project_id, namespace, prefix=prefix, where=dict(filter) if filter else None,
        before_key=get_checkpoint_id(before) if before else None, order_by="key", limit=limit,
        keys=(only,) if only else None, per_namespace=config is not None and prefix,
    ))  # fmt: skip
    found = yield from read_linked(saver.storage, op)
    return (yield from _tuples(saver, found))
