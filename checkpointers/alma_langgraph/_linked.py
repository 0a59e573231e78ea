"""`get_tuple` and `list` in one statement on a store with the "linked" capability (PostgreSQL).

A checkpoint record lists the keys of its channel blobs (`META["b"]`, written by `_puts`), so one
`ListLinked` returns the checkpoints with their pending writes (children) and their blobs (references):
one round trip where the generic plan takes a read transaction of three statements. The step runs
alone, so the store runs it in autocommit, without BEGIN and COMMIT. A blob the put could not list (a
delta chain written by another process) or a checkpoint written before the list existed is fetched
by `AlmaSaver._load_plan` in a second step: reads stay exact, only slower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from alma_core.storage import BaseStorage, Linked, ListLinked, ListRecords

from ._layout import BLOBS, CHECKPOINTS, META, WRITES, Plan, checkpoint_ns, thread_prefix
from ._maintenance import writes_ns_of

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["BLOB_KEYS", "get_plan", "linked", "list_plan"]

BLOB_KEYS = "b"  # `META` entry of a checkpoint record: the keys of its blobs (with their delta chains)


def linked(storage: BaseStorage) -> bool:
    """Whether the store answers `ListLinked` in one statement."""
    return "linked" in storage.capabilities


def _with_links(records: ListRecords) -> ListLinked:
    return ListLinked(records, CHECKPOINTS, children=WRITES, refs=BLOBS, refs_path=(META, BLOB_KEYS))


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
    records = ListRecords(
        saver.project_id, namespace, prefix=prefix, where=dict(filter) if filter else None,
        before_key=get_checkpoint_id(before) if before else None, order_by="key", limit=limit,
        keys=(only,) if only else None,
    )  # fmt: skip
    (found,) = yield [_with_links(records)]
    return (yield from _tuples(saver, found))
