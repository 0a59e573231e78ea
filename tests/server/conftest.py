"""A real `alma serve` subprocess (one per module) on a loopback port it picks itself (`--port 0`), serving
two projects of one store, and helpers to read that store from the outside."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _helpers import started_url, stop

from alma_core import ALMA, load_config
from alma_core.storage import ListRecords

PROJECT, OTHER = "http-test", "other-project"
TOKEN, OTHER_TOKEN = "token-http-test-0123456789", "token-other-0123456789"
AGENTS = {
    "helena": {"can_learn": ["testing_strategies", "selector_patterns"], "cannot_learn": ["backend_logic"],
               "share_with": ["qa_lead"]},
    "victor": {"can_learn": ["api_patterns", "database_queries"], "inherit_from": ["qa_lead"]},
    "qa_lead": {},
}  # fmt: skip


def write_config(directory: Path, project_id: str = PROJECT, agents: dict[str, Any] | None = AGENTS) -> Path:
    """A config with mock embeddings, an absolute storage_dir and (by default) the three test agents."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    data: dict[str, Any] = {"project_id": project_id, "storage_dir": str(directory), "embedding_provider": "mock"}
    if agents:
        data["agents"] = agents
    path.write_text(yaml.safe_dump({"alma": data}), encoding="utf-8")
    return path


def server_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ALMA_TOKEN", None)
    return env


@dataclass
class Server:
    config: Path
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = TOKEN, project: str = PROJECT) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/v1/projects/{project}", headers=headers, timeout=120)


def start_server(config: Path, *args: str, wait: float = 120) -> Server:
    """`python -m alma_core.server` (what `alma serve` runs) on `--port 0`: it binds a free port and prints
    it (no race for a port). Returns once /v1/health answers (a request made before the server accepts
    waits in the socket's backlog)."""
    log = config.parent / f"server-{uuid.uuid4().hex[:8]}.log"
    cmd = [sys.executable, "-m", "alma_core.server", "--config", str(config), "--port", "0", *args]
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(cmd, env=server_env(), stdout=subprocess.DEVNULL, stderr=out)
    url = started_url(proc, log, "alma serve: serving", wait)
    try:
        assert httpx.get(f"{url}/v1/health", timeout=wait).status_code == 200
    except (httpx.HTTPError, AssertionError):
        stop(proc)
        raise RuntimeError(f"server did not answer: {log.read_text(errors='replace')[-2000:]}") from None
    return Server(config, url, proc, log)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: project `http-test` (TOKEN) and `other-project` (OTHER_TOKEN)."""
    config = write_config(tmp_path_factory.mktemp("http"))
    running = start_server(config, "--token", TOKEN, "--project-token", f"{OTHER}={OTHER_TOKEN}")
    yield running
    stop(running.proc)


def snapshot(config: Path, project: str = PROJECT) -> tuple[dict[str, Any], list[tuple[str, str, int]]]:
    """What the store holds for `project`: memory counts and every record key, read by a separate ALMA."""
    with ALMA(config=load_config(config), project_id=project) as alma:
        stats = alma.stats().model_dump(exclude={"cache_hit_ratio"})
        records = alma.storage.execute(ListRecords(alma.project_id, "", prefix=True))
        return stats, sorted((r.namespace, r.key, r.seq) for r in records)


def assert_problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 9457 problem document with this status and ALMA error name, and a one-line detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["status"] == status and body["error"] == error, body
    assert body["type"] == f"urn:alma:error:{error}" and body["title"]
    assert body["detail"] and "\n" not in body["detail"] and "Traceback" not in body["detail"]
    return body  # type: ignore[no-any-return]
