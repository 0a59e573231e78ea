"""`alma serve --workers 2` on PostgreSQL: two worker processes, one database, concurrent clients lose nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import yaml
from _helpers import stop
from conftest_pg import drop_schemas, new_schema

from .conftest import PROJECT, TOKEN, start_server


def test_two_workers_on_postgres_serve_every_write(tmp_path: Path, pg_uri: str) -> None:
    schema = new_schema()
    config = tmp_path / "config.yaml"
    data = {"project_id": PROJECT, "storage": "postgres", "embedding_provider": "mock",
            "postgres": {"uri": pg_uri, "schema": schema, "max_pool_size": 3}}  # fmt: skip
    config.write_text(yaml.safe_dump({"alma": data}), encoding="utf-8")
    running = start_server(config, "--token", TOKEN, "--workers", "2")
    errors: list[str] = []

    def client_run(k: int) -> None:
        for i in range(4):
            with running.client() as c:  # a new connection each time, so both workers get some
                r = c.post("/learn", json={"agent": f"a{k}", "task": f"deploy step {k}-{i}", "outcome": True})
                found = c.post("/retrieve", json={"task": "deploy step", "agent": f"a{k}"})
                if r.status_code != 201 or found.status_code != 200:
                    errors.append(r.text + found.text)

    try:
        threads = [threading.Thread(target=client_run, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with running.client() as c:
            stats = c.get("/stats").json()
            assert c.get("/health").json()["storage"] == "postgres"
    finally:
        stop(running.proc)
        drop_schemas(pg_uri, schema)
    assert not errors
    assert stats["outcomes"] == 12 and all(stats["by_agent"][f"a{k}"] == 4 for k in range(3))
