"""The outer ASGI guard: checks that need no route, answered as problem documents before the app runs.

In order: a browser Origin that is neither loopback nor configured gets 403 (a page on another site
must not learn anything, not even whether a token works); on a loopback server a Host header naming
another machine gets 421 (DNS rebinding); a body over `max_body_bytes` gets 413 (it is read at most
that far, never whole); a body that is not JSON gets 415. The bearer token is checked per project by
the app (`_registry`), since each project has its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..mcp._auth import ASGIApp, Receive, Scope, Send, is_loopback, loopback_origin, replay
from ._problems import PROBLEM_JSON, problem_body

__all__ = ["DEFAULT_MAX_BODY_BYTES", "RequestGuard"]

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024  # a 1 MiB checkpoint state as JSON, with room to spare
_JSON_TYPES = ("application/json", "application/x-ndjson")


class RequestGuard:
    """ASGI middleware: Origin, Host, body size and content type."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_origins: Iterable[str] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        loopback_only: bool = True,
    ) -> None:
        self.app = app
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}
        self.max_body_bytes = max_body_bytes
        self.loopback_only = loopback_only

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        origin = headers.get("origin")
        if origin is not None and not loopback_origin(origin) and origin.rstrip("/").lower() not in self.origins:
            return 403, "Forbidden", f"origin {origin!r} is not allowed; this server accepts localhost pages only"
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.loopback_only and host and not is_loopback(name):
            return 421, "MisdirectedRequest", f"host {host!r} is not this loopback server"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return 413, "PayloadTooLarge", f"the body is {length} bytes; the limit is {self.max_body_bytes}"
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] in ("POST", "PUT", "PATCH") and kind not in _JSON_TYPES and (length or "0") != "0":
            return 415, "UnsupportedMediaType", f"send the body as application/json, not {kind or 'untyped'}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is None and scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            body = await self._read_body(receive)
            if body is None:
                refusal = 413, "PayloadTooLarge", f"the body is over the limit of {self.max_body_bytes} bytes"
            else:
                receive = replay(body, receive)
        if refusal is not None:
            await _reply(send, *refusal)
            return
        await self.app(scope, receive, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (a chunked body has no length header)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _reply(send: Send, status: int, error: str, detail: str) -> None:
    body = problem_body(status, error, detail)
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
