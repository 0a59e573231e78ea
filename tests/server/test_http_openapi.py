"""The server's OpenAPI document: the TypeScript SDK's types (sdk/typescript/src/wire.ts) match it, and it
documents what is sent.

The SDK's own tests check this too, but they run under `make test` only; this one fails in pytest, so a
change to a body or reply model is caught where it is made.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from alma_core.server._app import create_app
from alma_core.server._registry import ProjectRegistry, ServeSettings

from .conftest import PROJECT, TOKEN, write_config

SDK = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def _openapi(tmp_path: Path) -> dict[str, Any]:
    """The OpenAPI document of an app over a fresh store (closed again)."""
    settings = ServeSettings(config=str(write_config(tmp_path)), tokens={PROJECT: TOKEN})
    guard = create_app(ProjectRegistry.open(settings), settings)
    try:
        return guard.app.openapi()  # type: ignore[no-any-return]
    finally:
        guard.app.state.registry.close()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (make test needs it anyway)")
def test_the_typescript_sdk_types_match_the_openapi_document(tmp_path: Path) -> None:
    doc = _openapi(tmp_path)
    (tmp_path / "openapi.json").write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "wire.ts"
    script = SDK / "scripts" / "gen-wire.mjs"
    subprocess.run(["node", str(script), str(tmp_path / "openapi.json"), str(out)], check=True, timeout=240,
                   capture_output=True)  # fmt: skip
    assert out.read_text(encoding="utf-8") == (SDK / "src" / "wire.ts").read_text(encoding="utf-8"), (
        "the HTTP API's schemas changed: regenerate the SDK's types with "
        "`cd sdk/typescript && node scripts/gen-wire.mjs <openapi.json>` (or `npm run gen`), then `npx tsc`"
    )


def test_error_replies_are_documented_as_problem_json(tmp_path: Path) -> None:
    doc = _openapi(tmp_path)
    defaults = [op["responses"]["default"] for item in doc["paths"].values() for op in item.values()
                if "default" in op["responses"]]  # fmt: skip
    assert len(defaults) >= 35  # every route under /v1/projects/{project_id}
    for default in defaults:  # what the server sends (schemathesis: "undocumented Content-Type")
        assert default["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert doc["paths"]["/v1/projects/{project_id}/import"]["post"]["requestBody"]["required"] is False
