"""ALMA as an MCP server: 16 tools over stdio (default) or streamable HTTP at `/mcp`.

    alma mcp --config .alma/config.yaml                      # stdio, for Claude Code / Cursor
    alma mcp --transport http --port 8765 --token "$TOKEN"   # http://127.0.0.1:8765/mcp
    python -m alma_core.mcp ...                              # the same without the CLI

The `mcp` SDK is imported only when a server is built (extra `mcp`); `import alma_core` never loads it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._errors import AlmaError, MissingDependency

if TYPE_CHECKING:
    from .._alma import ALMA
    from ._server import AlmaMCP

__all__ = ["build_parser", "build_server", "run_server"]


def build_parser(prog: str = "alma mcp") -> argparse.ArgumentParser:
    """The arguments of `alma mcp` / `python -m alma_core.mcp`."""
    parser = argparse.ArgumentParser(prog=prog, description="Serve ALMA's memory tools over MCP.")
    parser.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="ALMA config (default .alma/config.yaml, built-in defaults when absent; a path given here must exist)",
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (loopback unless --allow-remote)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (0: a free one, named on the start-up line)")
    parser.add_argument("--token", default=None, help="HTTP bearer token (default: $ALMA_MCP_TOKEN, else generated)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (needs a token)")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                        help="a browser Origin to accept besides localhost (repeatable)")  # fmt: skip
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def build_server(alma: ALMA, *, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False) -> AlmaMCP:
    """A FastMCP server exposing the 16 tools on `alma` (raises `MissingDependency` without `mcp`)."""
    try:
        from ._server import AlmaMCP
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("mcp", "uvicorn", "starlette", "anyio"):
            raise MissingDependency("mcp", "mcp") from exc
        raise
    return AlmaMCP(alma, host=host, port=port, allow_remote=allow_remote)


def run_server(argv: Sequence[str] | None = None) -> int:
    """Entry point of `alma mcp`: parse `argv`, open the store, serve until the client goes away."""
    args = build_parser().parse_args(argv)
    # Logs go to stderr only: on stdio, stdout carries protocol messages and nothing else.
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="alma mcp: %(levelname)s %(name)s: %(message)s")
    try:
        token, sock = None, None
        if args.transport == "http":
            from .._listen import listen
            from ._auth import resolve_token

            token = resolve_token(args.token, args.host, args.allow_remote)
            sock = listen(args.host, args.port)  # --port 0: the OS picks a free port, named on the start-up line
        from ..cli import open_alma

        alma = open_alma(args.config)
        server = build_server(alma, host=args.host, port=args.port, allow_remote=args.allow_remote)
    except AlmaError as exc:  # MissingDependency included
        print(f"alma mcp: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.transport == "stdio":
            import anyio

            from ._server import serve_stdio

            anyio.run(serve_stdio, server)
        else:
            from ._server import serve_http

            assert token is not None and sock is not None
            serve_http(server, sock, token, args.allowed_origin)
    except KeyboardInterrupt:
        pass
    finally:
        alma.close()
    return 0
