"""HTTP guards: a bearer token on every request, an Origin check against DNS rebinding, and no NaN.

A plain ASGI middleware (no SDK import) in front of the MCP app: a request with a non-allowed Origin gets
403 before anything else (a browser page on another site must not even learn whether a token works);
one without the right `Authorization: Bearer <token>` gets 401. A tool call whose arguments hold NaN or
Infinity gets a tool error here: the SDK's parser reads them and its session would pass the tool `null`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from .._errors import AlmaError
from ._common import NON_FINITE, non_finite, one_line, request_head

__all__ = ["BearerOriginGuard", "is_loopback", "loopback_origin", "resolve_token"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an IP, brackets allowed) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_origin(origin: str) -> bool:
    """An Origin header naming an http(s) page served from this machine."""
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.hostname is not None and is_loopback(parts.hostname)
    except ValueError:
        return False


class BearerOriginGuard:
    """ASGI middleware: Origin must be absent, loopback or listed; the bearer token must match."""

    def __init__(self, app: ASGIApp, token: str, allowed_origins: Iterable[str] = ()) -> None:
        if not token:
            raise ValueError("the HTTP transport needs a non-empty token")
        self.app = app
        self._token = token.encode()
        self._origins = {o.rstrip("/").lower() for o in allowed_origins}

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None:  # not a browser (or same-origin GET): the token still applies
            return True
        return loopback_origin(origin) or origin.rstrip("/").lower() in self._origins

    def token_ok(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.origin_ok(headers.get("origin")):
            await _reply(send, 403, "forbidden origin: this server only accepts pages served from localhost")
        elif not self.token_ok(headers.get("authorization")):
            await _reply(send, 401, "missing or wrong bearer token", {"www-authenticate": 'Bearer realm="alma"'})
        elif scope["method"] == "POST" and (headers.get("content-length") or "x").isdigit():
            await self._post(scope, receive, send, int(headers["content-length"]))
        else:
            await self.app(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send, length: int) -> None:
        """A JSON-RPC request holding NaN or Infinity is answered here (a tool error for a tool call): the
        SDK reads them and would hand the tool `null`. Other bodies, and larger ones, go on as they came."""
        if length > _INSPECTED_BYTES:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        reply = _non_finite_reply(body)
        if reply is not None:
            await _reply(send, 200, json.dumps(reply), content_type="application/json")
            return
        await self.app(scope, replay(body, receive), send)


_INSPECTED_BYTES = 4 * 1024 * 1024  # a POST at most this long is checked for NaN / Infinity (states are 1 MB)


def _non_finite_reply(body: bytes) -> dict[str, Any] | None:
    """The JSON-RPC answer to a request holding NaN or Infinity, or None (anything else is the SDK's)."""
    try:
        message = json.loads(body)
    except RecursionError:  # the SDK's own parse would answer 500, "Error handling POST request"
        request_id, method, name = request_head(body)
        return None if request_id is None else _reply_to(request_id, method, name, "the request is nested too deeply")
    except ValueError:
        return None
    if not isinstance(message, dict) or "id" not in message or not non_finite(message.get("params")):
        return None
    params = message.get("params")
    return _reply_to(message["id"], message.get("method"), params.get("name") if isinstance(params, dict) else None,
                     NON_FINITE)  # fmt: skip


def _reply_to(request_id: Any, method: Any, name: Any, reason: str) -> dict[str, Any]:
    """A tool error for a tool call, invalid params for anything else."""
    if method == "tools/call":
        result = {"content": [{"type": "text", "text": one_line(f"{name or 'tools/call'}: {reason}")}], "isError": True}
        return {"jsonrpc": "2.0", "id": request_id, "result": result}
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": reason}}


def replay(body: bytes, original: Receive) -> Receive:
    """Hand the app the body already read, then the real stream (so a disconnect is still seen)."""
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


async def _reply(
    send: Send, status: int, message: str, extra: dict[str, str] | None = None, content_type: str = "text/plain"
) -> None:
    body = message.encode()
    kind = f"{content_type}; charset=utf-8".encode()
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def resolve_token(
    token: str | None, host: str, allow_remote: bool, *, env: str = "ALMA_MCP_TOKEN", prog: str = "alma mcp"
) -> str:
    """The bearer token: `--token`, else `$env`, else (loopback only) a fresh one printed once to stderr."""
    token = token or os.environ.get(env) or None
    if not is_loopback(host):
        if not allow_remote:
            raise AlmaError(f"refusing to listen on non-loopback host {host!r} without --allow-remote")
        if not token:
            raise AlmaError(f"a non-loopback host needs an explicit token (--token or {env})")
    if not token:
        token = secrets.token_urlsafe(32)
        print(f"{prog}: bearer token (send 'Authorization: Bearer <token>'): {token}", file=sys.stderr, flush=True)
    return token
