"""`saver.list` of a thread without a namespace: every namespace of the thread, newest first, across
them, with `limit` and `before` (read namespace by namespace, so no listing sorts the whole thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver

from alma_langgraph import AlmaSaver


def _fill(saver: Any) -> list[tuple[str, str]]:
    """Three namespaces of one thread, their puts interleaved; (namespace, id) of each put in order."""
    done: list[tuple[str, str]] = []
    configs = {ns: {"configurable": {"thread_id": "t", "checkpoint_ns": ns}} for ns in ("", "a:1", "b:2")}
    for i in range(12):
        ns = ("", "a:1", "b:2")[i % 3]
        cp = empty_checkpoint()
        cp["channel_values"] = {"n": i}
        cp["channel_versions"] = {"n": i + 1}
        configs[ns] = saver.put(configs[ns], cp, {"step": i}, cp["channel_versions"])
        done.append((ns, configs[ns]["configurable"]["checkpoint_id"]))
    return done


def _listed(saver: Any, **kwargs: Any) -> list[tuple[str, str, int]]:
    out = saver.list({"configurable": {"thread_id": "t"}}, **kwargs)
    return [(c.config["configurable"]["checkpoint_ns"], c.config["configurable"]["checkpoint_id"],
             c.checkpoint["channel_values"]["n"]) for c in out]  # fmt: skip


def test_a_thread_lists_across_its_namespaces_like_sqlitesaver(tmp_path: Path) -> None:
    ours = AlmaSaver(tmp_path / "alma.db")
    with SqliteSaver.from_conn_string(str(tmp_path / "lg.db")) as peer:
        ours_puts, peer_puts = _fill(ours), _fill(peer)
        assert len(_listed(ours)) == 12 and [n for *_, n in _listed(ours)] == list(range(11, -1, -1))
        assert [ns for ns, *_ in _listed(ours)] == [ns for ns, *_ in _listed(peer)]
        for limit in (1, 4, 7):
            assert [n for *_, n in _listed(ours, limit=limit)] == [n for *_, n in _listed(peer, limit=limit)]
        middle = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": ours_puts[6][1]}}
        peer_middle = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": peer_puts[6][1]}}
        got = [n for *_, n in _listed(ours, before=middle, limit=4)]
        assert got == [n for *_, n in _listed(peer, before=peer_middle, limit=4)] == [5, 4, 3, 2]
    ours.storage.close()
