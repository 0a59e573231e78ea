"""The delivery worker under failure: a store that is locked when an attempt's result is written, a store
closed under the worker, a receiver that answers something other than HTTP. Real SQLite files, real
loopback receivers; each test waits on the event itself (a log record, a thread's end, a stored status)."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _webhook_receiver import SECRET, Receiver, wait_deliveries

from alma_core import ALMA, SQLiteStorage, ValidationError
from alma_core.events import EventEmitter, WebhookConfig, WebhookManager
from alma_core.storage import PutRecord, Record
from alma_core.storage._base import SYSTEM_PROJECT
from alma_core.webhooks import NAMESPACE, deliveries, retry_delivery


def _hook(url: str, **kwargs: object) -> WebhookConfig:
    settings: dict[str, object] = {"url": url, "secret": SECRET, "retry_count": 3, "retry_delay": 0.05,
                                   "allow_private": True, **kwargs}  # fmt: skip
    return WebhookConfig(**settings)  # type: ignore[arg-type]


@contextmanager
def logged(level: int, text: str) -> Iterator[threading.Event]:
    """An event set when `alma.webhooks` logs a record at `level` whose message contains `text`."""
    seen = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == level and text in record.getMessage():
                seen.set()

    logger, handler = logging.getLogger("alma.webhooks"), Handler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _workers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "alma-webhooks" and t not in before]


def test_a_store_locked_when_the_result_is_written_is_retried_without_sending_again(
    db_path: Path, receiver: Receiver
) -> None:
    """The receiver got the message; then "database is locked" refused its status update. The worker used
    to die there, silently. Now it logs, backs off, writes the kept result: one request, one attempt."""
    receiver.gate = threading.Event()
    emitter = EventEmitter()
    storage = SQLiteStorage(db_path, timeout=0.2)  # a short busy wait: the lock below outlasts it
    before = set(threading.enumerate())
    with (
        ALMA(project_id="hooks", storage=storage, embedder="mock", emitter=emitter) as alma,
        logged(logging.WARNING, "failed (StorageError") as failed,
        WebhookManager(alma, webhooks=[_hook(receiver.url)], poll_interval=0.05).start(emitter),
    ):
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        assert receiver.arrived.wait(60)  # the worker is mid-send
        [worker] = _workers(before)
        locker = sqlite3.connect(db_path, isolation_level=None, timeout=60)
        try:
            locker.execute("BEGIN IMMEDIATE")  # another process's write transaction holds the file
            receiver.gate.set()  # 200: the worker now writes "delivered", and cannot
            assert failed.wait(60), "the worker did not report the locked store"
            worker.join(0.5)  # (a worker that dies on the error ends well within this)
            assert worker.is_alive()  # (`_workers` lists live threads only: a dead one is simply absent)
        finally:
            locker.rollback()
            locker.close()
        (delivered,) = wait_deliveries(alma, "delivered")
        assert _workers(before) == [worker]  # that worker delivered it, none started in its place
    assert delivered.attempts == 1 and [r.headers["webhook-id"] for r in receiver.requests] == [delivered.id]


def test_a_worker_leaves_when_its_store_is_closed_and_the_delivery_waits_in_the_file(
    db_path: Path, receiver: Receiver
) -> None:
    """The store closed while a delivery was in flight: the worker logs, exits (it used to poll the closed
    store forever, or die on the write), and the delivery stays pending in the file. A later write through
    the same manager starts a worker again, which delivers both (the first again: at least once)."""
    receiver.gate = threading.Event()
    emitter = EventEmitter()
    before = set(threading.enumerate())
    manager = WebhookManager(webhooks=[_hook(receiver.url)], poll_interval=0.05)
    try:
        with logged(logging.INFO, "was closed") as dropped:
            alma = ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter)
            manager.start(emitter)
            alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
            assert receiver.arrived.wait(60)
            [worker] = _workers(before)
            alma.close()
            receiver.gate.set()
            worker.join(60)  # only a worker that keeps running reaches the limit
            assert not worker.is_alive() and dropped.is_set()
        with ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter) as alma:
            (first,) = deliveries(alma.storage, "pending")  # the 2xx could not be recorded: not lost
            alma.add_domain_knowledge("bot", "auth", "Refresh tokens last a week")
            done = wait_deliveries(alma, "delivered", count=2)
    finally:
        manager.stop()
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(done) == 2 and first.id in {d.id for d in done} and all(d.attempts == 1 for d in done)
    assert ids.count(first.id) == 2 and len(ids) == 3


def test_an_outbox_record_that_is_not_a_delivery_is_skipped_and_the_others_go_out(
    db_path: Path, receiver: Receiver
) -> None:
    """One unreadable record (edited by hand, a future version's) used to make every read of the outbox
    fail: nothing was delivered from that store again."""
    emitter = EventEmitter()
    with (
        ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter) as alma,
        logged(logging.WARNING, "'msg_bad' is not a delivery") as reported,
    ):
        alma.storage.execute(PutRecord(Record(SYSTEM_PROJECT, NAMESPACE, "msg_bad", None, {"status": "pending"})))
        with WebhookManager(alma, webhooks=[_hook(receiver.url)], poll_interval=0.05).start(emitter):
            alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
            (delivered,) = wait_deliveries(alma, "delivered")
        assert reported.is_set() and [r.headers["webhook-id"] for r in receiver.requests] == [delivered.id]
        with pytest.raises(ValidationError, match="'msg_bad' is not a delivery"):
            retry_delivery(alma.storage, "msg_bad")  # type: ignore[arg-type]


@pytest.fixture
def not_http() -> Iterator[str]:
    """A loopback server that reads each request whole and answers a line that is not HTTP."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed: the test is over
            with conn, conn.makefile("rb") as stream:
                length = 0
                while (line := stream.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                stream.read(length)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close() alone does not, on Linux)
    server.close()
    thread.join(60)


def test_a_response_that_is_not_http_is_a_failed_attempt_not_a_dead_worker(db_path: Path, not_http: str) -> None:
    """http.client raises BadStatusLine (not an OSError): it used to end the worker with the delivery
    pending forever. Now it is a failed attempt like any other, and the delivery goes dead at the cap."""
    emitter = EventEmitter()
    with (
        ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter) as alma,
        WebhookManager(alma, webhooks=[_hook(not_http, retry_count=1)], poll_interval=0.05).start(emitter),
    ):
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        (dead,) = wait_deliveries(alma, "dead")
    assert dead.attempts == 2 and (dead.last_error or "").startswith("BadStatusLine")


@pytest.mark.parametrize("url", ["http://example.com/a b", "http://example.com/\x00", "http://example.com/\n"])
def test_urls_with_spaces_or_control_characters_are_refused_at_the_edge(url: str) -> None:
    with pytest.raises(ValidationError, match="spaces or control characters"):
        WebhookConfig(url=url)
