"""ALMA over HTTP: a JSON API (FastAPI on uvicorn) for services and Node agents, `alma serve`.

    alma serve --config .alma/config.yaml                 # http://127.0.0.1:8765, token printed once
    alma serve --token "$T" --project-token other=$T2     # two projects, one token each
    python -m alma_core.server ...                        # the same without the CLI

FastAPI and uvicorn are imported only when an app is built (extra `server`); `import alma_core` and
`import alma_core.server` never load them. Docs: docs/http.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import AlmaError, ConfigError, MissingDependency
from .._listen import listen, serve_workers, url_of

__all__ = ["build_app", "build_parser", "run_server"]

_PROG = "alma serve"


def build_parser(prog: str = _PROG) -> argparse.ArgumentParser:
    """The arguments of `alma serve` / `python -m alma_core.server`."""
    p = argparse.ArgumentParser(prog=prog, description="Serve ALMA's memory as an HTTP JSON API (docs/http.md).")
    p.add_argument("--config", default=".alma/config.yaml", metavar="PATH",
                   help="ALMA config (defaults if it does not exist)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless --allow-remote)")
    p.add_argument("--port", type=int, default=8765,
                   help="port (default 8765; 0: a free one, named on the start-up line)")  # fmt: skip
    p.add_argument("--token", default=None,
                   help="the config's project's token (default: $ALMA_TOKEN, else generated and printed)")  # fmt: skip
    p.add_argument("--project-token", action="append", default=[], metavar="PROJECT=TOKEN",
                   help="also serve PROJECT (same store), with its own token (repeatable)")  # fmt: skip
    p.add_argument("--tokens-file", metavar="PATH", help="a JSON object {project: token} (keeps tokens out of ps)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (needs explicit tokens)")
    p.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                   help="a browser Origin to accept besides localhost (repeatable)")  # fmt: skip
    p.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                   help="send CORS headers to this Origin (repeatable; CORS is off without it)")  # fmt: skip
    p.add_argument("--max-body-bytes", type=int, default=None, metavar="N", help="largest request body (default 2 MiB)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes (see docs/http.md: on SQLite writes still go one at a time)")  # fmt: skip
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _import_server() -> Any:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(exc.name or "fastapi", "server") from exc
    from . import _app

    return _app


def build_app(settings: Any) -> Any:
    """The ASGI app for `ServeSettings` (opens the store; raises `MissingDependency` without FastAPI)."""
    app_module = _import_server()
    from ._registry import ProjectRegistry

    return app_module.create_app(ProjectRegistry.open(settings), settings)


def _tokens(args: argparse.Namespace) -> dict[str, str]:
    """project -> token from --tokens-file and --project-token, plus the config's project."""
    from .._config import AlmaConfig, load_config
    from ..mcp._auth import resolve_token

    tokens: dict[str, str] = {}
    if args.tokens_file:
        try:
            data = json.loads(Path(args.tokens_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.tokens_file}: cannot read a JSON object of tokens: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
            raise ConfigError(f"{args.tokens_file}: expected a JSON object {{project: token}}")
        tokens.update(data)
    for item in args.project_token:
        project, sep, token = item.partition("=")
        if not sep or not project or not token:
            raise ConfigError(f"--project-token takes PROJECT=TOKEN, got {item!r}")
        tokens[project] = token
    path = Path(args.config)
    own = (load_config(path) if path.exists() else AlmaConfig()).project_id
    if own not in tokens or args.token:
        tokens[own] = resolve_token(args.token, args.host, args.allow_remote, env="ALMA_TOKEN", prog=_PROG)
    return tokens


def run_server(argv: Sequence[str] | None = None) -> int:
    """Entry point of `alma serve`: parse `argv`, open the store, serve until interrupted."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="alma serve: %(levelname)s %(message)s")
    from ..mcp._auth import is_loopback

    try:
        if not is_loopback(args.host) and not args.allow_remote:
            raise ConfigError(f"refusing to listen on non-loopback host {args.host!r} without --allow-remote")
        if args.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {args.workers}")
        app_module = _import_server()
        from ._registry import SETTINGS_ENV, ProjectRegistry, ServeSettings

        extra = {"max_body_bytes": args.max_body_bytes} if args.max_body_bytes else {}
        settings = ServeSettings(config=args.config, tokens=_tokens(args), allowed_origins=args.allowed_origin,
                                 cors_origins=args.cors_origin, loopback_only=not args.allow_remote,
                                 **extra)  # fmt: skip
        sock = listen(args.host, args.port)  # --port 0: the OS picks a free port, named on the line below
        app = None if args.workers > 1 else app_module.create_app(ProjectRegistry.open(settings), settings)
    except (AlmaError, ValueError) as exc:  # MissingDependency and pydantic errors included
        print(f"alma serve: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    import uvicorn

    projects = ", ".join(sorted(settings.tokens))
    print(f"alma serve: serving {url_of(sock)} (projects: {projects})", file=sys.stderr, flush=True)
    options: dict[str, Any] = {"host": args.host, "port": sock.getsockname()[1], "log_level": args.log_level.lower(),
                               "access_log": False, "lifespan": "on"}  # fmt: skip
    try:
        if app is None:
            os.environ[SETTINGS_ENV] = settings.to_env()
            config = uvicorn.Config("alma_core.server._app:app_from_env", factory=True, workers=args.workers, **options)
            serve_workers(config, sock)
        else:
            uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0
