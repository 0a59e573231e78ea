"""Property tests over the public entry points (Python API, CLI, MCP tools): any input ends in success or
a typed error, never a crash, and a refused call changes nothing; whatever is accepted reads back."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
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


def _check_call(alma: ALMA, call: Any) -> None:
    """Success or an AlmaError; a refused call writes nothing; the store stays fully readable."""
    before = _snapshot(alma)
    skipped = alma.storage.bad_rows.count
    try:
        call()
    except AlmaError:
        assert _snapshot(alma) == before
    assert len(alma.list_memories()) == alma.stats().total  # every stored row decodes
    assert alma.storage.bad_rows.count == skipped


LEARN = {"agent": "a", "task": "login form task", "outcome": "success", "strategy_used": "s", "task_type": None}


@SETTINGS
@given(bad=st.dictionaries(st.sampled_from(sorted(LEARN)), values, max_size=2), metadata=st.one_of(json_like, deep))
def test_learn_is_success_or_a_typed_error(alma: ALMA, bad: dict[str, Any], metadata: Any) -> None:
    _check_call(alma, lambda: alma.learn(**{**LEARN, **bad}, metadata=metadata))


@SETTINGS
@given(metadata=st.one_of(deep, st.dictionaries(texts, values, max_size=3)), text=values)
def test_other_writes_are_success_or_a_typed_error(alma: ALMA, metadata: Any, text: Any) -> None:
    _check_call(alma, lambda: alma.add_user_preference("u1", text, metadata=metadata))
    _check_call(alma, lambda: alma.add_domain_knowledge("a", "d", text, metadata=metadata))
    _check_call(alma, lambda: alma.add_anti_pattern("a", text, text, metadata=metadata))
    _check_call(alma, lambda: alma.learn_many([{"agent": "a", "task": text, "outcome": True, "metadata": metadata}]))


@SETTINGS
@given(task=values, agent=values, top_k=values, user_id=values, days=values, below=values, keep=values, uid=values)
def test_reads_and_deletes_are_success_or_a_typed_error(alma: ALMA, task: Any, agent: Any, top_k: Any,
                                                        user_id: Any, days: Any, below: Any, keep: Any,
                                                        uid: Any) -> None:  # fmt: skip
    alma.learn("a", "a task to keep", "success", "s")
    _check_call(alma, lambda: alma.retrieve(task, agent, top_k if top_k is not None else 5, user_id))
    _check_call(alma, lambda: alma.forget(older_than_days=days, below_confidence=below, max_per_agent=keep,
                                          dry_run=True))  # fmt: skip
    _check_call(alma, lambda: alma.delete_user(uid))
    _check_call(alma, lambda: alma.get(uid))
    _check_call(alma, lambda: alma.retrieve_scoped(task, "project_wide", agent=agent if agent else None))


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


@SETTINGS
@given(arguments=st.dictionaries(st.sampled_from(["agent", "task", "outcome", "strategy_used", "task_type",
                                                  "metadata", "top_k", "user_id", "query", "workflow_id", "state",
                                                  "older_than_days", "preference", "fact", "domain", "scope"]),
                                 values, max_size=6))  # fmt: skip
def test_every_mcp_tool_is_success_or_a_typed_error(alma: ALMA, arguments: dict[str, Any]) -> None:
    from alma_core.mcp._tools import TOOLS

    for spec in TOOLS:
        try:
            args = spec.args.model_validate(arguments)
        except PydanticError:
            continue  # the tool answers with an error naming the argument
        _check_call(alma, lambda: spec.handler(alma, args))  # noqa: B023 - called at once
