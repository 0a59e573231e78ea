"""SECURITY.md's promises that a test can hold: no pickle in the package, no stored text in the logs."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import pytest

from alma_core import ALMA

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "alma_core", ROOT / "integrations", ROOT / "checkpointers"]
UNSAFE = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|dill|marshal|shelve)\b"
    r"|\b(pickle|marshal|shelve|dill)\.(loads?|dumps?|open|Unpickler)\b"
    r"|\byaml\.(load|unsafe_load|full_load)\(|\byaml\.Loader\b|(?<![.\w])(eval|exec)\(",
    re.M,
)


def test_no_module_of_the_package_unpickles_or_evaluates() -> None:
    sources = [p for root in PACKAGES for p in root.rglob("*.py")]
    assert len(sources) > 50
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in sources
                 for m in UNSAFE.finditer(p.read_text(encoding="utf-8"))]  # fmt: skip
    assert offenders == []


def test_the_scan_would_catch_pickle() -> None:
    assert UNSAFE.search("import pickle\n") and UNSAFE.search("x = pickle.loads(b)") and UNSAFE.search("yaml.load(f)")
    assert UNSAFE.search("eval(code)") and not UNSAFE.search("model.eval()")
    assert not UNSAFE.search("yaml.safe_load(text)")


def test_stored_text_never_reaches_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "patient-record-93417"
    caplog.set_level(logging.DEBUG)
    alma = ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock")
    for outcome in ("success", "failure", "failure", "failure"):
        alma.learn("a", f"task about {secret}", outcome, f"strategy {secret}", error_message=f"error {secret}")
    alma.add_user_preference("u1", f"prefers {secret}")
    bad = alma.add_domain_knowledge("a", "d", f"fact about {secret}")
    with sqlite3.connect(tmp_path / "a.db") as raw:  # a row that no longer parses: its read is logged
        raw.execute("UPDATE memories SET data = ? WHERE id = ?", (f'{{"fact": "{secret}", broken', bad.id))
    alma.retrieve(f"task about {secret}", "a").to_prompt()
    alma.retrieve(f"fact about {secret}", "a", memory_types=["knowledge"])
    alma.export(tmp_path / "out.jsonl")
    alma.import_(tmp_path / "out.jsonl")
    alma.repair()
    alma.delete_user("u1")
    alma.close()
    assert any(r.name.startswith("alma_core") for r in caplog.records)  # the capture sees what ALMA logs
    assert not [r for r in caplog.records if secret in r.getMessage()]
