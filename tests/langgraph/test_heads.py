"""`get_tuple` of a thread's latest checkpoint answered from `_heads` is exactly what a re-read returns:
another connection's commit, this saver's own puts and writes are seen at once, and a caller that
mutates what it got changes nothing for the next caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from alma_core.storage import SQLiteStorage, StoreVersion
from alma_langgraph import AlmaSaver, AsyncAlmaSaver

CFG: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def _put(saver: AlmaSaver, config: Any, value: Any) -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = {"value": value}
    cp["channel_versions"] = {"value": saver.get_next_version(None, None)}
    return saver.put(config, cp, {"step": 1, "nested": {"n": [1]}}, cp["channel_versions"])


def test_a_kept_head_is_never_a_callers_object(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db")
    _put(saver, CFG, {"items": ["a"] * 300})
    first = saver.get_tuple(CFG)
    assert first is not None and saver.heads._kept  # kept
    first.checkpoint["channel_values"]["value"]["items"].append("mutated")
    first.metadata["nested"]["n"].append(2)  # type: ignore[typeddict-item]
    first.checkpoint["channel_versions"]["value"] = "x"
    again = saver.get_tuple(CFG)
    assert again is not None and again.checkpoint["channel_values"]["value"]["items"] == ["a"] * 300
    assert again.metadata["nested"] == {"n": [1]} and again.checkpoint["channel_versions"]["value"] != "x"  # type: ignore[typeddict-item]
    assert again == AlmaSaver(tmp_path / "a.db", head_cache=0).get_tuple(CFG)  # what a re-read returns


def test_a_kept_head_goes_with_any_commit_from_anywhere(tmp_path: Path) -> None:
    saver, other = AlmaSaver(tmp_path / "a.db"), AlmaSaver(tmp_path / "a.db")  # two connections
    config = _put(saver, CFG, "one")
    assert saver.get_tuple(CFG).checkpoint["channel_values"]["value"] == "one"  # type: ignore[union-attr]
    _put(other, config, "two")  # another connection
    assert saver.get_tuple(CFG).checkpoint["channel_values"]["value"] == "two"  # type: ignore[union-attr]
    latest = saver.get_tuple(CFG)
    assert latest is not None
    saver.put_writes(latest.config, [("value", "w")], "task")  # this saver's own write
    assert saver.get_tuple(CFG).pending_writes == [("task", "value", "w")]  # type: ignore[union-attr]
    other.delete_thread("t")
    assert saver.get_tuple(CFG) is None


def test_the_cache_is_off_where_the_store_cannot_tell_its_version(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "a.db", check_same_thread=False)
    storage = SQLiteStorage(conn)  # a connection passed in: SQL on it outside the store is not seen
    assert storage.execute(StoreVersion()) is None
    saver = AlmaSaver(storage)
    _put(saver, CFG, "one")
    assert saver.get_tuple(CFG) is not None and not saver.heads._kept and saver.heads.size == 0
    assert AlmaSaver(tmp_path / "b.db", head_cache=0).heads.version(saver) is None


async def test_aget_tuple_keeps_heads_with_the_same_guarantees(tmp_path: Path) -> None:
    saver, other = AsyncAlmaSaver(tmp_path / "a.db"), AlmaSaver(tmp_path / "a.db")  # two connections
    config = _put(saver, CFG, {"items": ["a"]})
    first = await saver.aget_tuple(CFG)
    assert first is not None and saver.heads._kept  # kept by the async read
    first.checkpoint["channel_values"]["value"]["items"].append("mutated")
    again = await saver.aget_tuple(CFG)
    assert again is not None and again.checkpoint["channel_values"]["value"] == {"items": ["a"]}  # a fresh copy
    assert again == AlmaSaver(tmp_path / "a.db", head_cache=0).get_tuple(CFG)  # what a re-read returns
    _put(other, config, "two")  # another connection's commit
    assert (await saver.aget_tuple(CFG)).checkpoint["channel_values"]["value"] == "two"  # type: ignore[union-attr]
    latest = await saver.aget_tuple(CFG)
    assert latest is not None
    await saver.aput_writes(latest.config, [("value", "w")], "task")  # this saver's own write
    assert (await saver.aget_tuple(CFG)).pending_writes == [("task", "value", "w")]  # type: ignore[union-attr]
    other.delete_thread("t")
    assert await saver.aget_tuple(CFG) is None


async def test_aget_tuple_keeps_nothing_on_a_passed_in_connection_or_postgresql(
    tmp_path: Path, pg_database: str
) -> None:
    import sqlite3

    saver = AlmaSaver(SQLiteStorage(sqlite3.connect(tmp_path / "a.db", check_same_thread=False)))
    _put(saver, CFG, "one")
    assert (await saver.aget_tuple(CFG)) is not None and not saver.heads._kept and saver.heads.size == 0
    async with AsyncAlmaSaver.from_conn_string(pg_database) as pg:
        await pg.setup()
        _put(pg, CFG, "one")
        assert pg.heads.size == 0
        assert (await pg.aget_tuple(CFG)).checkpoint["channel_values"]["value"] == "one"  # type: ignore[union-attr]
        assert not pg.heads._kept
