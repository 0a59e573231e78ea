"""Background extraction with a hung extractor: `flush` gives up with a `FlushTimeout` naming what is
pending and loses nothing; deletes never wait on the extractor, and what they delete never reaches the graph.

The extractor here is real (the rules) behind a gate (a `threading.Event`) the test opens: nothing waits
on time except the timeouts under test, whose expiry is certain while the gate is shut."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alma_core import ALMA, AlmaError, FlushTimeout
from alma_core._config import parse_config

LONG = 60.0  # only a real hang reaches it


class Gate:
    """The rule extractor, held at a gate: `entered` is set once a memory is being extracted."""

    def __init__(self, rules: Any) -> None:
        self.rules, self.entered, self.opened = rules, threading.Event(), threading.Event()

    def extract(self, text: str) -> Any:
        self.entered.set()
        assert self.opened.wait(LONG), "the test never opened the gate"
        return self.rules.extract(text)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[ALMA, Gate]]:
    config = parse_config({"project_id": "g", "embedding_provider": "mock",
                           "graph": {"backend": "memory", "extraction": "background"}})  # fmt: skip
    alma = ALMA(config=config, storage=tmp_path / "alma.db")
    gate = Gate(alma.graph.extractor)
    alma.graph.extractor = gate
    yield alma, gate
    gate.opened.set()
    alma.close()


def test_flush_times_out_naming_the_pending_memories_and_loses_none(gated: tuple[ALMA, Gate]) -> None:
    alma, gate = gated
    first = alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    assert gate.entered.wait(LONG)  # the worker holds `first`
    queued = [alma.add_domain_knowledge("helena", "people", text)
              for text in ("Bob lives in Paris.", "Carol works for Globex.")]  # fmt: skip
    with pytest.raises(FlushTimeout) as caught:
        alma.graph.flush(timeout=0.05)
    pending = [first.id, *(m.id for m in queued)]
    assert caught.value.pending == pending and alma.graph.pending() == pending
    assert isinstance(caught.value, AlmaError) and isinstance(caught.value, TimeoutError)
    assert "1 being extracted, 2 queued" in str(caught.value) and first.id in str(caught.value)
    assert alma.graph.store.find_entities(limit=None) == []  # nothing half-written
    gate.opened.set()
    alma.graph.flush(timeout=LONG)
    store = alma.graph.store
    owners = [store.get_entity(e).memory_ids for e in ("alice", "paris", "globex")]  # type: ignore[union-attr]
    assert owners == [[first.id], [queued[0].id], [queued[1].id]]
    assert alma.graph.pending() == [] and alma.graph.errors == 0


def test_deletes_do_not_wait_on_a_hung_extractor_and_what_they_delete_never_reaches_the_graph(
    gated: tuple[ALMA, Gate],
) -> None:
    alma, gate = gated
    busy = alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    assert gate.entered.wait(LONG)
    queued = alma.add_domain_knowledge("helena", "people", "Bob lives in Paris.")
    alma.add_user_preference("ana", "Ana Souza wants reports from Zurich.")
    kept = alma.add_domain_knowledge("helena", "people", "Carol works for Globex.")
    alma.delete(busy.id)  # being extracted: its result will not be written
    alma.delete(queued.id)  # queued: dropped
    alma.delete_user("ana")
    assert alma.graph.pending() == [busy.id, kept.id]
    gate.opened.set()
    alma.graph.flush(timeout=LONG)
    store = alma.graph.store
    assert sorted(e.id for e in store.find_entities(limit=None)) == ["carol", "globex"]
    assert store.get_entity("globex").memory_ids == [kept.id]  # type: ignore[union-attr]


def test_close_with_a_hung_extractor_raises_and_keeps_the_queue(gated: tuple[ALMA, Gate]) -> None:
    alma, gate = gated
    fact = alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    assert gate.entered.wait(LONG)
    with pytest.raises(FlushTimeout):
        alma.graph.close(timeout=0.05)
    gate.opened.set()
    alma.graph.flush(timeout=LONG)  # the worker went on; the graph store is still open
    assert alma.graph.store.get_entity("alice").memory_ids == [fact.id]  # type: ignore[union-attr]


def test_alma_close_with_a_hung_extractor_raises_and_still_closes_the_memory_store(
    gated: tuple[ALMA, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    alma, gate = gated
    alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    assert gate.entered.wait(LONG)
    graph = alma.graph
    monkeypatch.setattr(graph, "close", functools.partial(type(graph).close, graph, timeout=0.05))  # not 120 s
    with pytest.raises(FlushTimeout):
        alma.close()
    assert alma.storage.closed
    monkeypatch.undo()
    gate.opened.set()
    graph.close(timeout=LONG)  # the worker finishes what it holds, then the graph store closes
    assert graph.pending() == []
