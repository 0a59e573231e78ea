"""A real HTTP receiver on an ephemeral loopback port, answering from a script of status codes."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_" + base64.b64encode(b"a test secret of 24 bytes").decode()


class FailingOutbox:
    """An outbox that fails inside the write's transaction, as a full disk would."""

    def outbox_records(self, storage: object, events: object) -> list[object]:
        raise RuntimeError("disk full")

    def committed(self, storage: object) -> None:
        pass


def wait_deliveries(alma: Any, status: str, count: int = 1, timeout: float = 60.0) -> list[Any]:
    """The store's deliveries in `status` once there are `count` (the worker delivers every committed
    one: the generous limit is only reached by a hang)."""
    from alma_core.webhooks import deliveries

    deadline = time.monotonic() + timeout
    while len(found := deliveries(alma.storage, status)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (the last one repeats); records every request.
    With a `gate`, each POST sets `arrived` and waits for the gate to open before answering."""

    url: str
    script: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    gate: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    """Serve on 127.0.0.1:<ephemeral> in a daemon thread; stop with server.shutdown()."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.arrived.set()
            if state.gate is not None:
                state.gate.wait(60)
            index = min(len(state.requests), len(state.script) - 1)
            status = state.script[index]
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append(Received(self.path, headers, body, status))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/redirected")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server
