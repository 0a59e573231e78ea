"""`get_tuple` and `list` in one statement on a store with the "linked" capability (PostgreSQL, SQLite).

A checkpoint record of format 3 lists the rows it points to (`_rows.POINTED`, written by `_puts`), so one
`ListLinked` returns the checkpoints with their pending writes (children) and those rows (references):
one round trip where the generic plan takes a read transaction of three statements. The step runs
alone, so the store runs it without BEGIN and COMMIT. What a pointed row handed over when it was pruned,
and the blobs of a checkpoint of format 2, are fetched by `_reads.load_plan` in a further step, which
`_layout.run_read` runs with the first again in one read transaction: reads stay exact, only slower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from alma_core.storage import BaseStorage, Linked, ListLinked, ListNamespaces, ListRecords

from ._layout import CHECKPOINTS, META, WRITES, Plan, checkpoint_ns, thread_prefix
from ._maintenance import writes_ns_of
from ._rows import POINTED

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["get_plan", "linked", "list_plan"]

_T = TypeVar("_T")


def linked(storage: BaseStorage) -> bool:
    """Whether the store answers `ListLinked` in one statement."""
    return "linked" in storage.capabilities


def _with_links(records: ListRecords) -> ListLinked:
    return ListLinked(records, CHECKPOINTS, children=WRITES, refs=CHECKPOINTS, refs_path=(META, POINTED))


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
    (found,) = yield [_with_links(records)]
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

    def listing(space: str, prefix: bool) -> ListLinked:
        return _with_links(ListRecords(
            saver.project_id, space, prefix=prefix, where=dict(filter) if filter else None,
            before_key=get_checkpoint_id(before) if before else None, order_by="key", limit=limit,
            keys=(only,) if only else None,
        ))  # fmt: skip

    if config is not None and prefix:
        # A thread's namespaces first, each then read in its index's key order: a listing across a key
        # range of namespaces would sort every row of the thread (16 ms a page at 10k checkpoints).
        (spaces,) = yield [ListNamespaces(saver.project_id, namespace)]
        if not spaces:
            return []
        pages: list[Linked] = yield [listing(space, False) for space in spaces]
        found = pages[0] if len(pages) == 1 else _merged(pages, limit)
    else:
        (found,) = yield [listing(namespace, prefix)]
    return (yield from _tuples(saver, found))


def _merged(pages: list[Linked], limit: int | None) -> Linked:
    """Listings of several namespaces as one: their records newest first (up to `limit`), with what
    they link to."""
    out = Linked(sorted((r for page in pages for r in page.records), key=lambda r: r.key, reverse=True)[:limit])
    for page in pages:
        out.children.update(page.children)
        out.refs.update(page.refs)
    return out
