"""FastMCP wiring: the 16 tools of `_tools` on one `ALMA`, over stdio or streamable HTTP (uvicorn).

Tools are listed and called through our own strict pydantic models (`AlmaMCP.list_tools` /
`call_tool`), so every bad argument becomes a one-line `isError` result and nothing is written. FastMCP
supplies the protocol, the session manager, DNS-rebinding protection and the `/mcp` endpoint.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_PARAMS,
    PARSE_ERROR,
    CallToolResult,
    JSONRPCMessage,
    JSONRPCRequest,
    TextContent,
    ToolAnnotations,
)
from mcp.types import Tool as MCPTool
from pydantic import ValidationError as PydanticError

from .._errors import AlmaError
from ._auth import BearerOriginGuard
from ._common import NON_FINITE, error_reply, non_finite, one_line, pydantic_reason, request_head
from ._tools import TOOLS

if TYPE_CHECKING:
    from .._alma import ALMA
    from ._common import ToolSpec

__all__ = ["AlmaMCP", "serve_http", "serve_stdio"]

log = logging.getLogger("alma_core.mcp")
_INSTRUCTIONS = (
    "ALMA is this project's persistent agent memory. Call alma_retrieve before a task and put its text in "
    "your context; call alma_learn after it with the outcome and the strategy used."
)


def _annotations(spec: ToolSpec) -> ToolAnnotations:
    hints = spec.hints
    if hints.read_only:
        return ToolAnnotations(title=spec.title, readOnlyHint=True, idempotentHint=True, openWorldHint=False)
    return ToolAnnotations(title=spec.title, readOnlyHint=False, destructiveHint=hints.destructive,
                           idempotentHint=hints.idempotent, openWorldHint=False)  # fmt: skip


def _error(reason: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=one_line(reason))], isError=True)


class AlmaMCP(FastMCP[Any]):
    """A FastMCP server whose tools are ALMA's, validated by our models and run on worker threads."""

    def __init__(self, alma: ALMA, *, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False) -> None:
        security = None if not allow_remote else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        super().__init__(name="alma", instructions=_INSTRUCTIONS, host=host, port=port, log_level="WARNING",
                         transport_security=security)  # fmt: skip
        self.alma = alma
        self.specs: dict[str, ToolSpec] = {spec.name: spec for spec in TOOLS}

    async def list_tools(self) -> list[MCPTool]:
        return [self._describe(spec) for spec in self.specs.values()]

    @staticmethod
    def _describe(spec: ToolSpec) -> MCPTool:
        schema = spec.args.model_json_schema()
        return MCPTool(name=spec.name, title=spec.title, description=spec.description, inputSchema=schema,
                       annotations=_annotations(spec))  # fmt: skip

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:  # type: ignore[override]
        spec = self.specs.get(name)
        if spec is None:
            return _error(f"unknown tool {name!r}; the tools are {', '.join(self.specs)}")
        try:
            args = spec.args.model_validate(arguments)
        except PydanticError as exc:
            return _error(f"{name}: {pydantic_reason(exc)}")
        try:
            data, text = await anyio.to_thread.run_sync(spec.handler, self.alma, args)
        except AlmaError as exc:
            return _error(f"{name}: {exc}")
        except Exception as exc:
            log.exception("%s failed", name)
            return _error(f"{name}: internal error ({type(exc).__name__}); see the server log")
        return CallToolResult(content=[TextContent(type="text", text=text)], structuredContent=data)


def _answer(request_id: Any, method: Any, name: Any, reason: str, code: int) -> SessionMessage:
    """A reply the session never sees the request of (`error_reply`, as the SDK's message type)."""
    return SessionMessage(JSONRPCMessage.model_validate(error_reply(request_id, method, name, reason, code)))


def _unparsed(exc: Exception) -> SessionMessage | None:
    """The answer to a line the SDK could not parse (too deep, a lone surrogate, a 5,000-digit number)
    when its request id can still be read: the SDK only logs it, and the client would wait forever."""
    errors = exc.errors() if isinstance(exc, PydanticError) else []
    raw = errors[0].get("input") if errors else None
    if not isinstance(raw, str):
        return None
    reason = f"the request is not valid JSON-RPC: {str(errors[0]['msg']).removeprefix('Invalid JSON: ')}"
    request_id, method, name = request_head(raw)
    if request_id is None:
        return None  # a notification, or no readable id: nothing to answer
    return _answer(request_id, method, name, reason, PARSE_ERROR)


async def _screen(read: Any, write: Any, forward: Any) -> None:
    """Pass the client's messages on, answering two kinds itself: a request holding NaN or Infinity (the
    SDK's parser reads them, and its session would hand our tools `null` in their place: a state stored
    with a silently changed value), and a line the SDK could not parse but whose id can be read."""
    async with forward:
        async for item in read:
            root = getattr(getattr(item, "message", None), "root", None)
            reply = None
            if isinstance(root, JSONRPCRequest) and non_finite(root.params):
                reply = _answer(root.id, root.method, (root.params or {}).get("name"), NON_FINITE, INVALID_PARAMS)
            elif isinstance(item, Exception):
                reply = _unparsed(item)
            await (forward.send(item) if reply is None else write.send(reply))


async def serve_stdio(server: AlmaMCP) -> None:
    """Speak MCP on the real stdout; anything else that writes to stdout (fd 1) lands on stderr."""
    from mcp.server.stdio import stdio_server

    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = io.TextIOWrapper(os.fdopen(protocol_fd, "wb"), encoding="utf-8", write_through=True)
    async with stdio_server(stdout=anyio.wrap_file(out)) as (read, write), anyio.create_task_group() as tasks:
        forward, checked = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        tasks.start_soon(_screen, read, write, forward)
        await server._mcp_server.run(checked, write, server._mcp_server.create_initialization_options())
        tasks.cancel_scope.cancel()


def serve_http(server: AlmaMCP, sock: socket.socket, token: str, allowed_origins: list[str]) -> None:
    """Streamable HTTP at http://host:port/mcp on `sock` (bound by `alma_core._listen.listen`) behind the
    token and Origin guard, run by uvicorn."""
    import uvicorn

    from .._listen import url_of

    app = BearerOriginGuard(server.streamable_http_app(), token, allowed_origins)
    print(f"alma mcp: serving streamable HTTP on {url_of(sock)}/mcp", file=sys.stderr, flush=True)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
