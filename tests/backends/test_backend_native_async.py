"""On PostgreSQL the facade's async twins run their storage work on psycopg's async pool (no sync
connection, no worker thread doing storage), and give what the sync methods give on an identical store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest_pg import drop_schemas, new_schema

from alma_core import ALMA, NotFound
from alma_core.storage.postgres import PostgresStorage

START = datetime(2025, 1, 1, tzinfo=UTC)
ITEMS: list[dict[str, Any]] = [
    {"agent": "bot", "task": f"log in attempt {i}", "outcome": i % 4 != 3, "task_type": "auth",
     "strategy_used": ["wait for the form", "retry the click", "submit with the enter key"][i % 3],
     "error_message": None if i % 4 != 3 else "timeout on submit", "timestamp": START + timedelta(minutes=i)}
    for i in range(12)
]  # fmt: skip
QUERIES = ["log in attempt", "timeout on submit", "tokens expire", "dark mode"]


@pytest.fixture
def pair(pg_uri: str) -> Iterator[tuple[ALMA, ALMA]]:
    """Two ALMAs of one project on two empty schemas: one driven sync, one async."""
    schemas = [new_schema(), new_schema()]
    almas = [ALMA("p", storage=PostgresStorage(pg_uri, schema=s, min_pool_size=0, max_pool_size=4), embedder="mock")
             for s in schemas]  # fmt: skip
    yield almas[0], almas[1]
    for alma in almas:
        alma.close()
    drop_schemas(pg_uri, *schemas)


def _no_sync_storage(monkeypatch: pytest.MonkeyPatch, store: PostgresStorage) -> None:
    """Every sync path to the database fails the test."""

    def forbidden(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"sync storage call {name} on the async path")

        return call

    for name in ("transaction", "batch", "execute", "generation", "_autocommit", "_put_unlocked", "_analyze"):
        monkeypatch.setattr(store, name, forbidden(name))


def _view(memories: Any) -> list[tuple[str, str, float]]:
    return [(m.memory_type.value, m.text, round(m.confidence, 6)) for m in memories]


def _ranked(found: Any) -> list[tuple[float, str, str]]:
    """Best first; ties (broken by the memories' random ids) in text order."""
    return sorted((-round(m.score, 4), m.memory_type.value, m.text) for m in found.ranked())


class _TickingClock(datetime):
    """`datetime` whose `now()` moves one microsecond per call from a fixed instant: every `utcnow()` in
    alma_core reads `_models.datetime`, so both stores see the same ordered times whatever the machine's
    load (the wall clock let a new memory's decay cross a rounding step on one store and not the other)."""

    ticks = itertools.count()

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=next(cls.ticks))


@pytest.fixture
async def closing(pair: tuple[ALMA, ALMA]) -> AsyncIterator[None]:
    yield
    await pair[1].storage.aclose()  # type: ignore[attr-defined]


async def test_async_twins_use_the_async_pool_and_equal_the_sync_path(
    pair: tuple[ALMA, ALMA], closing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, native = pair
    store: PostgresStorage = native.storage  # type: ignore[assignment]
    sync_requests = store._pool.get_stats().get("requests_num", 0)
    monkeypatch.setattr("alma_core._models.datetime", _TickingClock)
    with monkeypatch.context() as patch:
        _no_sync_storage(patch, store)
        for item in ITEMS[:6]:
            assert (sync.learn(**item)).task == (await native.alearn(**item)).task
        assert len(sync.learn_many(ITEMS[6:])) == len(await native.alearn_many(ITEMS[6:])) == 6
        facts = [("bot", "auth", "Tokens expire after one hour"), ("bot", "auth", "Sessions rotate nightly")]
        for fact in facts:
            sync.add_domain_knowledge(*fact, created_at=START)
            await native.aadd_domain_knowledge(*fact, created_at=START)
        sync.add_user_preference("ana", "dark mode everywhere", created_at=START)
        await native.aadd_user_preference("ana", "dark mode everywhere", created_at=START)
        sync.add_anti_pattern("bot", "clicking twice", "double submits", created_at=START)
        await native.aadd_anti_pattern("bot", "clicking twice", "double submits", created_at=START)
        for query in QUERIES:
            expected = _ranked(sync.retrieve(query, "bot", top_k=50, user_id="ana"))
            assert expected and _ranked(await native.aretrieve(query, "bot", top_k=50, user_id="ana")) == expected
        again = await native.aretrieve(QUERIES[0], "bot", top_k=50, user_id="ana")
        assert native._cache.hit_ratio > 0 and _ranked(again) == _ranked(sync.retrieve(QUERIES[0], "bot", top_k=50,
                                                                                       user_id="ana"))  # fmt: skip
        concurrent = await asyncio.gather(*(native.aretrieve(q, "bot", top_k=50) for q in QUERIES * 3))
        assert [_ranked(s) for s in concurrent] == [_ranked(sync.retrieve(q, "bot", top_k=50)) for q in QUERIES * 3]
        preference = (await native.aretrieve("dark mode", "bot", user_id="ana")).preferences[0]
        assert (await native.aget(preference.id)).text == preference.text
        decayed = sync.decay_confidence(half_life_days=30)
        assert decayed and _view(decayed) == _view(await native.adecay_confidence(half_life_days=30))
        forgotten = sync.forget(below_confidence=0.2)
        assert forgotten and _view(forgotten) == _view(await native.aforget(below_confidence=0.2))
        assert (await native.adelete(preference.id)).id == preference.id
        with pytest.raises(NotFound):
            await native.aget(preference.id)
        with pytest.raises(NotFound):
            await native.adelete(preference.id)
        sync.delete(sync.retrieve("dark mode", "bot", user_id="ana").preferences[0].id)
        scoped = await native.aretrieve_scoped("log in attempt", "agent_only", agent="bot", top_k=50)
        assert _ranked(scoped) == _ranked(sync.retrieve_scoped("log in attempt", "agent_only", agent="bot", top_k=50))
        volatile = {"cache_hit_ratio"}  # concurrent retrieves all miss the cache
        assert (await native.astats()).model_dump(exclude=volatile) == sync.stats().model_dump(exclude=volatile)
        pool = store._apools[asyncio.get_running_loop()]
        assert pool.get_stats()["requests_num"] > 20  # every storage step went through the async pool
    assert store._pool.get_stats().get("requests_num", 0) == sync_requests  # ... and none through the sync one
    assert _view(native.list_memories()) == _view(sync.list_memories())
    assert native.stats().model_dump(exclude=volatile) == sync.stats().model_dump(exclude=volatile)
