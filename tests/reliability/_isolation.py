"""A random walk of operations over 2 projects x 3 agents with sharing, checked against a model of who
may see what. Used by tests/reliability/test_isolation.py (~1,000 ops) and
benchmarks/reliability_soak.py (10,000 ops).

Agents: `a` shares with `b`; `c` inherits from `a`. So `a` reads a; `b` reads b and a; `c` reads c and a;
everyone reads project-wide memories (`*`, preferences added without an agent). Projects see nothing of
each other. Each memory holds a unique token, so a search for it finds it when it is readable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma_core import ALMA, NotFound

AGENTS = {"a": {"share_with": ["b"]}, "b": {}, "c": {"inherit_from": ["a"]}}
READS = {"a": {"a", "*"}, "b": {"b", "a", "*"}, "c": {"c", "a", "*"}}
PROJECTS = ("p1", "p2")
USERS = ("u1", "u2", None)


@dataclass
class Row:
    owner: str
    kind: str  # knowledge | preference | outcome
    user: str | None
    token: str


@dataclass
class Model:
    rows: dict[str, dict[str, Row]] = field(default_factory=lambda: {p: {} for p in PROJECTS})
    counts: dict[str, int] = field(default_factory=dict)


def _token(rng: random.Random) -> str:
    return "tok" + "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))


def run(directory: Path, ops: int, seed: int = 7) -> dict[str, int]:
    """Run `ops` random operations; raises AssertionError on the first divergence. Returns op counts."""
    rng = random.Random(seed)
    db = directory / "iso.db"
    almas = {p: ALMA(project_id=p, agents=AGENTS, storage=db, embedder="mock") for p in PROJECTS}
    model = Model()
    try:
        for step in range(ops):
            project = rng.choice(PROJECTS)
            op = rng.choices(
                ["knowledge", "preference", "learn", "retrieve", "scoped", "get_other", "delete", "delete_user",
                 "forget", "transfer"],
                weights=[22, 8, 10, 25, 10, 5, 8, 4, 4, 1 if ops >= 200 else 0],
            )[0]  # fmt: skip
            model.counts[op] = model.counts.get(op, 0) + 1
            globals()[f"_{op}"](almas, model, project, rng, directory)
            if step % 100 == 99:
                _check_all(almas, model)
        _check_all(almas, model)
    finally:
        for alma in almas.values():
            alma.close()
    return model.counts


def _knowledge(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    agent, user, token = rng.choice("abc"), rng.choice(USERS), _token(rng)
    metadata = {"user_id": user} if user else {}
    m = almas[project].add_domain_knowledge(agent, "facts", f"fact {token}", metadata=metadata)
    model.rows[project][m.id] = Row(agent, "knowledge", user, token)


def _preference(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    user, token = rng.choice(USERS[:2]), _token(rng)
    agent = rng.choice(["a", "b", "c", None])
    m = almas[project].add_user_preference(user, f"prefers {token}", agent=agent)  # type: ignore[arg-type]
    model.rows[project][m.id] = Row(agent or "*", "preference", user, token)


def _learn(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    agent, token, user = rng.choice("abc"), _token(rng), rng.choice(USERS)
    m = almas[project].learn(agent, f"task {token}", "success", f"strategy {token}", task_type="work",
                             metadata={"user_id": user} if user else None)  # fmt: skip
    model.rows[project][m.id] = Row(agent, "outcome", user, token)


def _pick(model: Model, project: str, rng: random.Random) -> tuple[str, Row] | None:
    rows = model.rows[project]
    if not rows:
        return None
    memory_id = rng.choice(sorted(rows))
    return memory_id, rows[memory_id]


def _retrieve(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    agent, picked = rng.choice("abc"), _pick(model, project, rng)
    if picked is None:
        return
    memory_id, row = picked
    user = row.user if row.kind == "preference" else rng.choice(USERS)
    found = almas[project].retrieve(f"{row.token}", agent, top_k=3, user_id=user)
    ids = {m.id for m in found}
    for m in found:
        seen = model.rows[project].get(m.id)
        assert seen is not None, f"{agent} in {project} got {m.id}, not of this project or deleted"
        assert seen.owner in READS[agent], f"{agent} read {seen.owner}'s memory {m.id}"
        if seen.kind == "preference" and user is not None:
            assert seen.user == user, f"{agent} asked for {user}'s preferences, got {seen.user}'s"
    readable = row.owner in READS[agent] and (row.kind != "preference" or user in (None, row.user))
    if readable:
        assert memory_id in ids, f"{agent} could not find its readable {row.kind} {memory_id} by its token"


def _scoped(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    agent, picked = rng.choice("abc"), _pick(model, project, rng)
    if picked is None:
        return
    memory_id, row = picked
    found = almas[project].retrieve_scoped(row.token, "project_wide", agent=agent, top_k=3)
    for m in found:
        seen = model.rows[project].get(m.id)
        assert seen is not None and seen.owner in READS[agent], f"retrieve_scoped leaked {m.id} to {agent}"
    if row.owner in READS[agent] and row.kind != "preference":
        assert memory_id in {m.id for m in found}


def _get_other(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    other = PROJECTS[1 - PROJECTS.index(project)]
    picked = _pick(model, other, rng)
    if picked is None or picked[0] in model.rows[project]:
        return
    try:
        almas[project].get(picked[0])
    except NotFound:
        return
    raise AssertionError(f"{project} read {other}'s memory {picked[0]}")


def _delete(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    picked = _pick(model, project, rng)
    if picked is not None:
        almas[project].delete(picked[0])
        del model.rows[project][picked[0]]


def _delete_user(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    user = rng.choice(USERS[:2])
    almas[project].delete_user(user)  # type: ignore[arg-type]
    model.rows[project] = {i: r for i, r in model.rows[project].items() if r.user != user}


def _forget(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, _: Path) -> None:
    agent = rng.choice("abc")
    almas[project].forget(agent=agent, older_than_days=0)  # everything of the agent's learnt types, so far
    model.rows[project] = {i: r for i, r in model.rows[project].items()
                           if r.owner != agent or r.kind == "preference"}  # fmt: skip


def _transfer(almas: dict[str, ALMA], model: Model, project: str, rng: random.Random, directory: Path) -> None:
    """Export one project and import it into the other: the copies belong to the other project."""
    other = PROJECTS[1 - PROJECTS.index(project)]
    path = directory / "transfer.jsonl"
    almas[project].export(path)
    almas[other].import_(path)
    for memory_id, row in model.rows[project].items():
        model.rows[other][memory_id] = Row(row.owner, row.kind, row.user, row.token)


def _check_all(almas: dict[str, ALMA], model: Model) -> None:
    """What each project lists is exactly the model: nothing lost, nothing leaked, nothing left."""
    for project, alma in almas.items():
        listed = {m.id for m in alma.list_memories(memory_types=["knowledge", "preference", "outcome"])}
        assert listed == set(model.rows[project]), f"{project}: store and model differ"
        expected: dict[str, Any] = {}
        for row in model.rows[project].values():
            expected[row.owner] = expected.get(row.owner, 0) + 1
        by_agent: dict[str, int] = {}
        for m in alma.list_memories(memory_types=["knowledge", "preference", "outcome"]):
            by_agent[m.agent] = by_agent.get(m.agent, 0) + 1
        assert by_agent == expected
