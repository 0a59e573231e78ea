"""Channel values stored once per channel version, message lists as deltas: every checkpoint of a thread
reads back exactly what SqliteSaver reads back, in a fraction of the bytes, through every operation
that deletes, copies or prunes, across processes, and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest_pg import drop_schemas, new_schema
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from alma_core import StorageError
from alma_core.storage import DeleteRecords, ListRecords, SQLiteStorage
from alma_langgraph import AlmaSaver, import_checkpoints
from alma_langgraph._channels import SNAPSHOT_EVERY
from alma_langgraph._rows import ROWS, pointers, unpack_row


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: list[str]  # a plain list channel (last value wins): it may shrink


def _reply(state: Chat) -> dict[str, Any]:
    last = state["messages"][-1]
    update: dict[str, Any] = {"messages": [AIMessage(f"re: {last.content}", id=f"ai-{len(state['messages'])}")]}
    if "edit" in str(last.content):  # replace an earlier message by id: the list is no longer an extension
        update["messages"].append(AIMessage("edited", id="ai-2"))
    if "shrink" in str(last.content):
        update["notes"] = ["short"]
    else:
        update["notes"] = [*state.get("notes", []), str(last.content)[:10]]
    return update


def _graph(saver: Any) -> Any:
    builder = StateGraph(Chat)
    builder.add_node("reply", _reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


def _chat(saver: Any, turns: range, thread: str = "chat") -> None:
    graph = _graph(saver)
    for turn in turns:
        text = f"turn {turn} " + ("edit" if turn == 7 else "shrink" if turn == 11 else "") + " q" * 200
        graph.invoke({"messages": [HumanMessage(text, id=f"h-{turn}")]}, _cfg(thread))


def _cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def _history(saver: Any, thread: str = "chat") -> list[tuple[str, dict[str, Any]]]:
    states = _graph(saver).get_state_history(_cfg(thread))
    return [(s.config["configurable"]["checkpoint_id"], s.values) for s in states]


def _values(saver: Any, thread: str = "chat") -> list[dict[str, Any]]:
    return [values for _, values in _history(saver, thread)]


def _blobs(saver: AlmaSaver, thread: str = "chat") -> list[Any]:
    return saver.storage.execute(ListRecords(saver.project_id, f"lgb/{thread}/", prefix=True))


def _entries(saver: AlmaSaver, thread: str = "chat") -> list[tuple[str, tuple[str, ...]]]:
    """(blob key, delta chain) of every stored channel value of a thread: in its checkpoint rows (format
    3) and in blob records."""
    found = [(b.key, tuple(b.metadata.get("d", ()))) for b in _blobs(saver, thread)]
    for r in saver.storage.execute(ListRecords(saver.project_id, f"lg/{thread}/", prefix=True)):
        if r.metadata["__lg"].get("v") == ROWS:
            found.extend((key, e.chain) for key, e in unpack_row(saver, r)[1].items())
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What SqliteSaver reads back at every checkpoint of the 40-turn chat."""
    conn = sqlite3.connect(tmp_path_factory.mktemp("ref") / "lg.db", check_same_thread=False)
    saver = SqliteSaver(conn)
    _chat(saver, range(30))
    found = _values(saver)
    conn.close()
    return found


@pytest.fixture(params=["sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlmaSaver]:
    if request.param == "sqlite":
        with AlmaSaver.from_conn_string(tmp_path / "alma.db") as found:
            yield found
        return
    from alma_core.storage.postgres import PostgresStorage

    uri, schema = request.getfixturevalue("pg_uri"), new_schema()
    storage = PostgresStorage(uri, schema=schema, min_pool_size=0, max_pool_size=2)
    yield AlmaSaver(storage)
    storage.close()
    drop_schemas(uri, schema)


def test_every_checkpoint_reads_back_what_sqlite_saver_reads(saver: AlmaSaver, reference: list[Any]) -> None:
    _chat(saver, range(30))
    assert _values(saver) == reference
    deltas = [chain for _, chain in _entries(saver) if chain]
    assert len(deltas) > 40  # the message list grew by deltas...
    assert max(len(chain) for chain in deltas) == SNAPSHOT_EVERY  # ...in chains of bounded length
    assert not _blobs(saver)  # each in the checkpoint row that introduced it


def test_a_chat_takes_a_fraction_of_sqlite_savers_bytes(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "lg.db", check_same_thread=False)
    _chat(SqliteSaver(conn), range(30))
    theirs = sum(n for (n,) in conn.execute("SELECT length(checkpoint) + length(metadata) FROM checkpoints"))
    with AlmaSaver.from_conn_string(tmp_path / "alma.db") as saver:
        saver.packer.compress_above = None  # raw bytes against raw bytes
        _chat(saver, range(30))
        ours = saver.storage._conn.execute(  # type: ignore[attr-defined]
            "SELECT sum(length(value) + length(metadata)) FROM records WHERE namespace NOT LIKE 'lgw/%'"
        ).fetchone()[0]
    assert ours * 5 < theirs, (ours, theirs)


def test_a_new_process_continues_a_thread(tmp_path: Path, reference: list[Any]) -> None:
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as first:
        _chat(first, range(20))
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as second:  # remembers nothing of the thread
        _chat(second, range(20, 30))
        assert _values(second) == reference
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as third:
        assert _values(third) == reference


def test_a_thread_in_the_old_format_continues(tmp_path: Path, reference: list[Any]) -> None:
    """Whole-checkpoint records (imported from SqliteSaver, or written before blobs) stay readable, and a
    checkpoint put after them stores every value it needs."""
    conn = sqlite3.connect(tmp_path / "lg.db", check_same_thread=False)
    _chat(SqliteSaver(conn), range(20))
    conn.close()
    with AlmaSaver.from_conn_string(tmp_path / "alma.db") as saver:
        import_checkpoints(saver, tmp_path / "lg.db")
        assert not _blobs(saver)
        _chat(saver, range(20, 30))
        assert _values(saver) == reference


def test_delete_thread_and_copy_thread_cover_the_blobs(saver: AlmaSaver, reference: list[Any]) -> None:
    _chat(saver, range(30))
    saver.copy_thread("chat", "copy")
    saver.delete_thread("chat")
    assert not _entries(saver, "chat")
    assert _values(saver, "copy") == reference
    _chat(saver, range(30, 32), thread="copy")
    assert len(_values(saver, "copy")) == len(reference) + 6


def test_prune_keep_latest_keeps_only_the_blobs_the_latest_needs(saver: AlmaSaver, reference: list[Any]) -> None:
    _chat(saver, range(30))
    before = len(_entries(saver))
    saver.prune(["chat"], strategy="keep_latest")
    assert _values(saver) == reference[:1]
    channels = len(_graph(saver).channels)
    assert before > 100 and len(_entries(saver)) <= channels + 2 * SNAPSHOT_EVERY  # two lists' chains at most
    assert _blobs(saver)  # the pruned rows handed the entries the latest needs over
    _chat(saver, range(30, 32))  # the thread goes on from what was kept
    assert _values(saver)[0]["messages"][: len(reference[0]["messages"])] == reference[0]["messages"]


def test_delete_for_runs_collects_blobs_no_checkpoint_needs(tmp_path: Path) -> None:
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as saver:
        graph = _graph(saver)
        for turn in range(6):
            run = "keep" if turn < 3 else "drop"
            graph.invoke({"messages": [HumanMessage(f"t{turn}")]}, {**_cfg("chat"), "metadata": {"run_id": run}})
        runs = {t.config["configurable"]["checkpoint_id"]: t.metadata.get("run_id") for t in saver.list(_cfg("chat"))}
        kept = [values for cid, values in _history(saver) if runs[cid] == "keep"]
        assert 0 < len(kept) < len(runs)
        before = {key for key, _ in _entries(saver)}
        saver.delete_for_runs(["drop"])
        assert _values(saver) == kept
        after = {key for key, _ in _entries(saver)}
        assert after < before
        _chat(saver, range(8, 10))
        assert [m.content for m in _values(saver)[0]["messages"]][-1].startswith("re: turn 9")


def test_a_missing_chain_blob_is_a_typed_error(tmp_path: Path) -> None:
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as saver:
        _chat(saver, range(5))
        (head,) = saver.storage.execute(ListRecords(saver.project_id, "lg/chat/", order_by="key", limit=1))
        key = next(k for k, e in unpack_row(saver, head)[1].items() if e.chain)
        snapshot = pointers(head.metadata["__lg"])[1][key.split("/", 1)[0]][0]  # the chain's first entry's row
        saver.storage.execute(DeleteRecords(saver.project_id, head.namespace, (snapshot,)))  # the row holding it
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as saver, pytest.raises(StorageError, match="incomplete"):
        _values(saver)


def test_erasing_a_thread_removes_its_blobs(tmp_path: Path) -> None:
    from alma_langgraph._layout import erase_threads

    storage = SQLiteStorage(tmp_path / "a.db")
    saver = AlmaSaver(storage)
    _chat(saver, range(3))
    records = storage.execute(ListRecords("default", "lg/", prefix=True, with_values=False))
    storage.batch(erase_threads("default", records))
    assert not storage.execute(ListRecords("default", "lg", prefix=True))
    storage.close()
