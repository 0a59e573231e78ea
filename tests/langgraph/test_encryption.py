"""Encryption at rest: blobs are AES-GCM sealed and bound to their row; anything off fails closed with
`EncryptionError` (tampered, moved, plaintext, unknown key); keys rotate without losing a thread."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.types import Command
from test_typed_state import Priority, Ticket, _assert_typed, _cfg, _start, _triage

from alma_core import ConfigError, EncryptionError, MissingDependency
from alma_core.storage import ListRecords, PutRecord
from alma_langgraph import AlmaSaver, AsyncAlmaSaver, KeyRing
from alma_langgraph._layout import checkpoint_ns

K1 = "k1:" + base64.b64encode(b"1" * 32).decode()
K2 = "k2:" + base64.b64encode(b"2" * 32).decode()


def _secret_rows(db: Path) -> int:
    """Rows of the file whose raw bytes show the state's plaintext ("disk" is the ticket's title)."""
    with sqlite3.connect(db) as conn:
        return sum(b"disk" in (v or b"") for (v,) in conn.execute("SELECT value FROM records"))


def _latest(saver: AlmaSaver, thread: str) -> Any:
    return saver.storage.execute(ListRecords(saver.project_id, checkpoint_ns(thread, ""), order_by="key", limit=1))[0]


def test_an_encrypted_graph_resumes_with_typed_state_and_no_plaintext_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _start(AlmaSaver(db, encryption=K1), "t1")
    assert _secret_rows(db) == 0
    graph = _triage().compile(checkpointer=AlmaSaver(db, encryption=K1))
    _assert_typed(graph.get_state(_cfg("t1")).values)
    done = graph.invoke(Command(resume="db team"), _cfg("t1"))
    assert done["ticket"] == Ticket(title="disk", priority=Priority.HIGH)
    _start(AlmaSaver(tmp_path / "plain.db", encryption=False), "t1")
    assert _secret_rows(tmp_path / "plain.db") > 0  # the check above can see plaintext


def test_a_tampered_moved_or_retyped_row_fails_closed(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", encryption=K1)
    _start(saver, "t1")
    _start(saver, "t2")
    one, two = _latest(saver, "t1"), _latest(saver, "t2")
    flipped = one.value[:-1] + bytes([one.value[-1] ^ 1])
    saver.storage.batch([PutRecord(replace(one, value=flipped))])
    with pytest.raises(EncryptionError, match="does not authenticate"):
        saver.get_tuple(_cfg("t1"))
    saver.storage.batch([PutRecord(replace(two, value=one.value))])  # t1's sealed blob, moved onto t2's row
    with pytest.raises(EncryptionError, match="moved"):
        saver.get_tuple(_cfg("t2"))
    meta = {**two.metadata, "__lg": {**two.metadata["__lg"], "type": "json"}}
    saver.storage.batch([PutRecord(replace(two, metadata=meta))])  # its own blob, its stored type edited
    with pytest.raises(EncryptionError):
        saver.get_tuple(_cfg("t2"))


def test_plaintext_rows_and_unknown_keys_fail_closed(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _start(AlmaSaver(db, encryption=False), "plain")
    _start(AlmaSaver(db, encryption=K2), "sealed")
    with pytest.raises(EncryptionError, match="plaintext blob"):
        AlmaSaver(db, encryption=K1).get_tuple(_cfg("plain"))
    with pytest.raises(EncryptionError, match="'k2'"):
        AlmaSaver(db, encryption=K1).get_tuple(_cfg("sealed"))
    with pytest.raises(EncryptionError, match="no key ring"):
        AlmaSaver(db, encryption=False).get_tuple(_cfg("sealed"))


def test_rotation_reseals_every_blob_under_the_newest_key(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _start(AlmaSaver(db, encryption=False), "old")  # written before encryption was turned on
    _start(AlmaSaver(db, encryption=K1), "t1")
    both = AlmaSaver(db, encryption=f"{K2},{K1}")  # the new key first, the old one still opens
    _assert_typed(_triage().compile(checkpointer=both).get_state(_cfg("t1")).values)
    rewritten = both.rotate_keys()
    assert rewritten == len(both.storage.execute(ListRecords(both.project_id, "lg", prefix=True)))
    assert both.rotate_keys() == 0
    only_new = AlmaSaver(db, encryption=K2)
    for thread in ("old", "t1"):
        _assert_typed(_triage().compile(checkpointer=only_new).get_state(_cfg(thread)).values)
    with pytest.raises(EncryptionError):
        AlmaSaver(db, encryption=K1).get_tuple(_cfg("t1"))
    assert _secret_rows(db) == 0


def test_copy_thread_and_prune_keep_encrypted_threads_readable(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", encryption=K1)
    _start(saver, "t1")
    saver.copy_thread("t1", "t2")
    saver.prune(["t2"])
    graph = _triage().compile(checkpointer=saver)
    assert graph.get_state(_cfg("t2")).values == graph.get_state(_cfg("t1")).values
    assert graph.invoke(Command(resume="db team"), _cfg("t2"))["ticket"].title == "disk"


def test_keys_come_from_the_environment_and_the_cli_rekeys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_checkpoints_cli import _alma

    from alma_core._config import STARTER_CONFIG
    from alma_core.cli import main

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(STARTER_CONFIG.replace("embedding_provider: local", "embedding_provider: mock"), encoding="utf-8")
    monkeypatch.setenv("ALMA_CHECKPOINT_KEYS", K1)
    alma = _alma(config)
    try:
        _start(AlmaSaver(alma), "t1")
        assert AlmaSaver(alma).packer.cipher is not None
        monkeypatch.setenv("ALMA_CHECKPOINT_KEYS", f"{K2},{K1}")
        assert main(["checkpoints", "rekey", "--config", str(config)]) == 0
        assert "under key 'k2'" in capsys.readouterr().out
        monkeypatch.setenv("ALMA_CHECKPOINT_KEYS", K2)
        _assert_typed(_triage().compile(checkpointer=AlmaSaver(alma)).get_state(_cfg("t1")).values)
        record = _latest(AlmaSaver(alma), "t1")
        assert record.value.startswith(b"\x00AE1\x02k2")
    finally:
        alma.close()


@pytest.mark.parametrize(
    ("spec", "match"),
    [("k1", "id:base64key"), ("k1:not-base64!", "base64"), ("k1:" + base64.b64encode(b"x" * 10).decode(), "16, 24"),
     (f"{K1},{K1}", "twice"), ("a,b:" + K1[3:], "id:base64key")],
)  # fmt: skip
def test_bad_keys_are_config_errors(tmp_path: Path, spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AlmaSaver(tmp_path / "a.db", encryption=spec)


def test_encryption_true_without_keys_and_a_missing_cryptography_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALMA_CHECKPOINT_KEYS", raising=False)
    with pytest.raises(ConfigError, match="ALMA_CHECKPOINT_KEYS"):
        AlmaSaver(tmp_path / "a.db", encryption=True)
    monkeypatch.setitem(__import__("sys").modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(MissingDependency, match=r"alma-core\[encryption\]"):
        KeyRing.parse(K1)


async def test_the_conformance_suite_passes_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMA_CHECKPOINT_KEYS", f"{K2},{K1}")
    db = tmp_path / "lg.db"

    async def factory() -> AsyncIterator[AlmaSaver]:
        async with AsyncAlmaSaver.from_conn_string(db) as saver:
            yield saver

    report = await validate(checkpointer_test(name="AlmaSaver-encrypted")(factory))
    failures = {name: r.failures for name, r in report.results.items() if not r.passed}
    assert not failures, failures
    assert sum(r.tests_passed for r in report.results.values()) >= 80
    with sqlite3.connect(db) as conn:
        values = [v for (v,) in conn.execute("SELECT value FROM records WHERE namespace LIKE 'lg%'") if v]
    assert values and all(v.startswith(b"\x00AE1\x02k2") for v in values)
