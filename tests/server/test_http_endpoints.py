"""Every endpoint of the HTTP API, called through a real HTTP client on a real `alma serve`."""

from __future__ import annotations

import json

from _helpers import stop

from .conftest import PROJECT, TOKEN, Server, assert_problem, snapshot, start_server


def test_memory_endpoints_round_trip(server: Server) -> None:
    with server.client() as c:
        before = c.get("/stats").json()  # the module's server is shared: other tests may have written first
        learned = c.post("/learn", json={"agent": "helena", "task": "Test the login form validation",
                                         "outcome": "success", "strategy_used": "incremental validation",
                                         "task_type": "testing_strategies"})  # fmt: skip
        assert learned.status_code == 201
        outcome = learned.json()
        assert outcome["type"] == "outcome" and outcome["success"] is True and outcome["project_id"] == PROJECT

        many = c.post("/learn_many", json={"items": [
            {"agent": "victor", "task": f"Check the orders API {i}", "outcome": i % 2 == 0,
             "strategy_used": "contract tests", "task_type": "api_patterns"} for i in range(3)]})  # fmt: skip
        assert many.status_code == 201 and many.json()["count"] == 3

        pref = c.post("/preferences", json={"user_id": "user-123", "category": "code_style",
                                            "preference": "Use TypeScript strict mode"}).json()  # fmt: skip
        assert pref["type"] == "preference" and pref["agent"] == "*" and pref["category"] == "code_style"
        fact = c.post("/knowledge", json={"agent": "helena", "domain": "selector_patterns",
                                          "fact": "Login uses data-testid selectors"}).json()  # fmt: skip
        assert fact["type"] == "knowledge" and fact["fact"] == "Login uses data-testid selectors"
        anti = c.post("/anti_patterns", json={"agent": "helena", "pattern": "sleep(5000) for waits",
                                              "why_bad": "flaky", "better_alternative": "wait for the element",
                                              "task_type": "testing_strategies"})  # fmt: skip
        assert anti.status_code == 201 and anti.json()["type"] == "anti_pattern"

        found = c.post("/retrieve", json={"task": "login form validation", "agent": "helena", "top_k": 5,
                                          "user_id": "user-123"}).json()  # fmt: skip
        assert outcome["id"] in [m["id"] for m in found["memories"]["outcome"]]
        assert [m["id"] for m in found["memories"]["preference"]] == [pref["id"]]
        assert "incremental validation" in found["prompt"] and found["total"] >= 4

        assert c.get(f"/memories/{fact['id']}").json()["fact"] == fact["fact"]
        listed = c.get("/memories", params={"agent": "victor", "type": "outcome"}).json()["memories"]
        assert len(listed) == 3 and {m["agent"] for m in listed} == {"victor"}

        stats = c.get("/stats").json()
        assert (stats["outcomes"] - before["outcomes"], stats["preferences"] - before["preferences"]) == (4, 1)
        assert stats["by_agent"]["victor"] == 3
        assert c.get("/stats", params={"agent": "victor"}).json()["total"] == 3
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["project_id"] == PROJECT and health["memories"] == stats["total"]

        assert c.delete(f"/memories/{anti.json()['id']}").json()["id"] == anti.json()["id"]
        assert_problem(c.get(f"/memories/{anti.json()['id']}"), 404, "NotFound")

        dry = c.post("/forget", json={"agent": "victor", "older_than_days": 0, "dry_run": True}).json()
        assert dry["dry_run"] is True and dry["count"] >= 3
        assert c.get("/stats", params={"agent": "victor"}).json()["total"] == 3  # dry run kept them

        merged = c.post("/consolidate", json={"agent": "helena", "memory_type": "knowledge", "dry_run": True})
        assert merged.status_code == 200 and "groups_found" in merged.json()


def test_export_import_and_delete_user(server: Server) -> None:
    with server.client() as c:
        c.post("/preferences", json={"user_id": "user-gdpr", "preference": "Dark mode"}).raise_for_status()
        exported = c.get("/export")
        assert exported.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in exported.text.splitlines()]
        lines = [m for m in lines if m["type"] != "record"]  # memories (the project's records follow them)
        assert len(lines) == int(exported.headers["x-alma-count"]) and lines
        assert any(m.get("user_id") == "user-gdpr" for m in lines)

        gone = c.delete("/users/user-gdpr").json()
        assert gone["deleted"] == 1
        prefs = c.post("/retrieve", json={"task": "Dark mode", "agent": "helena", "user_id": "user-gdpr"}).json()
        assert prefs["memories"]["preference"] == []

        back = [m for m in lines if m.get("user_id") == "user-gdpr"]
        body = "\n".join(json.dumps(m) for m in back).encode()
        imported = c.post("/import", content=body, headers={"content-type": "application/x-ndjson"})
        assert imported.status_code == 200 and imported.json() == {"imported": 1}
        prefs = c.post("/retrieve", json={"task": "Dark mode", "agent": "helena", "user_id": "user-gdpr"}).json()
        assert [m["preference"] for m in prefs["memories"]["preference"]] == ["Dark mode"]


def test_workflow_endpoints(server: Server) -> None:
    with server.client() as c:
        first = c.post("/checkpoints", json={"workflow_id": "wf-1", "state": {"step": 1, "findings": ["a"]},
                                             "agent": "helena", "metadata": {"why": "start"}})  # fmt: skip
        assert first.status_code == 201 and first.json()["sequence"] == 1 and first.json()["state"] is None
        second = c.post("/checkpoints", json={"workflow_id": "wf-1", "state": {"step": 2, "findings": ["b"]}}).json()
        assert second["sequence"] == 2

        assert c.get("/workflows/wf-1/resume").json() == {"workflow_id": "wf-1",
                                                          "state": {"step": 2, "findings": ["b"]}}  # fmt: skip
        old = c.get("/workflows/wf-1/resume", params={"checkpoint_id": first.json()["id"]}).json()
        assert old["state"]["step"] == 1
        named = c.get("/workflows/wf-1/checkpoint", params={"checkpoint_id": first.json()["id"]}).json()
        assert named["state"] == {"step": 1, "findings": ["a"]} and named["agent"] == "helena"
        history = c.get("/workflows/wf-1/checkpoints").json()["checkpoints"]
        assert [h["sequence"] for h in history] == [2, 1]
        assert [h["sequence"] for h in c.get("/workflows/wf-1/checkpoints", params={"before": 2}).json()
                ["checkpoints"]] == [1]  # fmt: skip

        merged = c.post("/merge_states", json={"workflow_id": "wf-1", "states": [{"findings": ["a"]},
                        {"findings": ["b"]}], "agents": ["helena", "victor"], "reducer": "merge_lists"})  # fmt: skip
        assert merged.status_code == 201
        assert c.get("/workflows/wf-1/resume").json()["state"] == {"findings": ["a", "b"]}
        assert merged.json()["metadata"]["reducer"] == "merge_lists"

        learned = c.post("/workflow_learn", json={"agent": "helena", "workflow_id": "wf-1", "task": "Test checkout",
                                                  "outcome": "failure", "task_type": "testing_strategies",
                                                  "checkpoint_id": second["id"]}).json()  # fmt: skip
        assert learned["workflow_id"] == "wf-1" and learned["metadata"]["checkpoint_id"] == second["id"]
        scoped = c.post("/retrieve_scoped", json={"query": "checkout", "scope": "workflow_only",
                                                  "workflow_id": "wf-1"}).json()  # fmt: skip
        assert [m["id"] for m in scoped["memories"]["outcome"]] == [learned["id"]]

        art = c.post("/artifacts", json={"workflow_id": "wf-1", "artifact_type": "test", "ref": "tests/x.py"})
        assert art.status_code == 201 and art.json()["artifact_type"] == "test"
        c.post("/artifacts", json={"workflow_id": "wf-1", "artifact_type": "code", "ref": "src/x.py"})
        arts = c.get("/workflows/wf-1/artifacts").json()
        assert arts["count"] == 2 and [a["ref"] for a in arts["artifacts"]] == ["src/x.py", "tests/x.py"]
        assert c.get("/workflows/wf-1/artifacts", params={"artifact_type": "test"}).json()["count"] == 1

        cleaned = c.post("/checkpoints/cleanup", json={"older_than_days": 0, "keep_latest": 1, "workflow_id": "wf-1"})
        assert cleaned.json() == {"deleted": 2}
        assert len(c.get("/workflows/wf-1/checkpoints").json()["checkpoints"]) == 1


def test_session_endpoints(server: Server) -> None:
    with server.client() as c:
        started = c.post("/sessions", json={"agent": "helena", "goal": "test login"})
        assert started.status_code == 201 and started.json()["previous_handoff"] is None
        sid = started.json()["session_id"]
        handoff = c.post(f"/sessions/helena/{sid}/handoff", json={"last_action": "wrote tests", "last_outcome": "ok",
                                                                  "next_steps": ["run them"]})  # fmt: skip
        assert handoff.status_code == 201 and handoff.json()["next_steps"] == ["run them"]
        ended = c.post(f"/sessions/helena/{sid}/end", json={"summary": "done"}).json()
        assert ended["status"] == "ended" and ended["summary"] == "done"
        assert c.get(f"/sessions/helena/{sid}").json()["status"] == "ended"

        again = c.post("/sessions", json={"agent": "helena"}).json()
        assert again["previous_handoff"]["id"] == handoff.json()["id"]
        assert [s["session_id"] for s in c.get("/sessions", params={"agent": "helena"}).json()["sessions"]][-1] == sid
        assert c.get("/handoffs", params={"agent": "helena"}).json()["handoffs"][0]["id"] == handoff.json()["id"]
        assert c.get("/handoffs/latest", params={"agent": "helena"}).json()["id"] == handoff.json()["id"]
        assert c.get("/handoffs/latest", params={"agent": "victor"}).json() is None


def test_progress_endpoints(server: Server) -> None:
    with server.client() as c:
        base = c.post("/work_items", json={"title": "schema", "priority": 10}).json()
        top = c.post("/work_items", json={"title": "api", "priority": 90, "dependencies": [base["id"]]}).json()
        assert top["status"] == "pending" and top["dependencies"] == [base["id"]]
        assert c.get("/work_items/next").json()["id"] == base["id"]  # api waits for schema
        assert c.post(f"/work_items/{base['id']}/status", json={"status": "in_progress"}).json()["status"] == (
            "in_progress"
        )
        c.post(f"/work_items/{base['id']}/status", json={"status": "done"}).raise_for_status()
        assert c.get("/work_items/next", params={"strategy": "unblock"}).json()["id"] == top["id"]
        assert c.get(f"/work_items/{top['id']}").json()["title"] == "api"
        assert [i["id"] for i in c.get("/work_items", params={"status": "done"}).json()["items"]] == [base["id"]]
        summary = c.get("/progress").json()
        assert summary["total"] == 2 and summary["by_status"]["done"] == 1 and summary["percent_done"] == 50.0
        assert_problem(c.post(f"/work_items/{base['id']}/status", json={"status": "pending"}), 409,
                       "InvalidTransition")  # fmt: skip


def test_liveness_and_openapi_need_no_token_and_describe_every_route(server: Server) -> None:
    import httpx

    assert httpx.get(f"{server.url}/v1/health").json()["status"] == "ok"
    doc = httpx.get(f"{server.url}/openapi.json").json()
    paths = doc["paths"]
    base = "/v1/projects/{project_id}"
    for path, method in [("/retrieve", "post"), ("/learn", "post"), ("/learn_many", "post"), ("/preferences", "post"),
                         ("/knowledge", "post"), ("/anti_patterns", "post"), ("/memories/{memory_id}", "delete"),
                         ("/forget", "post"), ("/stats", "get"), ("/export", "get"), ("/users/{user_id}", "delete"),
                         ("/checkpoints", "post"), ("/workflows/{workflow_id}/resume", "get"),
                         ("/merge_states", "post"), ("/artifacts", "post"), ("/sessions", "post"),
                         ("/work_items", "post"), ("/progress", "get")]:  # fmt: skip
        assert method in paths[base + path], f"{method.upper()} {path} missing from /openapi.json"
    learn = doc["components"]["schemas"]["LearnArgs"]
    assert set(learn["required"]) == {"agent", "task", "outcome"} and learn["additionalProperties"] is False


def test_a_new_server_on_the_same_store_sees_everything(server: Server) -> None:
    with server.client() as c:
        before = c.get("/stats").json()
        learned = c.post("/learn", json={"agent": "qa_lead", "task": "persisted", "outcome": "success"}).json()
        stats = c.get("/stats").json()
    assert stats["total"] == before["total"] + 1
    second = start_server(server.config, "--token", TOKEN)  # another process, started after the write
    try:
        with second.client() as c:
            got = c.get(f"/memories/{learned['id']}")
            assert got.status_code == 200 and got.json()["task"] == "persisted", got.text
            seen = c.get("/stats").json()
    finally:
        stop(second.proc)
    volatile = {"cache_hit_ratio"}
    assert {k: v for k, v in seen.items() if k not in volatile} == {k: v for k, v in stats.items() if k not in volatile}
    assert snapshot(server.config)[0]["by_agent"] == stats["by_agent"]
