"""Round-trip latency of alma_retrieve and alma_learn through real MCP clients, over stdio and HTTP.

    .venv/bin/python benchmarks/bench_mcp.py [--calls 200] [--embedder mock|local] [--seed-memories 500]

Each transport gets its own server subprocess and store, seeded with memories through alma_learn; then
each tool is called `--calls` times in sequence and the per-call wall time is summarised (p50 / p95, ms).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import yaml
from _common import atimed_ms, percentile, start_server
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

TOKEN = "bench-token-0123456789"


def write_config(directory: Path, embedder: str) -> Path:
    path = directory / "config.yaml"
    data = {"alma": {"project_id": "bench", "storage_dir": str(directory), "embedding_provider": embedder}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@asynccontextmanager
async def stdio(config: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "alma_core.mcp", "--config", str(config)], env=dict(os.environ)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http(config: Path) -> AsyncIterator[ClientSession]:
    cmd = [sys.executable, "-m", "alma_core.mcp", "--config", str(config), "--transport", "http", "--port", "0",
           "--token", TOKEN]  # fmt: skip
    proc, url = start_server(cmd, "alma mcp: serving streamable HTTP on")
    try:
        client = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        async with (
            client,
            streamable_http_client(url, http_client=client) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def bench(session: ClientSession, calls: int, seed: int) -> dict[str, list[float]]:
    async def call(name: str, args: dict[str, Any]) -> None:
        result = await session.call_tool(name, args)
        if result.isError:
            raise RuntimeError(getattr(result.content[0], "text", result.content[0]))

    def learn(i: int) -> Awaitable[None]:
        return call(
            "alma_learn",
            {
                "agent": "coder",
                "task": f"Fix flaky test number {i}",
                "outcome": i % 4 != 0,
                "strategy_used": f"retry with plan {i % 7}",
            },
        )

    def retrieve(i: int) -> Awaitable[None]:
        return call("alma_retrieve", {"task": f"Fix the flaky test {i}", "agent": "coder", "top_k": 5})

    await atimed_ms(learn, seed)  # seed the store (and warm up)
    return {"alma_learn": await atimed_ms(learn, calls), "alma_retrieve": await atimed_ms(retrieve, calls)}


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for name, transport in (("stdio", stdio), ("http", http)):
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), args.embedder)
            async with transport(config) as session:
                for tool, ms in (await bench(session, args.calls, args.seed_memories)).items():
                    rows.append((name, tool, percentile(ms, 50), percentile(ms, 95), len(ms)))
    print(f"\nMCP round trips ({args.embedder} embedder, {args.seed_memories} seeded outcomes)")
    print(f"{'transport':<10}{'tool':<16}{'p50 ms':>9}{'p95 ms':>9}{'calls':>7}")
    for kind, tool, p50, p95, n in rows:
        print(f"{kind:<10}{tool:<16}{p50:>9.2f}{p95:>9.2f}{n:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seed-memories", type=int, default=300)
    parser.add_argument("--embedder", choices=("mock", "local"), default="mock")
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
