"""Regression tests of hostile input: nothing poisons the store, export/import are safe and idempotent.

Each case was found by trying the public API, config files, import files and the CLI as a hostile user
would (issue #18). A bad value is a typed `ValidationError` and stores nothing; a row that is already
bad is skipped by reads (and counted) and quarantined by `repair()`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alma_core import ALMA, AlmaError, ConfigError, ScopeViolation, ValidationError, load_config
from alma_core.storage._base import ListRecords


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


DEEP_40 = json.dumps(_deep(40)).encode()
BAD_METADATA = [
    ("lone_surrogate", {"n": "x\ud800"}),
    ("surrogate_key", {"x\udfff": 1}),
    ("nan", {"n": math.nan}),
    ("inf", {"n": [1, math.inf]}),
    ("object", {"n": object()}),
    ("set", {"n": {1, 2}}),
    ("bytes", {"n": b"raw"}),
    ("int_key", {"n": {1: "x"}}),
    ("deep_5000", _deep(5000)),
]


def _total(alma: ALMA) -> int:
    return alma.stats().total


@pytest.mark.parametrize("metadata", [c[1] for c in BAD_METADATA], ids=[c[0] for c in BAD_METADATA])
def test_bad_metadata_is_a_validation_error_and_stores_nothing(open_alma: ALMA, metadata: dict[str, Any]) -> None:
    writes = [
        lambda: open_alma.learn("a", "task", "success", "s", metadata=metadata),
        lambda: open_alma.learn_many([{"agent": "a", "task": "t", "outcome": True, "metadata": metadata}]),
        lambda: open_alma.add_user_preference("u", "pref", metadata=metadata),
        lambda: open_alma.add_domain_knowledge("a", "d", "fact", metadata=metadata),
        lambda: open_alma.add_anti_pattern("a", "pattern", metadata=metadata),
    ]
    for write in writes:
        with pytest.raises(ValidationError):
            write()
    assert _total(open_alma) == 0
    assert open_alma.storage.execute(ListRecords("open", "", prefix=True)) == []  # no evidence either


@pytest.mark.parametrize("field", ["task", "strategy_used", "error_message", "feedback", "task_type"])
def test_a_lone_surrogate_in_any_text_is_refused(open_alma: ALMA, field: str) -> None:
    args: dict[str, Any] = {"agent": "a", "task": "task", "outcome": "failure", "strategy_used": "s"}
    args[field] = "bad \ud800 text"
    with pytest.raises(ValidationError, match=field):
        open_alma.learn(**args)
    with pytest.raises(ValidationError):
        open_alma.add_domain_knowledge("a", "d", "fact \udc80")
    assert _total(open_alma) == 0


def test_plain_metadata_round_trips(open_alma: ALMA) -> None:
    metadata = {"s": "ünïcode ✓", "n": [1, 2.5, None, True], "d": _deep(20)}
    memory = open_alma.learn("a", "task", "success", "s", metadata=metadata)
    assert open_alma.get(memory.id).metadata == metadata


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a: a.learn("a", "t", "success", strategy_used=None), "strategy_used"),
        (lambda a: a.learn("a", "t", "success", "s", task_type=5), "task_type"),
        (lambda a: a.retrieve("t", "a", user_id=42), "user_id"),
        (lambda a: a.retrieve("t", 7), "agent"),
        (lambda a: a.delete_user("   "), "user_id"),
        (lambda a: a.delete_user(None), "user_id"),
        (lambda a: a.get(3), "memory_id"),
        (lambda a: a.forget(older_than_days="x"), "older_than_days"),
        (lambda a: a.forget(older_than_days=math.nan), "older_than_days"),
        (lambda a: a.forget(older_than_days=math.inf), "older_than_days"),
        (lambda a: a.forget(older_than_days=1e308), "older_than_days"),
        (lambda a: a.forget(older_than_days=-1), "older_than_days"),
        (lambda a: a.forget(max_per_agent=2.5), "max_per_agent"),
        (lambda a: a.forget(max_per_agent="3"), "max_per_agent"),
        (lambda a: a.forget(below_confidence=math.nan), "below_confidence"),
        (lambda a: a.forget(below_confidence="0.5"), "below_confidence"),
    ],
)
def test_bad_arguments_are_typed_errors(open_alma: ALMA, call: Any, match: str) -> None:
    open_alma.learn("a", "keep me", "success", "s")
    with pytest.raises(ValidationError, match=match):
        call(open_alma)
    assert _total(open_alma) == 1


# ---- a poisoned row -------------------------------------------------------------------------------


def _poison(db: Path, memory_id: str) -> None:
    """Write a lone surrogate into a stored row, as an older version without edge checks could."""
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM memories WHERE id = ?", (memory_id,)).fetchone()
        row = json.loads(data)
        row["metadata"] = {"n": "x\ud800"}
        conn.execute("UPDATE memories SET data = ? WHERE id = ?", (json.dumps(row), memory_id))


def test_a_bad_row_is_skipped_reported_and_repaired(db_path: Path, tmp_path: Path) -> None:
    alma = ALMA(project_id="p", storage=db_path, embedder="mock")
    bad = alma.learn("a", "login form task", "success", "fill the form")
    good = alma.learn("a", "login form check", "success", "click submit")
    alma.close()
    _poison(db_path, bad.id)

    alma = ALMA(project_id="p", storage=db_path, embedder="mock")
    assert [m.id for m in alma.list_memories(memory_types=["outcome"])] == [good.id]
    assert {m.id for m in alma.retrieve("login form", "a", top_k=10).outcomes} == {good.id}
    assert alma.export(tmp_path / "out.jsonl") == 1
    assert alma.health()["unreadable_rows_skipped"] >= 3
    assert alma.stats().outcomes == 2  # still stored: counted, not readable

    report = alma.repair()
    assert report["quarantined"] == [bad.id] and report["integrity"] == "ok"
    assert alma.stats().outcomes == 1
    (kept,) = alma.storage.execute(ListRecords("p", "alma/quarantine"))
    assert kept.key == bad.id and b"\\ud800" in (kept.value or b"") and kept.metadata["error"]
    assert alma.repair()["quarantined"] == []
    alma.close()


# ---- export -----------------------------------------------------------------------------------------


def test_export_refuses_a_symlink_target_and_leaves_its_victim_alone(open_alma: ALMA, tmp_path: Path) -> None:
    open_alma.learn("a", "task", "success", "s")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.jsonl").symlink_to(victim)
    with pytest.raises(ValidationError, match="symlink"):
        open_alma.export(tmp_path / "out.jsonl")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.jsonl").is_symlink()


def test_export_never_follows_a_planted_tmp_symlink(open_alma: ALMA, tmp_path: Path) -> None:
    open_alma.learn("a", "task", "success", "s")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.jsonl.tmp").symlink_to(victim)
    assert open_alma.export(tmp_path / "out.jsonl") == 1
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out.jsonl.tmp").is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl.")]  # no temp file left


@pytest.mark.parametrize("kind", ["directory", "fifo", "empty", "device"])
def test_export_refuses_non_regular_targets_with_a_typed_error(open_alma: ALMA, tmp_path: Path, kind: str) -> None:
    open_alma.learn("a", "task", "success", "s")
    target: Any
    if kind == "directory":
        target = tmp_path / "dir"
        target.mkdir()
    elif kind == "fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    elif kind == "device":
        target = "/dev/null"
    else:
        target = ""
    before = set(tmp_path.iterdir())
    with pytest.raises(ValidationError):
        open_alma.export(target)
    assert set(tmp_path.iterdir()) == before  # no stray temp file
    if kind == "device":
        assert Path("/dev/null").is_char_device()


# ---- import -----------------------------------------------------------------------------------------


def test_import_of_dev_zero_fails_fast_with_a_typed_error(open_alma: ALMA) -> None:
    with pytest.raises(ValidationError, match="longer than"):
        open_alma.import_("/dev/zero")
    assert _total(open_alma) == 0


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b'{"type": "knowledge", "agent": "a", "domain": "d", "fact": "x\\ud800"}', "fact"),
        (b'{"type": "knowledge", "agent": "a", "domain": "d", "fact": "f", "metadata": {"n": NaN}}', "NaN"),
        (b'{"type": "knowledge", "agent": "a", "domain": "d", "fact": "\xff\xfe"}', "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"type": "knowledge", "agent": "a", "domain": "d", "fact": "f", "metadata": %s}' % DEEP_40, "nested"),
        (b'{"type": "record", "namespace": "x", "key": "k", "value": "not base64!", "metadata": {}}', "export line"),
        (b'{"type": "record", "namespace": "x", "key": "", "metadata": {}}', "key"),
        (b'{"type": "knowledge", "agent": "a", "domain": "d", "fact": "f", "embedding": [1, "x"]}', "export line"),
        # a stamp stored as 1e308 (or -1e999, which parses as -inf) made the record's datetime unreadable
        (b'{"type": "record", "namespace": "x", "key": "k", "metadata": {}, "created_at": 1e308}', "epoch seconds"),
        (b'{"type": "record", "namespace": "x", "key": "k", "metadata": {}, "expires_at": -1e999}', "epoch seconds"),
        (b'{"type": "record", "namespace": "x", "key": "k", "metadata": {}, "updated_at": -5}', "epoch seconds"),
    ],
)  # fmt: skip
def test_a_bad_import_line_imports_nothing(open_alma: ALMA, tmp_path: Path, line: bytes, match: str) -> None:
    good = b'{"type": "knowledge", "agent": "a", "domain": "d", "fact": "good fact"}'
    path = tmp_path / "in.jsonl"
    path.write_bytes(good + b"\n" + line + b"\n")
    with pytest.raises(ValidationError, match=match) as info:
        open_alma.import_(path)
    assert ":2:" in str(info.value)
    assert _total(open_alma) == 0


def test_import_counts_distinct_ids_and_is_idempotent(open_alma: ALMA, tmp_path: Path) -> None:
    stamps = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    rows = [
        {"type": "knowledge", "id": "k1", "agent": "a", "domain": "d", "fact": "first", **stamps},
        {"type": "knowledge", "id": "k2", "agent": "a", "domain": "d", "fact": "second", **stamps},
        {"type": "knowledge", "id": "k1", "agent": "a", "domain": "d", "fact": "first, corrected", **stamps},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert open_alma.import_(path) == 2
    assert open_alma.get("k1").fact == "first, corrected"
    once = sorted(json.dumps(m.to_dict(), sort_keys=True) for m in open_alma.list_memories())
    assert open_alma.import_(path) == 2
    assert sorted(json.dumps(m.to_dict(), sort_keys=True) for m in open_alma.list_memories()) == once


def _learn_five(alma: ALMA) -> None:
    for _ in range(5):
        alma.learn("helena", "Test the login form", "success", "tested empty fields first",
                   task_type="testing_strategies")  # fmt: skip


def _heuristics(alma: ALMA) -> list[tuple[int, int]]:
    return [(h.success_count, h.occurrence_count) for h in alma.list_memories(memory_types=["heuristic"])]


@pytest.mark.parametrize("project", ["same", "other"])
def test_learning_after_import_keeps_the_evidence(tmp_path: Path, project: str) -> None:
    agents = {"helena": {"can_learn": ["testing_strategies"], "min_occurrences_for_heuristic": 3}}
    source = ALMA(project_id="same", agents=agents, storage=tmp_path / "a.db", embedder="mock")
    _learn_five(source)
    assert _heuristics(source) == [(5, 5)]
    source.export(tmp_path / "dump.jsonl")
    source.close()

    target = ALMA(project_id=project, agents=agents, storage=tmp_path / "b.db", embedder="mock")
    target.import_(tmp_path / "dump.jsonl")
    target.import_(tmp_path / "dump.jsonl")  # twice == once
    assert _heuristics(target) == [(5, 5)]
    target.learn("helena", "Test the signup form", "success", "tested empty fields first",
                 task_type="testing_strategies")  # fmt: skip
    assert _heuristics(target) == [(6, 6)]  # one heuristic, its evidence kept
    assert len(target.list_memories(memory_types=["anti_pattern"])) == 0
    target.close()


def test_import_of_an_out_of_scope_memory_stores_nothing(alma: ALMA, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [
        {"type": "outcome", "agent": "helena", "task": "t", "task_type": "testing_strategies", "success": True},
        {"type": "outcome", "agent": "helena", "task": "t", "task_type": "backend_logic", "success": True},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ScopeViolation):
        alma.import_(path)
    assert _total(alma) == 0


# ---- config files -----------------------------------------------------------------------------------


def test_a_non_utf8_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"alma:\n  project_id: caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_a_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alma: " + "[" * 700 + "]" * 700 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def _laughs(levels: int) -> str:
    """Anchors of nine aliases each, inside `alma:`: a few objects that expand to 9**levels values."""
    lines = ["alma:", "  project_id: p", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_config_is_a_config_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(_laughs(10), encoding="utf-8")  # 9**10 values: loading walked them (over 10 minutes)
    with pytest.raises(ConfigError, match="more than 100000 values"):
        load_config(path)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!foo bar"])
def test_a_yaml_tag_that_would_build_an_object_is_a_config_error(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"alma:\n  project_id: {tag}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="constructor for the tag"):
        load_config(path)


def test_a_huge_wrong_value_is_named_in_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alma:\n  project_id: " + "x" * 1_000_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="project_id") as info:
        load_config(path)
    assert len(str(info.value)) < 600  # the value was repeated whole in the message


def test_every_error_above_is_an_alma_error() -> None:
    assert issubclass(ValidationError, AlmaError) and issubclass(ConfigError, AlmaError)
