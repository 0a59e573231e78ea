"""Property tests over the public entry points (Python API, CLI, MCP tools): any input ends in success or
a typed error, never a crash, and a refused call changes nothing; whatever is accepted reads back."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticError

from alma_core import ALMA, AlmaError
from alma_core.cli import main
from alma_core.storage._base import ListRecords

SETTINGS = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts = st.one_of(
    st.text(max_size=30),
    st.text(st.one_of(st.characters(), surrogates), max_size=10),
    st.just(""),
    st.just("   "),
    st.just("x" * 20_001),
)
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), texts, st.just(math.nan), st.just(math.inf),
    st.builds(object), st.binary(max_size=4), st.sets(st.integers(), max_size=2),
)  # fmt: skip
json_like = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip
values = st.one_of(texts, leaves, json_like, st.lists(texts, max_size=2))
deep = st.integers(30, 5000).map(lambda n: _nest(n))


def _nest(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.fixture(scope="module")
def alma() -> Iterator[ALMA]:
    with tempfile.TemporaryDirectory() as tmp:
        instance = ALMA(project_id="p", storage=Path(tmp) / "a.db", embedder="mock")
        yield instance
        instance.close()


def _snapshot(alma: ALMA) -> tuple[int, int, int]:
    records = alma.storage.execute(ListRecords("p", "", prefix=True, with_values=False))
    return alma.stats().total, len(records), alma.storage.generation("p")


def _check_call(alma: ALMA, call: Any, seen: Counter[str] | None = None) -> None:
    """Success or an AlmaError; a refused call writes nothing; the store stays fully readable. `seen`
    counts the outcomes ("accepted" / "refused"), for the tests to show that their inputs reach both."""
    before = _snapshot(alma)
    skipped = alma.storage.bad_rows.count
    try:
        call()
    except AlmaError:
        assert _snapshot(alma) == before
        outcome = "refused"
    else:
        outcome = "accepted"
    if seen is not None:
        seen[outcome] += 1
    assert len(alma.list_memories()) == alma.stats().total  # every stored row decodes
    assert alma.storage.bad_rows.count == skipped


def _both(seen: Counter[str], least: int = 3) -> None:
    """The examples reached the accepting path and the refusing one (a property over refusals alone, or
    over an argument check alone, holds whatever the code behind it does)."""
    assert seen["accepted"] >= least and seen["refused"] >= least, dict(seen)


LEARN = {"agent": "a", "task": "login form task", "outcome": "success", "strategy_used": "s", "task_type": None}


def test_learn_is_success_or_a_typed_error(alma: ALMA) -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(bad=st.dictionaries(st.sampled_from(sorted(LEARN)), values, max_size=2),
           metadata=st.one_of(st.none(), json_like, deep))  # fmt: skip
    def run(bad: dict[str, Any], metadata: Any) -> None:
        _check_call(alma, lambda: alma.learn(**{**LEARN, **bad}, metadata=metadata), seen)

    run()
    _both(seen)


def test_other_writes_are_success_or_a_typed_error(alma: ALMA) -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(metadata=st.one_of(st.none(), deep, st.dictionaries(texts, values, max_size=3)),
           text=st.one_of(st.just("a plain text"), values))  # fmt: skip
    def run(metadata: Any, text: Any) -> None:
        _check_call(alma, lambda: alma.add_user_preference("u1", text, metadata=metadata), seen)
        _check_call(alma, lambda: alma.add_domain_knowledge("a", "d", text, metadata=metadata), seen)
        _check_call(alma, lambda: alma.add_anti_pattern("a", text, text, metadata=metadata), seen)
        _check_call(alma, lambda: alma.learn_many([{"agent": "a", "task": text, "outcome": True,
                                                   "metadata": metadata}]), seen)  # fmt: skip

    run()
    _both(seen)


READS = {"task": "a task to keep", "agent": "a", "top_k": 5, "user_id": None, "days": 30.0, "below": None,
         "keep": None, "uid": "u1", "memory_id": None}  # fmt: skip


def test_reads_and_deletes_are_success_or_a_typed_error(alma: ALMA) -> None:
    kept = alma.learn("a", "a task to keep", "success", "s").id
    seen = {name: Counter[str]() for name in ("retrieve", "forget", "delete_user", "get", "retrieve_scoped")}

    @SETTINGS
    @given(bad=st.dictionaries(st.sampled_from(sorted(READS)), values, max_size=3))
    def run(bad: dict[str, Any]) -> None:
        a = {**READS, "memory_id": kept, **bad}
        _check_call(alma, lambda: alma.retrieve(a["task"], a["agent"], a["top_k"], a["user_id"]), seen["retrieve"])
        _check_call(alma, lambda: alma.forget(older_than_days=a["days"], below_confidence=a["below"],
                                              max_per_agent=a["keep"], dry_run=True), seen["forget"])  # fmt: skip
        _check_call(alma, lambda: alma.delete_user(a["uid"]), seen["delete_user"])
        _check_call(alma, lambda: alma.get(a["memory_id"]), seen["get"])
        _check_call(alma, lambda: alma.retrieve_scoped(a["task"], "project_wide", agent=a["agent"] or None),
                    seen["retrieve_scoped"])  # fmt: skip

    run()
    for name, counts in seen.items():
        assert counts["accepted"] >= 5 and counts["refused"] >= 2, (name, dict(counts))


def _cli(tmp: Path, *args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = main([*args, "--config", str(tmp / "c.yaml")])
        except SystemExit as exit_:  # argparse: usage errors
            code = int(exit_.code or 0)
    assert "Traceback" not in err.getvalue()
    return code


@SETTINGS
@given(line=st.one_of(json_like.map(lambda v: json.dumps(v, default=str)), st.binary(max_size=40).map(repr)),
       words=st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=12), max_size=4))  # fmt: skip
def test_the_cli_ends_in_an_exit_code_never_a_traceback(tmp_path: Path, line: str, words: list[str]) -> None:
    (tmp_path / "c.yaml").write_text("alma:\n  project_id: p\n  embedding_provider: mock\n  storage_dir: s\n")
    (tmp_path / "in.jsonl").write_text(line + "\n", encoding="utf-8", errors="surrogateescape")
    assert _cli(tmp_path, "import", str(tmp_path / "in.jsonl")) in (0, 1)
    for command in (["retrieve", *words[:1], "--agent", *words[1:2]], ["forget", *words], ["learn", *words]):
        assert _cli(tmp_path, *command) in (0, 1, 2)
    assert _cli(tmp_path, "stats") == 0


# Each tool's examples start from valid arguments (every argument of it named here): as they are, or with one
# of them changed (or one it does not take added) to a value plausible for some argument, or arbitrary. The
# handler must run: drawn whole from arbitrary values, 12 of the 16 tools never got past their argument check.
GOOD_ARGS = {"agent": "a", "task": "login form task", "outcome": "success", "query": "login form",
             "scope": "project_wide", "workflow_id": "wf", "state": {"step": 1}, "states": [{"step": 2}],
             "user_id": "u1", "preference": "short answers", "domain": "d", "fact": "a fact",
             "artifact_type": "test", "ref": "tests/test_x.py", "older_than_days": 30.0, "dry_run": True,
             "memory_type": "knowledge", "top_k": 5, "keep_latest": 1}  # fmt: skip
PLAUSIBLE = st.sampled_from(["a", "helena", "login form", "", " ", 0, 1, 3, -1, 0.5, 2.5, 1e308, True, False, None,
                             ["outcome"], ["knowledge", "nonsense"], {"k": 1}, [{"k": 1}], "success", "failure",
                             "workflow_only", "agent_only", "knowledge", "heuristic", "merge_lists"])  # fmt: skip


def _tools() -> list[Any]:
    from alma_core.mcp._tools import TOOLS

    return list(TOOLS)


@pytest.mark.parametrize("spec", _tools(), ids=lambda spec: spec.name)
def test_every_mcp_tool_is_success_or_a_typed_error(alma: ALMA, spec: Any) -> None:
    fields = spec.args.model_fields
    base = {name: GOOD_ARGS[name] for name in fields if name in GOOD_ARGS}
    assert {name for name, field in fields.items() if field.is_required()} <= set(base), "add it to GOOD_ARGS"
    seen: Counter[str] = Counter()

    keys = st.sampled_from([*sorted(fields), "not_an_argument"])

    @settings(SETTINGS, max_examples=100)  # (16 tools: ~1,600 calls)
    @given(changes=st.one_of(st.just({}), st.builds(lambda k, v: {k: v}, keys, PLAUSIBLE),
                             st.builds(lambda k, v: {k: v}, keys, values)))  # fmt: skip
    def run(changes: dict[str, Any]) -> None:
        try:
            args = spec.args.model_validate({**base, **changes})
        except PydanticError:
            seen["invalid"] += 1  # the tool answers with an error naming the argument
            return
        _check_call(alma, lambda: spec.handler(alma, args), seen)

    run()
    assert seen["accepted"] and seen["invalid"], dict(seen)  # its handler ran, and its argument check refused
