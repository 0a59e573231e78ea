"""The listening socket of `alma serve` and `alma mcp --transport http`.

Bound and listening before uvicorn starts, so `--port 0` takes a free port from the operating system and
the start-up line (`alma serve: serving http://127.0.0.1:PORT ...`) names the port actually bound: callers
read it instead of picking a "free" port that another process can take before the server binds it.
A client that connects once the line is printed waits in the socket's backlog until the server accepts.
"""

from __future__ import annotations

import inspect
import socket
from typing import Any

from ._errors import ConfigError

__all__ = ["listen", "serve_workers", "url_of"]


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` and listening (port 0: any free port). Raises ConfigError when
    the address cannot be bound (in use, not local, a port out of range)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except (OSError, OverflowError) as exc:  # OverflowError: a port outside 0-65535
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)  # uvicorn's worker processes serve it too
    return sock


def url_of(sock: socket.socket, scheme: str = "http") -> str:
    """`http://host:port` of a bound socket (the real port when it was bound to port 0)."""
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def serve_workers(config: Any, sock: socket.socket) -> None:
    """What `uvicorn.run(..., workers=N)` does, on our socket instead of one it binds itself."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    supervisor: Any = Multiprocess
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn: the server's run is passed in
        supervisor(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
    else:
        supervisor(config, sockets=[sock]).run()
