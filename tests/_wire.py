"""Round trips on the wire: a unix-socket proxy in front of the test PostgreSQL server that counts the
requests a client waits on and the statements it runs.

    with Wire(pg_uri) as wire:
        store = PostgresStorage(wire.uri, ...)
        wire.reset(); store.batch(...); assert wire.round_trips == 1 and wire.statements == 1

Counting happens in the proxy, on the messages the real driver sends: no part of psycopg is replaced.
A round trip is a Sync or a simple Query message: the server answers each with ReadyForQuery, which the
driver waits for before it goes on (a statement outside a pipeline ends with its Sync; a pipeline sends
one at its end, then a Flush, not counted, that asks for nothing new). Counting the requests rather than
the turns of the conversation keeps the count exact whatever the timing: PostgreSQL sends an error at
once, so the turns of a pipeline that fails part-way depend on how fast the driver was sending.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["Wire"]

_SSL_REQUEST = 80877103


class Wire:
    """The proxy (a context manager); `uri` reaches the server through it."""

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        query = dict(parse_qsl(parts.query))
        port = parts.port or 5432
        self._upstream = os.path.join(query["host"], f".s.PGSQL.{port}")
        self._dir = tempfile.mkdtemp(prefix="alma-wire-")
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(os.path.join(self._dir, f".s.PGSQL.{port}"))
        self._listener.listen(16)
        self.uri = urlunsplit(parts._replace(query=urlencode({**query, "host": self._dir})))
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.round_trips = 0  # requests the client waits on: Sync and simple Query messages
        self.statements = 0  # statements run: Execute and simple Query messages
        self.texts: list[str] = []  # the text of each Parse / simple Query, in order (a prepared
        # statement run again sends none)
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.round_trips = 0
            self.statements = 0
            self.texts = []

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self._upstream)
            state = {"buf": b"", "started": False}
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._from_client, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._from_server, args=(server, client), daemon=True).start()

    def _from_client(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    self._messages(state, data)
                server.sendall(data)
        except OSError:
            pass
        finally:
            server.close()

    def _from_server(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()

    def _messages(self, state: dict, data: bytes) -> None:
        """Record the statements of the client's messages (type byte, int32 length, body)."""
        buf = state["buf"] + data
        while not state["started"] and len(buf) >= 8:  # startup packets have no type byte
            (size, code) = struct.unpack("!II", buf[:8])
            if len(buf) < size:
                break
            buf, state["started"] = buf[size:], code != _SSL_REQUEST
        while state["started"] and len(buf) >= 5:
            kind, (size,) = buf[:1], struct.unpack("!I", buf[1:5])
            if len(buf) < 1 + size:
                break
            body = buf[5 : 1 + size]
            if kind == b"P":  # Parse: statement name, then the text
                self.texts.append(body.split(b"\0")[1].decode())
            elif kind == b"Q":
                self.texts.append(body.split(b"\0")[0].decode())
            self.statements += kind in (b"E", b"Q")
            self.round_trips += kind in (b"S", b"Q")
            buf = buf[1 + size :]
        state["buf"] = buf
