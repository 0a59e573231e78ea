"""The FastAPI app: the routers, the problem handlers, the guard, CORS (off unless configured) and the
lifespan that closes the store. `app_from_env` is the factory each `--workers N` process calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ._guard import RequestGuard
from ._problems import PROBLEM_JSON, install_handlers
from ._registry import ProjectRegistry, ServeSettings
from ._routes import router as memory_router
from ._workflow_routes import router as workflow_router

__all__ = ["app_from_env", "create_app"]

_DESCRIPTION = (
    "ALMA's memory over HTTP. Every call under /v1/projects/{project_id} needs `Authorization: Bearer "
    "<token>` with that project's token. Errors are RFC 9457 problem documents whose `error` names the "
    "ALMA error class."
)


def create_app(registry: ProjectRegistry, settings: ServeSettings | None = None, *, own: bool = True) -> Any:
    """The ASGI app serving `registry`'s projects (closed with the app when `own`)."""
    settings = settings or ServeSettings(tokens={})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own:
                registry.close()

    app = FastAPI(title="ALMA", version=__version__, description=_DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, separate_input_output_schemas=False)  # fmt: skip
    app.state.registry = registry
    app.openapi = lambda: _documented_as_problems(app)  # type: ignore[method-assign]
    install_handlers(app)
    app.include_router(memory_router)
    app.include_router(workflow_router)

    @app.get("/v1/health", tags=["server"])
    def liveness() -> dict[str, str]:
        """Liveness, without a token: the server answers (says nothing about any project)."""
        return {"status": "ok", "version": __version__}

    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["authorization", "content-type"],
                           expose_headers=["x-alma-count"])  # fmt: skip
    allowed = [*settings.allowed_origins, *settings.cors_origins]
    return RequestGuard(app, allowed_origins=allowed, max_body_bytes=settings.max_body_bytes,
                        loopback_only=settings.loopback_only)  # fmt: skip


def _documented_as_problems(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, its error replies under the media type they are sent with
    (`application/problem+json`: FastAPI files a response model under `application/json`)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc: dict[str, Any] = FastAPI.openapi(app)  # kept as app.openapi_schema: the changes below stay
    for operation in (op for item in doc["paths"].values() for op in item.values()):
        default = operation.get("responses", {}).get("default", {})
        if "application/json" in default.get("content", {}):
            default["content"] = {PROBLEM_JSON: default["content"]["application/json"]}
    return doc


def app_from_env() -> Any:
    """uvicorn's factory for worker processes: the settings come from `$ALMA_SERVE_SETTINGS`."""
    settings = ServeSettings.from_env()
    return create_app(ProjectRegistry.open(settings), settings)
