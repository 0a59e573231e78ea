"""Kuzu: the graph is a directory that survives the process; one process at a time; a missing kuzu names
the `graph` extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_graph_store import works_for

from alma_core import StorageError, ValidationError
from alma_core.graph import BackendGraphStore, create_graph_backend

ROOT = Path(__file__).resolve().parents[2]


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_kuzu_data_survives_a_restart_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "graph"
    graph = BackendGraphStore(create_graph_backend("kuzu", database_path=path), project_id="p")
    graph.add_relationship(works_for("alice", "acme", datetime(2026, 1, 1, tzinfo=UTC), "m1"))
    graph.add_relationship(works_for("alice", "globex", datetime(2026, 6, 1, tzinfo=UTC), "m2"))
    graph.close()
    out = run(f"""
        from alma_core.graph import BackendGraphStore, create_graph_backend
        graph = BackendGraphStore(create_graph_backend("kuzu", database_path={str(path)!r}), project_id="p")
        print([(r.target_id, r.valid_to is None, r.memory_ids) for r in graph.history("alice", "WORKS_FOR")])
    """)
    assert out == "[('acme', False, ['m1']), ('globex', True, ['m2'])]"


def test_a_second_process_gets_a_storage_error_naming_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "graph"
    graph = BackendGraphStore(create_graph_backend("kuzu", database_path=path))
    try:
        out = run(f"""
            from alma_core import StorageError
            from alma_core.graph import create_graph_backend
            try:
                create_graph_backend("kuzu", database_path={str(path)!r})
            except StorageError as exc:
                print(exc)
        """)
        assert "one process at a time" in out
    finally:
        graph.close()
    create_graph_backend("kuzu", database_path=path).close()  # released: opens again


def test_a_file_is_not_a_database_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError, match="directory"):
        create_graph_backend("kuzu", database_path=tmp_path / "file")
    with pytest.raises(ValidationError, match="database_path"):
        create_graph_backend("kuzu")
    with pytest.raises(ValidationError, match="not bundled"):
        create_graph_backend("neo4j", uri="bolt://localhost:7687")
    with pytest.raises(StorageError.__mro__[1]):  # AlmaError
        create_graph_backend("nebula")


def test_graph_code_loads_only_when_used_and_without_kuzu_names_the_extra(tmp_path: Path) -> None:
    out = run(f"""
        import sys
        sys.modules["kuzu"] = None
        from alma_core import ALMA, MissingDependency
        ALMA(project_id="p", storage={str(tmp_path / "a.db")!r}, embedder="mock").close()
        assert "alma_core.graph" not in sys.modules  # graph memory off: nothing of it is imported
        from alma_core.graph import create_graph_backend
        create_graph_backend("memory")  # the in-memory backend needs nothing
        try:
            create_graph_backend("kuzu", database_path={str(tmp_path / "g")!r})
        except MissingDependency as exc:
            print(exc.package, exc.extra)
    """)
    assert out == "kuzu graph"


def _seed_readme() -> Path | None:
    """The shared seed README (the `shared` folder beside the clone), if this checkout has one."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "seed" / "ALMA-v0.6.0-README.md"
        if candidate.exists():
            return candidate
    return None


@pytest.mark.skipif(_seed_readme() is None, reason="the shared seed README is not beside this checkout")
def test_the_seed_readme_graph_block_runs_with_the_kuzu_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _seed_readme().read_text(encoding="utf-8")  # type: ignore[union-attr]
    section = text[text.index("## Graph Memory") :]
    block = section[section.index("```python\n") + 10 : section.index("```", section.index("```python\n") + 10)]
    hosted = block[block.index("backend = create_graph_backend(\n") : block.index(")\n", block.index('"neo4j"')) + 2]
    code = block.replace(hosted, "").replace(
        '# backend = create_graph_backend("kuzu"', 'backend = create_graph_backend("kuzu"'
    )
    code = code.replace("from alma.graph", "from alma_core.graph")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code, "seed-readme-graph-block", "exec"), scope)
    relations = scope["alice_relations"]
    assert [(r.source_id, r.relation_type, r.target_id) for r in relations] == [("alice", "WORKS_FOR", "acme_corp")]  # type: ignore[attr-defined]
    assert (tmp_path / "my_graph_db" / "graph.kuzu").exists()
    scope["graph"].close()  # type: ignore[attr-defined]
