"""`get_tuple` and `list` open checkpoints from one `ListLinked` without the plan machinery
(`_reads.load_linked`) when every entry is in the rows it returned, and hand over to the plan
(`load_plan`, in one read transaction) when one is not: both give the same checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_channel_blobs import _chat

from alma_langgraph import AlmaSaver, _linked, _reads
from alma_langgraph._layout import run


def _planned(saver: AlmaSaver, config: Any) -> list[Any]:
    """Every checkpoint of the thread as the plan reads it (`load_plan`), in one read transaction."""
    op = _linked.list_op(config, None, None, None, saver.project_id)
    return run(saver.storage, _linked.list_plan(saver, op), write=False)


def test_reads_without_the_plan_agree_with_it_and_hand_over_when_rows_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saver = AlmaSaver(tmp_path / "alma.db", head_cache=0)
    _chat(saver, range(24))  # message deltas in chains across rows, a list channel that shrinks
    config = {"configurable": {"thread_id": "chat"}}
    expected = _planned(saver, config)
    assert len(expected) > 40
    planned: list[int] = []
    load_plan = _reads.load_plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        planned.append(1)
        return load_plan(saver, *args, **kwargs)

    monkeypatch.setattr(saver, "_load_plan", counted)
    assert list(saver.list(config)) == expected
    assert [saver.get_tuple(t.config) for t in expected] == expected
    assert saver.get_tuple(config) == expected[0]
    assert not planned  # every entry was in the rows read with the checkpoints
    saver.prune(["chat"], strategy="keep_latest")  # the rows the head points to hand their entries over
    latest = saver.get_tuple(config)
    assert planned and latest is not None
    assert latest.checkpoint["channel_values"] == expected[0].checkpoint["channel_values"]
    assert latest.pending_writes == expected[0].pending_writes
    assert list(saver.list(config)) == [latest]
    saver.storage.close()
