"""Projects sharing one file never see each other; export -> import round-trips; delete_user is total."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alma_core import ALMA, NotFound
from alma_core.storage import DeleteRecords, GetRecord, ListNamespaces, ListRecords, PutRecord, Record

OLD = datetime.now(UTC) - timedelta(days=400)


def _fill(alma: ALMA, tag: str, user_id: str = "u1") -> list[str]:
    """One memory of each writable type plus a user-tagged record; returns the memory ids."""
    ids = [
        alma.learn(agent="helena", task=f"login form {tag}", outcome="success", strategy_used=f"strategy {tag}",
                   timestamp=OLD).id,
        alma.learn(agent="helena", task=f"login form {tag} again", outcome=False, strategy_used="retry",
                   metadata={"user_id": user_id}).id,
        alma.add_user_preference(user_id=user_id, preference=f"login form prefs {tag}", created_at=OLD).id,
        alma.add_domain_knowledge(agent="helena", domain="forms", fact=f"login form fact {tag}", confidence=0.1).id,
        alma.add_anti_pattern(agent="helena", pattern=f"login form sleep {tag}", why_bad="flaky").id,
    ]  # fmt: skip
    alma.storage.execute(PutRecord(Record(alma.project_id, "sessions/s1", "k", b"v", {"user_id": user_id})))
    return ids


@pytest.fixture
def pair(db_path: Path):
    a = ALMA(project_id="alpha", storage=db_path, embedder="mock")
    b = ALMA(project_id="beta", storage=db_path, embedder="mock")
    yield a, b
    a.close()
    b.close()


def test_projects_in_one_file_never_see_each_other(pair: tuple[ALMA, ALMA], tmp_path: Path) -> None:
    a, b = pair
    a_ids = _fill(a, "alpha")
    b_ids = _fill(b, "beta")
    assert a.stats().total == b.stats().total == 5

    for reader, theirs in ((a, b_ids), (b, a_ids)):
        seen = {m.id for m in reader.retrieve(task="login form", agent="helena", top_k=100, user_id="u1")}
        assert seen and not seen & set(theirs)
        for memory_id in theirs:
            with pytest.raises(NotFound):
                reader.get(memory_id)
            with pytest.raises(NotFound):
                reader.delete(memory_id)
        listed = {m.id for m in reader.list_memories()}
        assert not listed & set(theirs)

    assert a.export(tmp_path / "a.jsonl") == 5
    exported = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    exported = [row for row in exported if row["type"] != "record"]  # memories (records follow them)
    assert {row["id"] for row in exported} == set(a_ids)
    assert {row["project_id"] for row in exported} == {"alpha"}

    forgotten = a.forget(older_than_days=30, memory_types=["outcome", "preference"])
    assert {m.project_id for m in forgotten} == {"alpha"} and len(forgotten) == 2
    a.forget(below_confidence=0.5)
    assert a.delete_user("u1") >= 1
    assert b.stats().total == 5  # nothing of beta moved

    assert b.storage.execute(ListRecords("beta", "sessions/", prefix=True))[0].value == b"v"
    assert b.storage.execute(GetRecord("beta", "sessions/s1", "k")) is not None
    assert a.storage.execute(GetRecord("alpha", "sessions/s1", "k")) is None
    assert b.storage.execute(ListNamespaces("beta", "sessions/")) == ["sessions/s1"]
    assert a.storage.execute(ListNamespaces("alpha", "sessions/")) == []
    assert a.storage.execute(DeleteRecords("alpha", "sessions/", prefix=True)) == 0
    assert b.storage.execute(GetRecord("beta", "sessions/s1", "k")) is not None


def test_same_memory_id_in_two_projects_stays_separate(pair: tuple[ALMA, ALMA], tmp_path: Path) -> None:
    a, b = pair
    memory = a.add_domain_knowledge(agent="x", domain="d", fact="alpha's fact")
    a.export(tmp_path / "a.jsonl")
    b.import_(tmp_path / "a.jsonl")  # same id, other project
    b.delete(memory.id)
    assert a.get(memory.id).fact == "alpha's fact"


def test_export_import_round_trip_into_another_project(pair: tuple[ALMA, ALMA], tmp_path: Path) -> None:
    a, b = pair
    _fill(a, "alpha")
    heuristic_free = a.list_memories()
    assert a.export(tmp_path / "a.jsonl") == len(heuristic_free) == 5
    assert b.import_(tmp_path / "a.jsonl") == 5

    def content(alma: ALMA) -> dict[str, dict]:
        out = {}
        for memory in alma.list_memories():
            data = memory.to_dict()
            data.pop("project_id")
            out[memory.id] = data
        return out

    assert content(b) == content(a)
    assert b.stats().model_dump() == a.stats().model_dump()
    b.export(tmp_path / "b.jsonl")
    rows_a = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    for row in rows_a + rows_b:
        row.pop("project_id", None)  # records carry none: they take the importing project's
        assert "embedding" not in row
    assert sorted(rows_a, key=json.dumps) == sorted(rows_b, key=json.dumps)


def test_export_with_embeddings_round_trips_vectors(pair: tuple[ALMA, ALMA], tmp_path: Path) -> None:
    a, b = pair
    memory = a.add_domain_knowledge(agent="x", domain="d", fact="vector fact")
    a.export(tmp_path / "a.jsonl", with_embeddings=True)
    row = json.loads((tmp_path / "a.jsonl").read_text())
    assert len(row["embedding"]) == a.embedder.dim
    b.import_(tmp_path / "a.jsonl")
    found = b.retrieve(task="vector fact", agent="x", mode="dense")
    assert [m.id for m in found] == [memory.id]


def test_delete_user_leaves_nothing_of_that_user(alma: ALMA) -> None:
    keep = alma.add_user_preference(user_id="bob", preference="concise answers")
    alma.add_user_preference(user_id="alice", preference="dark mode")
    alma.add_user_preference(user_id="alice", preference="tests first", agent="helena", category="testing_strategies")
    alma.learn(agent="helena", task="test alice's login form", outcome="success", metadata={"user_id": "alice"})
    kept_outcome = alma.learn(agent="helena", task="test bob's login form", outcome="success")
    alma.add_domain_knowledge(agent="qa_lead", domain="qa", fact="alice uses firefox", metadata={"user_id": "alice"})
    store = alma.storage
    store.execute(PutRecord(Record("test", "sessions/1", "a", b"x", {"user_id": "alice"})))
    store.execute(PutRecord(Record("test", "chat/alice", "m1", b"x", {"user_id": "alice", "n": 1})))
    store.execute(PutRecord(Record("test", "sessions/1", "b", b"x", {"user_id": "bob"})))

    assert alma.delete_user("alice") == 6

    remaining = alma.list_memories()
    assert {m.id for m in remaining} == {keep.id, kept_outcome.id}
    assert all(m.user_id_value != "alice" for m in remaining)
    assert not alma.retrieve(task="alice dark mode", agent="helena", user_id="alice", top_k=50).preferences
    records = store.execute(ListRecords("test", "", prefix=True))
    assert [(r.namespace, r.key) for r in records] == [("sessions/1", "b")]
    assert alma.delete_user("alice") == 0
