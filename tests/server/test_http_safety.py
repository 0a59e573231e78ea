"""Bad requests, tokens, projects and concurrency, against a real `alma serve`: every refusal is a
problem document, and nothing is written by a refused request."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alma_core.cli import main

from .conftest import OTHER, OTHER_TOKEN, PROJECT, TOKEN, Server, assert_problem, server_env, snapshot, write_config

LEARN = {"agent": "helena", "task": "Test the login form", "outcome": "success", "task_type": "testing_strategies"}
BIG = "x" * 20_001
DEEP = b'{"b":' * 950 + b"1" + b"}" * 950  # json.loads reads it; the state serializer recursed past Python's limit


def _learn(**changes: Any) -> dict[str, Any]:
    return {**LEARN, **changes}


# (method, path, json body or raw bytes, extra headers, status, error)
BAD: list[tuple[str, str, Any, dict[str, str], int, str]] = [
    ("POST", "/learn", {}, {}, 422, "ValidationError"),
    ("POST", "/learn", {"agent": "helena", "task": "x"}, {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(outcome="maybe"), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(task=""), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(task="   "), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(bogus=1), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(duration_ms="5"), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(duration_ms=-1), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(task=BIG), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(metadata={"blob": "y" * 70_000}), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(metadata=["not", "an", "object"]), {}, 422, "ValidationError"),
    ("POST", "/learn", _learn(task_type="backend_logic"), {}, 403, "ScopeViolation"),
    ("POST", "/learn", _learn(agent="nobody"), {}, 422, "UnknownAgent"),
    ("POST", "/learn", [LEARN], {}, 422, "ValidationError"),
    ("POST", "/learn", b'{"agent": "helena", ', {}, 400, "BadRequest"),
    ("POST", "/learn", b"agent=helena", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "UnsupportedMediaType"),
    ("POST", "/learn", _learn(strategy_used="z" * 3_000_000), {}, 413, "PayloadTooLarge"),
    ("POST", "/learn_many", {"items": []}, {}, 422, "ValidationError"),
    ("POST", "/learn_many", {"items": [LEARN, _learn(agent="nobody")]}, {}, 422, "UnknownAgent"),
    ("POST", "/learn_many", {"items": [LEARN, _learn(task_type="backend_logic")]}, {}, 403, "ScopeViolation"),
    ("POST", "/retrieve", {"task": "x", "agent": "helena", "top_k": 0}, {}, 422, "ValidationError"),
    ("POST", "/retrieve", {"task": "x", "agent": "helena", "top_k": "5"}, {}, 422, "ValidationError"),
    ("POST", "/retrieve", {"task": "x", "agent": "helena", "memory_types": ["bogus"]}, {}, 422, "ValidationError"),
    ("POST", "/retrieve", {"task": "x", "agent": "nobody"}, {}, 422, "UnknownAgent"),
    ("POST", "/preferences", {"preference": "dark mode"}, {}, 422, "ValidationError"),
    ("POST", "/preferences", {"user_id": "u", "preference": "p", "agent": "nobody"}, {}, 422, "UnknownAgent"),
    ("POST", "/knowledge", {"agent": "helena", "domain": "backend_logic", "fact": "f"}, {}, 403, "ScopeViolation"),
    ("POST", "/knowledge", {"agent": "helena", "domain": "selector_patterns", "fact": "f", "confidence": 2}, {}, 422,
     "ValidationError"),
    ("POST", "/anti_patterns", {"agent": "helena", "pattern": ""}, {}, 422, "ValidationError"),
    ("GET", "/memories/no-such-id", None, {}, 404, "NotFound"),
    ("DELETE", "/memories/no-such-id", None, {}, 404, "NotFound"),
    ("GET", "/memories?type=bogus", None, {}, 422, "ValidationError"),
    ("POST", "/forget", {}, {}, 422, "ValidationError"),
    ("POST", "/forget", {"below_confidence": 3}, {}, 422, "ValidationError"),
    ("GET", "/stats?agent=nobody", None, {}, 422, "UnknownAgent"),
    ("POST", "/checkpoints", {"workflow_id": "wf", "state": [1, 2]}, {}, 422, "ValidationError"),
    ("POST", "/checkpoints", {"workflow_id": "wf", "state": {"big": "s" * 1_100_000}}, {}, 422, "ValidationError"),
    ("POST", "/checkpoints", {"workflow_id": "", "state": {}}, {}, 422, "ValidationError"),
    ("POST", "/checkpoints", {"workflow_id": "wf", "state": {}, "agent": "nobody"}, {}, 422, "UnknownAgent"),
    ("GET", "/workflows/no-such-wf/resume", None, {}, 404, "NotFound"),
    ("GET", "/workflows/no-such-wf/checkpoint", None, {}, 404, "NotFound"),
    ("POST", "/merge_states", {"workflow_id": "wf", "states": [{}], "agents": ["helena", "victor"]}, {}, 422,
     "ValidationError"),
    ("POST", "/merge_states", {"workflow_id": "wf", "states": [{}], "reducer": "bogus"}, {}, 422, "ValidationError"),
    ("POST", "/workflow_learn", {**LEARN, "workflow_id": "wf", "checkpoint_id": "nope"}, {}, 404, "NotFound"),
    ("POST", "/artifacts", {"workflow_id": "wf", "artifact_type": "binary", "ref": "x"}, {}, 422, "ValidationError"),
    ("POST", "/retrieve_scoped", {"query": "x", "scope": "workflow_only"}, {}, 422, "ValidationError"),
    ("POST", "/checkpoints/cleanup", {"older_than_days": -1}, {}, 422, "ValidationError"),
    ("POST", "/sessions", {"goal": "no agent"}, {}, 422, "ValidationError"),
    ("POST", "/sessions/helena/no-such-session/end", {}, {}, 404, "NotFound"),
    ("POST", "/sessions/helena/no-such-session/handoff", {"last_action": "a", "last_outcome": "b"}, {}, 404,
     "NotFound"),
    ("POST", "/work_items", {"title": "t", "dependencies": ["no-such-item"]}, {}, 404, "NotFound"),
    ("POST", "/work_items", {"title": ""}, {}, 422, "ValidationError"),
    ("POST", "/work_items/no-such-item/status", {"status": "done"}, {}, 404, "NotFound"),
    ("POST", "/work_items/no-such-item/status", {"status": "finished"}, {}, 422, "ValidationError"),
    ("GET", "/work_items/next?strategy=bogus", None, {}, 422, "ValidationError"),
    ("POST", "/import", b'{"type": "outcome", "agent": "qa_lead", "task": "t", "success": true}\nnot json\n',
     {"content-type": "application/x-ndjson"}, 422, "ValidationError"),
    # found by fuzzing (schemathesis and by hand): each was a 500, a silent null or a write before
    ("POST", "/checkpoints", b'{"workflow_id": "wf", "state": ' + DEEP + b"}", {}, 422, "ValidationError"),
    ("POST", "/merge_states", b'{"workflow_id": "wf", "states": [' + DEEP + b"]}", {}, 422, "ValidationError"),
    ("POST", "/checkpoints", b'{"workflow_id": "wf", "state": {"x": NaN}}', {}, 422, "ValidationError"),
    ("POST", "/checkpoints", b'{"workflow_id": "wf", "state": {"x": [-Infinity]}}', {}, 422, "ValidationError"),
    ("POST", "/merge_states", b'{"workflow_id": "wf", "states": [{"x": Infinity}]}', {}, 422, "ValidationError"),
    ("GET", "/workflows/wf/checkpoints?before=" + "9" * 30, None, {}, 422, "ValidationError"),
    ("POST", "/learn", b'{"agent": "helena", "task": "\xff\xfe", "outcome": "success"}', {}, 400, "BadRequest"),
    ("POST", "/learn", b'{"agent": "helena", "task": "t", "outcome": "success", "duration_ms": ' + b"9" * 5_000 + b"}",
     {}, 400, "BadRequest"),
    ("POST", "/checkpoints", b'{"workflow_id": "wf", "state": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}, 400,
     "BadRequest"),
    ("POST", "/sessions", {"agent": "nobody"}, {}, 422, "UnknownAgent"),
    ("GET", "/sessions?agent=nobody", None, {}, 422, "UnknownAgent"),
    ("GET", "/handoffs/latest?agent=nobody", None, {}, 422, "UnknownAgent"),
    ("POST", "/work_items", {"title": "t", "agent": "nobody"}, {}, 422, "UnknownAgent"),
    ("GET", "/work_items?agent=nobody", None, {}, 422, "UnknownAgent"),
    ("GET", "/no-such-route", None, {}, 404, "NotFound"),
    ("PUT", "/learn", LEARN, {}, 405, "MethodNotAllowed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def before(server: Server) -> tuple[Any, Any]:
    """The store before the bad requests (`test_the_refused_requests_wrote_nothing` compares)."""
    return snapshot(server.config)


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "error"), BAD,
                         ids=[f"{i}-{m} {p} {s}" for i, (m, p, _, _, s, _) in enumerate(BAD)])  # fmt: skip
def test_a_bad_request_is_a_problem_document_and_writes_nothing(
    server: Server, before: Any, method: str, path: str, body: Any, headers: dict[str, str], status: int, error: str
) -> None:
    with server.client() as c:
        if isinstance(body, bytes):
            response = c.request(method, path, content=body, headers={"content-type": "application/json", **headers})
        else:
            response = c.request(method, path, json=body, headers=headers)
    assert_problem(response, status, error)


def test_an_oversized_chunked_body_is_refused_without_a_length(server: Server, before: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"agent": "helena", "task": "'
        for _ in range(40):
            yield b"y" * 100_000
        yield b'", "outcome": "success"}'

    with server.client() as c:
        response = c.post("/learn", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413, "PayloadTooLarge")


def test_a_refused_deep_state_leaves_the_connection_serving(server: Server) -> None:
    with server.client() as c:  # one keep-alive connection: a RecursionError used to reset it
        body = b'{"workflow_id": "wf", "state": ' + DEEP + b"}"
        assert c.post("/checkpoints", content=body, headers={"content-type": "application/json"}).status_code == 422
        assert c.get("/health").json()["status"] == "ok"


def test_a_body_json_cannot_read_says_why(server: Server) -> None:
    with server.client() as c:  # FastAPI's own detail was "There was an error parsing the body"
        response = c.post("/learn", content=b'{"task": "\xff"}', headers={"content-type": "application/json"})
    assert "cannot be read as JSON: not UTF-8" in assert_problem(response, 400, "BadRequest")["detail"]


@pytest.mark.parametrize("method", ["PUT", "OPTIONS"])
def test_method_not_allowed_names_every_method_of_the_path(server: Server, method: str) -> None:
    with server.client() as c:
        response = c.request(method, "/memories/some-id")
    assert_problem(response, 405, "MethodNotAllowed")
    assert response.headers.get_list("allow") == ["DELETE, GET"]  # Starlette named the first route's only


def test_the_refused_requests_wrote_nothing(server: Server, before: Any) -> None:
    assert snapshot(server.config) == before


# ---- tokens, projects, origins ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN[:-1], TOKEN + "x"])
def test_without_the_right_token_nothing_is_read_or_written(server: Server, token: str | None) -> None:
    state = snapshot(server.config)
    with server.client(token) as c:
        assert_problem(c.post("/learn", json=LEARN), 401, "Unauthorized")
        response = c.post("/learn", json={"not": "even valid"})  # auth is checked before the body
        assert_problem(response, 401, "Unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert_problem(c.get("/stats"), 401, "Unauthorized")
    assert snapshot(server.config) == state


def test_a_token_opens_only_its_own_project(server: Server) -> None:
    mine, theirs = snapshot(server.config), snapshot(server.config, OTHER)
    with server.client(TOKEN, project=OTHER) as c:
        assert_problem(c.post("/learn", json=LEARN), 403, "Forbidden")
        assert_problem(c.get("/export"), 403, "Forbidden")
        assert_problem(c.delete("/users/u"), 403, "Forbidden")
    with server.client(OTHER_TOKEN, project=PROJECT) as c:
        assert_problem(c.post("/retrieve", json={"task": "x", "agent": "helena"}), 403, "Forbidden")
    with server.client(TOKEN, project="not-served") as c:
        assert_problem(c.get("/stats"), 403, "Forbidden")
    assert snapshot(server.config) == mine and snapshot(server.config, OTHER) == theirs

    with server.client(OTHER_TOKEN, project=OTHER) as c:  # the other project works with its own token
        c.post("/learn", json=LEARN).raise_for_status()
        assert c.get("/stats").json()["total"] == theirs[0]["total"] + 1
        assert c.get("/health").json()["project_id"] == OTHER
    with server.client() as c:
        found = c.post("/retrieve", json={"task": "Test the login form", "agent": "helena"}).json()
        assert all(m["project_id"] == PROJECT for ms in found["memories"].values() for m in ms)
    assert snapshot(server.config) == mine


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "null"])
def test_a_foreign_origin_is_refused_even_with_the_token(server: Server, origin: str) -> None:
    with server.client() as c:
        response = c.post("/learn", json=LEARN, headers={"origin": origin})
    assert_problem(response, 403, "Forbidden")
    assert "access-control-allow-origin" not in response.headers  # CORS is off unless configured


def test_a_local_origin_is_accepted_and_a_foreign_host_is_not(server: Server) -> None:
    with server.client() as c:
        assert c.get("/stats", headers={"origin": "http://localhost:3000"}).status_code == 200
        assert_problem(c.get("/stats", headers={"host": "evil.example:8765"}), 421, "MisdirectedRequest")


def test_two_concurrent_clients_lose_nothing(server: Server) -> None:
    before = snapshot(server.config)[0]
    errors: list[str] = []

    def learner(agent: str, task_type: str) -> None:
        with server.client() as c:
            for i in range(25):
                r = c.post("/learn", json={"agent": agent, "task": f"{agent} task {i}", "outcome": i % 3 != 0,
                                           "strategy_used": f"plan {i % 4}", "task_type": task_type})  # fmt: skip
                if r.status_code != 201:
                    errors.append(r.text)

    threads = [threading.Thread(target=learner, args=a) for a in (("victor", "api_patterns"), ("qa_lead", "x"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = snapshot(server.config)[0]
    assert not errors
    assert after["outcomes"] == before["outcomes"] + 50
    for agent in ("victor", "qa_lead"):
        assert after["by_agent"][agent] >= before["by_agent"].get(agent, 0) + 25


# ---- startup --------------------------------------------------------------------------------------------


def test_serve_refuses_a_remote_host_without_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", str(write_config(tmp_path)), "--host", "0.0.0.0", "--token", "t"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_serve_refuses_a_remote_host_without_explicit_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.delenv("ALMA_TOKEN", raising=False)
    assert main(["serve", "--config", str(write_config(tmp_path)), "--host", "0.0.0.0", "--allow-remote"]) == 2
    assert "explicit token" in capsys.readouterr().err


def test_serve_refuses_two_projects_sharing_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    # (--port 0: the refusal may not depend on the default port being free; it is checked after the bind)
    assert main(["serve", "--config", config, "--token", "same", "--project-token", "b=same", "--port", "0"]) == 2
    assert "share a token" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["serve"], ["mcp", "--transport", "http"]])
def test_a_port_in_use_is_a_clear_error_at_once(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The servers bind their socket themselves (which is what lets `--port 0` name the port it got)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = ["--config", str(write_config(tmp_path)), "--token", "t" * 24, "--port", str(port)]
        assert main([*command, *args]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main([*command, *args[:-1], "70000"]) == 2
    assert "cannot listen on 127.0.0.1:70000: bind(): port must be 0-65535" in capsys.readouterr().err


def test_a_generated_token_is_printed_once_and_serves_the_config_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from alma_core.server import _tokens, build_parser

    monkeypatch.delenv("ALMA_TOKEN", raising=False)
    args = build_parser().parse_args(["--config", str(write_config(tmp_path)), "--project-token", "b=tb"])
    tokens = _tokens(args)
    err = capsys.readouterr().err
    assert set(tokens) == {PROJECT, "b"} and tokens["b"] == "tb" and len(tokens[PROJECT]) >= 32
    assert err.count("bearer token") == 1 and tokens[PROJECT] in err
    monkeypatch.setenv("ALMA_TOKEN", "from-env")
    assert _tokens(args)[PROJECT] == "from-env" and capsys.readouterr().err == ""


def test_importing_alma_core_server_does_not_load_fastapi() -> None:
    code = "import sys, alma_core.server; alma_core.ALMA; assert 'fastapi' not in sys.modules, 'fastapi loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=240)


def test_a_missing_fastapi_raises_missing_dependency_naming_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "from alma_core import MissingDependency\n"
        "from alma_core.server import build_app\n"
        "try:\n    build_app(None)\n"
        "except MissingDependency as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=240, env=server_env())
    assert done.stdout.decode().strip() == "fastapi is not installed: pip install 'alma-core[server]'", done.stderr


def test_cors_headers_only_for_a_configured_origin(tmp_path: Path) -> None:
    """In process (ASGI transport): the same app, built with one CORS origin."""
    import anyio

    from alma_core.server._app import create_app
    from alma_core.server._registry import ProjectRegistry, ServeSettings

    settings = ServeSettings(config=str(write_config(tmp_path)), tokens={PROJECT: TOKEN},
                             cors_origins=["https://app.example"])  # fmt: skip
    app = create_app(ProjectRegistry.open(settings), settings)

    async def check() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            url, auth = f"/v1/projects/{PROJECT}/stats", {"authorization": f"Bearer {TOKEN}"}
            ok = await c.get(url, headers={**auth, "origin": "https://app.example"})
            assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
            pre = await c.options(url, headers={"origin": "https://app.example", "access-control-request-method":
                                                "POST", "access-control-request-headers": "authorization"})  # fmt: skip
            assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
            assert_problem(await c.get(url, headers={**auth, "origin": "https://other.example"}), 403, "Forbidden")

    try:
        anyio.run(check)
    finally:
        app.app.state.registry.close()
