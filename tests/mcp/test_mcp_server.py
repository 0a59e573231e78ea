"""The MCP server through real clients: stdio (a spawned subprocess) and streamable HTTP (a server
subprocess on the loopback port it binds itself with `--port 0`, one per module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from _helpers import started_url, stop
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from alma_core import ALMA, load_config
from alma_core.storage import ListRecords

TOKEN = "test-token-0123456789"
AGENTS = {
    "helena": {
        "can_learn": ["testing_strategies", "selector_patterns"],
        "cannot_learn": ["backend_logic"],
        "share_with": ["qa_lead"],
    },
    "victor": {"can_learn": ["api_patterns", "database_queries"], "inherit_from": ["qa_lead"]},
    "qa_lead": {},
}
TOOL_NAMES = {
    "alma_retrieve",
    "alma_learn",
    "alma_add_preference",
    "alma_add_knowledge",
    "alma_forget",
    "alma_stats",
    "alma_health",
    "alma_consolidate",
    "alma_checkpoint",
    "alma_resume",
    "alma_merge_states",
    "alma_workflow_learn",
    "alma_link_artifact",
    "alma_get_artifacts",
    "alma_cleanup_checkpoints",
    "alma_retrieve_scoped",
}


def write_config(directory: Path) -> Path:
    """A config with the three test agents, mock embeddings and an absolute storage_dir."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    data = {
        "alma": {
            "project_id": "mcp-test",
            "storage_dir": str(directory),
            "embedding_provider": "mock",
            "agents": AGENTS,
        }
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def server_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ALMA_MCP_TOKEN", None)
    return env


def snapshot(config: Path) -> tuple[dict[str, Any], list[tuple[str, str, int]]]:
    """What the store holds: memory counts and every record key, read by a separate ALMA on the same file."""
    with ALMA(config=load_config(config)) as alma:
        stats = alma.stats().model_dump()
        records = alma.storage.execute(ListRecords(alma.project_id, "", prefix=True))
        return stats, sorted((r.namespace, r.key, r.seq) for r in records)


@asynccontextmanager
async def stdio_session(config: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "alma_core.mcp", "--config", str(config)], env=server_env()
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, token: str = TOKEN) -> AsyncIterator[ClientSession]:
    client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120)
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


class HttpServer:
    def __init__(self, config: Path, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.config, self.url, self.proc = config, url, proc


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One HTTP server subprocess for the module, on the loopback port it binds itself (`--port 0`) and
    prints, with a known token."""
    config = write_config(tmp_path_factory.mktemp("mcp-http"))
    cmd = [sys.executable, "-m", "alma_core.mcp", "--config", str(config), "--transport", "http"]
    cmd += ["--port", "0", "--token", TOKEN]
    log_path = config.parent / "server.log"
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(cmd, env=server_env(), stdout=subprocess.DEVNULL, stderr=log)
    url = started_url(proc, log_path, "alma mcp: serving streamable HTTP on")
    httpx.get(url, timeout=120)  # any answer (401 without the token): uvicorn accepts; tests keep short timeouts
    yield HttpServer(config, url, proc)
    stop(proc)


# ---- every tool, once, with good arguments ------------------------------------------------------------


async def call_ok(session: ClientSession, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(name, args)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.isError, f"{name}: {text}"
    assert result.structuredContent is not None and text
    return result.structuredContent


async def exercise_memory_tools(session: ClientSession) -> None:
    learned = await call_ok(
        session,
        "alma_learn",
        {
            "agent": "helena",
            "task": "Test the login form",
            "outcome": "success",
            "strategy_used": "wait for the submit selector",
            "task_type": "testing_strategies",
        },
    )
    assert learned["success"] is True and learned["task_type"] == "testing_strategies"
    await call_ok(
        session, "alma_add_preference", {"user_id": "u1", "preference": "Use pytest fixtures", "category": "code_style"}
    )
    await call_ok(
        session,
        "alma_add_knowledge",
        {"agent": "helena", "domain": "selector_patterns", "fact": "The login button has data-test=submit"},
    )
    found = await session.call_tool(
        "alma_retrieve", {"task": "Test the login form", "agent": "helena", "user_id": "u1"}
    )
    data = found.structuredContent
    assert not found.isError and data is not None
    assert found.content[0].text == data["prompt"]  # type: ignore[union-attr]  # the text is to_prompt()
    assert "wait for the submit selector" in data["prompt"] and "Use pytest fixtures" in data["prompt"]
    assert data["memories"]["outcome"][0]["id"] == learned["id"]
    stats = await call_ok(session, "alma_stats", {"agent": "helena"})
    assert stats["outcomes"] >= 1 and stats["knowledge"] >= 1
    health = await call_ok(session, "alma_health", {})
    assert health["status"] == "ok" and health["project_id"] == "mcp-test"
    forgot = await call_ok(session, "alma_forget", {"older_than_days": 365, "dry_run": True})
    assert forgot == {"count": 0, "dry_run": True, "ids": []}
    consolidated = await call_ok(
        session, "alma_consolidate", {"agent": "helena", "memory_type": "knowledge", "dry_run": True}
    )
    assert consolidated["dry_run"] is True and consolidated["merged_count"] == 0


async def exercise_workflow_tools(session: ClientSession) -> None:
    cp = await call_ok(
        session, "alma_checkpoint", {"workflow_id": "wf-1", "state": {"step": 1, "todo": ["a"]}, "agent": "helena"}
    )
    assert cp["id"]
    resumed = await call_ok(session, "alma_resume", {"workflow_id": "wf-1"})
    assert resumed["state"] == {"step": 1, "todo": ["a"]}
    merged = await call_ok(
        session,
        "alma_merge_states",
        {
            "workflow_id": "wf-1",
            "states": [{"todo": ["a"], "lead": "x"}, {"todo": ["b", "a"], "lead": "y"}],
            "agents": ["helena", "victor"],
            "reducer": {"todo": "merge_lists", "*": "priority_agent"},
            "priorities": ["helena", "victor"],
        },
    )
    assert merged["state"] == {"todo": ["a", "b"], "lead": "x"}
    assert [m["agent"] for m in merged["metadata"]["merged_from"]] == ["helena", "victor"]
    learned = await call_ok(
        session,
        "alma_workflow_learn",
        {
            "agent": "helena",
            "workflow_id": "wf-1",
            "task": "Test the signup form",
            "outcome": "failure",
            "strategy_used": "sleep 5 seconds",
            "task_type": "testing_strategies",
            "checkpoint_id": cp["id"],
        },
    )
    assert learned["workflow_id"] == "wf-1"
    await call_ok(
        session, "alma_link_artifact", {"workflow_id": "wf-1", "artifact_type": "test", "ref": "tests/test_signup.py"}
    )
    artifacts = await call_ok(session, "alma_get_artifacts", {"workflow_id": "wf-1"})
    assert artifacts["count"] == 1
    scoped = await call_ok(
        session,
        "alma_retrieve_scoped",
        {"query": "signup form", "scope": "workflow_only", "agent": "helena", "workflow_id": "wf-1"},
    )
    assert [m["id"] for m in scoped["memories"]["outcome"]] == [learned["id"]]
    cleaned = await call_ok(session, "alma_cleanup_checkpoints", {"older_than_days": 3650, "keep_latest": 1})
    assert cleaned == {"deleted": 0}


async def check_tool_list(session: ClientSession) -> None:
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    assert tools["alma_retrieve"].annotations.readOnlyHint is True  # type: ignore[union-attr]
    assert tools["alma_forget"].annotations.destructiveHint is True  # type: ignore[union-attr]
    assert tools["alma_learn"].annotations.readOnlyHint is False  # type: ignore[union-attr]
    learn = tools["alma_learn"].inputSchema
    assert {"agent", "task", "outcome"} <= set(learn["required"])
    assert {"strategy_used", "task_type", "duration_ms"} <= set(learn["properties"])
    assert all(p.get("description") for p in learn["properties"].values())


async def test_stdio_lists_the_16_tools_and_calls_each(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with stdio_session(config) as session:
        await check_tool_list(session)
        await exercise_memory_tools(session)
        await exercise_workflow_tools(session)
    assert snapshot(config)[0]["outcomes"] == 2


async def test_http_lists_the_16_tools_and_calls_each(http_server: HttpServer) -> None:
    async with http_session(http_server.url) as session:
        await check_tool_list(session)
        await exercise_memory_tools(session)
        await exercise_workflow_tools(session)


def test_stdio_stdout_carries_only_protocol_messages(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "alma_health", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "alma_learn", "arguments": {}}},
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "alma_core.mcp", "--config", str(config), "--log-level", "DEBUG"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
    proc.stdin.flush()
    replies = [json.loads(proc.stdout.readline()) for _ in range(3)]  # every stdout line is a JSON-RPC message
    out, err = proc.communicate(timeout=120)
    assert out == b"" and proc.returncode == 0, err.decode()[-2000:]
    replies.sort(key=lambda r: r["id"])  # requests are served concurrently: replies may come in any order
    assert [r["id"] for r in replies] == [1, 2, 3] and all(r["jsonrpc"] == "2.0" for r in replies)
    assert replies[1]["result"]["isError"] is False and replies[2]["result"]["isError"] is True
    assert b"DEBUG" in err  # the logs went to stderr


def _call(i: int, name: str, arguments: bytes) -> bytes:
    """A raw tools/call line (what a real client cannot send: NaN, lone surrogates, 5,000 digits)."""
    head = b'{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": "%s", ' % (i, name.encode())
    return head + b'"arguments": ' + arguments + b"}}"


def _raw_stdio(config: Path, calls: list[bytes]) -> dict[int, Any]:
    """Replies by id to `calls` (ids 2..) and then alma_health (id 99), over a raw stdio session."""
    lines = [json.dumps(INIT).encode(), b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', *calls,
             _call(99, "alma_health", b"{}")]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "alma_core.mcp", "--config", str(config)], env=server_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"\n".join(lines) + b"\n")
    proc.stdin.flush()
    replies = [json.loads(proc.stdout.readline()) for _ in range(len(calls) + 2)]  # read before stdin closes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return {r["id"]: r for r in replies}


def test_stdio_refuses_nan_and_infinity_instead_of_storing_null(tmp_path: Path) -> None:
    """The SDK's parser reads NaN and Infinity, and its session handed the tools null in their place:
    a checkpoint stored {"x": null} for {"x": NaN}. Now each such call is a tool error and nothing is stored."""
    config = write_config(tmp_path)
    before = snapshot(config)
    replies = _raw_stdio(config, [
        _call(2, "alma_checkpoint", b'{"workflow_id": "wf", "state": {"x": NaN}}'),
        _call(3, "alma_learn", b'{"agent": "helena", "task": "t", "outcome": "success", '
                               b'"task_type": "testing_strategies", "metadata": {"ms": [Infinity]}}'),
    ])  # fmt: skip
    for i in (2, 3):
        assert replies[i]["result"]["isError"] is True
        assert "NaN or Infinity" in replies[i]["result"]["content"][0]["text"]
    assert replies[99]["result"]["isError"] is False  # still serving
    assert snapshot(config) == before


def test_stdio_answers_a_call_the_sdk_cannot_parse_by_its_id(tmp_path: Path) -> None:
    """Too deep for the SDK's parser, a lone surrogate, a 5,000-digit number: the SDK only logged them and
    the client waited for a reply forever. Each is now a tool error under the call's id."""
    config = write_config(tmp_path)
    deep = b'{"b": ' * 5_000 + b"1" + b"}" * 5_000
    replies = _raw_stdio(config, [
        _call(2, "alma_checkpoint", b'{"workflow_id": "wf", "state": ' + deep + b"}"),
        _call(3, "alma_learn", b'{"agent": "helena", "task": "\\ud800", "outcome": "success"}'),
        _call(4, "alma_retrieve", b'{"agent": "helena", "task": "t", "top_k": ' + b"9" * 5_000 + b"}"),
    ])  # fmt: skip
    for i, name in [(2, "alma_checkpoint"), (3, "alma_learn"), (4, "alma_retrieve")]:
        assert replies[i]["result"]["isError"] is True
        assert replies[i]["result"]["content"][0]["text"].startswith(f"{name}: the request is not valid JSON-RPC")
    assert replies[99]["result"]["isError"] is False


# ---- bad calls: one-line errors, nothing written, the server keeps serving ------------------------------

BIG = "x" * 20_001


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"b": value}
    return value


BAD_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("alma_retrieve", {}),
    ("alma_retrieve", {"task": "", "agent": "helena"}),
    ("alma_retrieve", {"task": "t", "agent": "helena", "top_k": "five"}),
    ("alma_retrieve", {"task": "t", "agent": "helena", "top_k": 0}),
    ("alma_retrieve", {"task": "t", "agent": "helena", "top_k": 101}),
    ("alma_retrieve", {"task": "t", "agent": "nobody"}),
    ("alma_retrieve", {"task": "t", "agent": "helena", "memory_types": ["bogus"]}),
    ("alma_learn", {"agent": "helena", "task": "t"}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "maybe"}),
    ("alma_learn", {"agent": "nobody", "task": "t", "outcome": "success"}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "success", "task_type": "backend_logic"}),
    ("alma_learn", {"agent": "helena", "task": BIG, "outcome": "success"}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "success", "duration_ms": -1}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "success", "bogus": 1}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "success", "metadata": {"blob": "y" * 70_000}}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "success", "strategy_used": 123}),
    ("alma_learn", {"agent": "helena", "task": "t", "outcome": "true"}),
    ("alma_add_preference", {"preference": "tabs"}),
    ("alma_add_preference", {"user_id": "u1", "preference": "tabs", "agent": "nobody"}),
    ("alma_add_preference", {"user_id": "u1", "preference": "   "}),
    ("alma_add_knowledge", {"agent": "helena", "domain": "backend_logic", "fact": "f"}),
    ("alma_add_knowledge", {"agent": "helena", "domain": "selector_patterns", "fact": "f", "confidence": 1.5}),
    ("alma_forget", {}),
    ("alma_forget", {"below_confidence": 2}),
    ("alma_forget", {"agent": "nobody", "older_than_days": 1}),
    ("alma_stats", {"agent": "nobody"}),
    ("alma_stats", {"agent": 5}),
    ("alma_health", {"x": 1}),
    ("alma_consolidate", {"agent": "nobody"}),
    ("alma_consolidate", {"agent": "helena", "memory_type": "outcome"}),
    ("alma_checkpoint", {"workflow_id": "wf-bad", "state": {"blob": "z" * (1024 * 1024)}}),
    ("alma_checkpoint", {"workflow_id": "wf-bad", "state": "not an object"}),
    ("alma_checkpoint", {"state": {"a": 1}}),
    ("alma_checkpoint", {"workflow_id": "wf-bad", "state": {"a": 1}, "agent": "nobody"}),
    ("alma_checkpoint", {"workflow_id": "wf-bad", "state": _nested(120)}),  # over 100 levels: as over HTTP
    ("alma_merge_states", {"workflow_id": "wf-bad", "states": [_nested(120)]}),
    ("alma_resume", {"workflow_id": "never-checkpointed"}),
    ("alma_merge_states", {"workflow_id": "wf-bad", "states": []}),
    ("alma_merge_states", {"workflow_id": "wf-bad", "states": [{"a": 1}], "reducer": "bogus"}),
    ("alma_workflow_learn", {"agent": "nobody", "workflow_id": "wf-bad", "task": "t", "outcome": "success"}),
    ("alma_link_artifact", {"workflow_id": "wf-bad", "artifact_type": "binary", "ref": "a.out"}),
    ("alma_get_artifacts", {"workflow_id": "wf-bad", "artifact_type": "binary"}),
    ("alma_cleanup_checkpoints", {"keep_latest": -1}),
    ("alma_retrieve_scoped", {"query": "q", "scope": "galaxy"}),
    ("alma_retrieve_scoped", {"query": "q", "scope": "agent_only", "agent": "nobody"}),
    ("alma_nope", {}),
]


async def test_bad_calls_are_one_line_errors_and_write_nothing(http_server: HttpServer) -> None:
    assert len(BAD_CALLS) >= 30
    async with http_session(http_server.url) as session:
        before = snapshot(http_server.config)
        for name, args in BAD_CALLS:
            result = await session.call_tool(name, args)
            text = result.content[0].text  # type: ignore[union-attr]
            assert result.isError, f"{name}({args!r:.80}) was accepted: {text[:200]}"
            assert "\n" not in text and 0 < len(text) <= 300, text
        assert snapshot(http_server.config) == before
        await call_ok(session, "alma_health", {})  # still serving


# ---- HTTP security ---------------------------------------------------------------------------------------

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_http_without_the_right_token_is_refused(http_server: HttpServer, auth: str | None) -> None:
    headers = {**ACCEPT, **({"Authorization": auth} if auth is not None else {})}
    response = httpx.post(http_server.url, json=INIT, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("origin", ["http://evil.example", "https://attacker.test:8765", "null"])
def test_http_refuses_a_foreign_origin_even_with_the_token(http_server: HttpServer, origin: str) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}", "Origin": origin}
    assert httpx.post(http_server.url, json=INIT, headers=headers).status_code == 403


def test_http_accepts_the_token_from_a_local_origin(http_server: HttpServer) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}", "Origin": "http://localhost:3000"}
    response = httpx.post(http_server.url, json=INIT, headers=headers)
    assert response.status_code == 200 and "mcp-session-id" in response.headers


async def test_two_http_clients_learn_at_once_without_losing_writes(http_server: HttpServer) -> None:
    before = snapshot(http_server.config)[0]["outcomes"]

    async def learner(agent: str) -> None:
        async with http_session(http_server.url) as session:
            for i in range(25):
                await call_ok(
                    session,
                    "alma_learn",
                    {
                        "agent": agent,
                        "task": f"{agent} task {i}",
                        "outcome": i % 3 != 0,
                        "strategy_used": f"plan {i % 4}",
                        "task_type": "api_patterns",
                    },
                )

    async with anyio.create_task_group() as tg:
        tg.start_soon(learner, "victor")
        tg.start_soon(learner, "qa_lead")
    stats = snapshot(http_server.config)[0]
    assert stats["outcomes"] == before + 50
    assert stats["by_agent"]["qa_lead"] >= 25 and stats["by_agent"]["victor"] >= 25


# ---- startup rules, laziness ------------------------------------------------------------------------------


def test_a_non_loopback_host_needs_allow_remote_and_an_explicit_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from alma_core import AlmaError
    from alma_core.mcp._auth import resolve_token

    monkeypatch.delenv("ALMA_MCP_TOKEN", raising=False)
    with pytest.raises(AlmaError, match="--allow-remote"):
        resolve_token("t", "0.0.0.0", allow_remote=False)
    with pytest.raises(AlmaError, match="explicit token"):
        resolve_token(None, "192.168.1.5", allow_remote=True)
    assert resolve_token("t", "0.0.0.0", allow_remote=True) == "t"
    monkeypatch.setenv("ALMA_MCP_TOKEN", "from-env")
    assert resolve_token(None, "127.0.0.1", allow_remote=False) == "from-env"


def test_a_loopback_server_without_a_token_generates_one_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from alma_core.mcp._auth import resolve_token

    monkeypatch.delenv("ALMA_MCP_TOKEN", raising=False)
    token = resolve_token(None, "localhost", allow_remote=False)
    out, err = capsys.readouterr()
    assert len(token) >= 32 and token in err and out == ""


def test_the_cli_refuses_a_remote_host_without_the_flag(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "alma_core.mcp",
        "--config",
        str(write_config(tmp_path)),
        "--transport",
        "http",
        "--host",
        "0.0.0.0",
        "--token",
        "t",
    ]
    done = subprocess.run(cmd, capture_output=True, env=server_env(), timeout=240)
    assert done.returncode == 2 and done.stdout == b""
    assert b"--allow-remote" in done.stderr


def test_importing_alma_core_and_its_mcp_package_does_not_load_the_sdk() -> None:
    code = "import sys, alma_core, alma_core.mcp; alma_core.ALMA; assert 'mcp' not in sys.modules, 'mcp loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=240)


def test_http_refuses_a_foreign_host_header(http_server: HttpServer) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}", "Host": "evil.example:8765"}
    assert httpx.post(http_server.url, json=INIT, headers=headers).status_code == 421


def test_http_refuses_nan_and_infinity_instead_of_storing_null(http_server: HttpServer) -> None:
    """As over stdio: the SDK would hand the tool null for NaN (a real client cannot even send it; a raw
    one can), and answered 500 to a 5,000-level state. The guard answers each with a tool error."""
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(headers=headers, timeout=120) as c:
        session = {"mcp-session-id": c.post(http_server.url, json=INIT).headers["mcp-session-id"]}
        c.post(http_server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        before = snapshot(http_server.config)
        deep = b'{"b": ' * 5_000 + b"1" + b"}" * 5_000  # the SDK's json.loads: RecursionError, a 500
        cases = [(b'{"workflow_id": "wf-nan", "state": {"x": NaN}}', "the arguments hold NaN"),
                 (b'{"workflow_id": "wf-nan", "state": {"x": [1, -Infinity]}}', "the arguments hold NaN"),
                 (b'{"workflow_id": "wf-nan", "state": ' + deep + b"}", "the request is nested")]  # fmt: skip
        for i, (args, why) in enumerate(cases, 2):
            reply = c.post(http_server.url, content=_call(i, "alma_checkpoint", args), headers=session)
            assert reply.status_code == 200 and reply.json()["id"] == i and reply.json()["result"]["isError"] is True
            assert reply.json()["result"]["content"][0]["text"].startswith(f"alma_checkpoint: {why}")
        assert snapshot(http_server.config) == before


def test_a_missing_sdk_raises_missing_dependency(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['mcp'] = None\n"
        "from alma_core import ALMA, MissingDependency\n"
        "from alma_core.mcp import build_server\n"
        "try:\n    build_server(ALMA(embedder='mock', storage=sys.argv[1]))\n"
        "except MissingDependency as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.db")], capture_output=True, timeout=240)
    assert done.stdout.decode().strip() == "mcp is not installed: pip install 'alma-core[mcp]'", done.stderr.decode()
