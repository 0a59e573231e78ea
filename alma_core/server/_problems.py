"""Errors as RFC 9457 problem details (`application/problem+json`), one shape for every failure.

    {"type": "urn:alma:error:ScopeViolation", "title": "Scope violation", "status": 403,
     "error": "ScopeViolation", "detail": "agent 'helena' may not learn 'backend_logic': ..."}

`error` is the name of the `AlmaError` class (or of the HTTP condition: Unauthorized, Forbidden,
PayloadTooLarge...), so a client maps it to a typed error without parsing text; `detail` is one line.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticError

from .._errors import (
    AlmaError,
    EmbeddingMismatch,
    MissingDependency,
    NotFound,
    ScopeViolation,
    StorageError,
    UnknownAgent,
)
from ..mcp._common import one_line, pydantic_reason
from ..progress import InvalidTransition

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import Response

__all__ = ["PROBLEM_JSON", "Problem", "install_handlers", "problem_body", "status_of"]

log = logging.getLogger("alma_core.server")
PROBLEM_JSON = "application/problem+json"

# Most specific first: the first class an error is an instance of decides its status.
_STATUS: list[tuple[type[AlmaError], int]] = [
    (NotFound, 404),
    (InvalidTransition, 409),
    (ScopeViolation, 403),
    (UnknownAgent, 422),
    (StorageError, 503),  # e.g. the database is locked: retry later
    (EmbeddingMismatch, 409),
    (MissingDependency, 501),
    (AlmaError, 422),  # ValidationError, ConfigError, SerializationError, InvalidTransition
]
_HTTP_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
               413: "PayloadTooLarge", 415: "UnsupportedMediaType", 421: "MisdirectedRequest",
               422: "ValidationError", 500: "InternalError"}  # fmt: skip


class Problem(Exception):
    """Raised inside the app to answer with a problem document (auth, unknown project...)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def status_of(exc: AlmaError) -> int:
    return next(status for cls, status in _STATUS if isinstance(exc, cls))


def _title(error: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", error).lower()
    return words[:1].upper() + words[1:]


def problem_body(status: int, error: str, detail: str) -> bytes:
    body = {"type": f"urn:alma:error:{error}", "title": _title(error), "status": status, "error": error,
            "detail": one_line(detail)}  # fmt: skip
    return json.dumps(body, ensure_ascii=False).encode()


def _response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import Response

    return Response(problem_body(status, error, detail), status, headers, media_type=PROBLEM_JSON)


def _request_reason(errors: list[Any]) -> str:
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith(("literal[", "bool", "function-"))]
    where = ".".join(loc) or "request"
    extra = f" ({len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}{extra}"


def _methods_at(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for this request's path."""
    methods: set[str] = set()
    for template, item in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods.update(method.upper() for method in item)
    return sorted(methods)


def install_handlers(app: FastAPI) -> None:
    """Every error the app can raise becomes a problem document; nothing leaks a traceback."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return _response(exc.status, exc.error, exc.detail, exc.headers)

    async def on_alma(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AlmaError)
        return _response(status_of(exc), type(exc).__name__, str(exc) or type(exc).__name__)

    async def on_request(request: Request, exc: Exception) -> Response:
        errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
        if errors and errors[0].get("type") == "json_invalid":
            return _response(400, "BadRequest", f"the body is not valid JSON: {errors[0].get('msg', '')}")
        return _response(422, "ValidationError", _request_reason(errors) if errors else "invalid request")

    async def on_pydantic(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PydanticError)
        return _response(422, "ValidationError", pydantic_reason(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        name = _HTTP_NAMES.get(exc.status_code, "HttpError")
        detail = exc.detail if isinstance(exc.detail, str) else name
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's, for any
            detail = "the body cannot be read as JSON: not UTF-8, nested too deeply, or a number too long"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /openapi.json"
        if exc.status_code == 405:  # Starlette names the first route's methods only (GET /memories/{id})
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["allow"] = ", ".join(_methods_at(request))
            detail = f"{request.method} is not allowed here; use {headers['allow']}"
        return _response(exc.status_code, name, detail, headers)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return _response(500, "InternalError", f"internal error ({type(exc).__name__}); see the server log")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(AlmaError, on_alma)
    app.add_exception_handler(RequestValidationError, on_request)
    app.add_exception_handler(PydanticError, on_pydantic)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
