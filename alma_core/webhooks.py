"""Webhooks: signed, at-least-once delivery of memory events through a persisted outbox.

    manager = WebhookManager(alma=alma)             # or WebhookManager() + any ALMA's writes
    manager.add_webhook(WebhookConfig(url="https://app.example/alma", events=[MemoryEventType.CREATED],
                                      secret="whsec_...", retry_count=3, retry_delay=5.0))
    manager.start(get_emitter())                    # a background worker delivers
    verify(body, headers, secret)                   # on the receiver: raises WebhookVerificationError

Outbox: a write's events become one delivery record per matching webhook, written in the write's own
transaction (`EventEmitter.add_outbox`), so a rolled-back write queues nothing and a committed one is never
lost. Records live in the store (`__alma__` / `webhooks/outbox`, key = the delivery id) with their exact
body, so a restart resumes them and every retry carries the same `webhook-id` (receivers deduplicate on
it: delivery is at-least-once). Secrets are never stored: a delivery waits until a manager with its URL's
webhook is running.

Signing follows Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`; a `whsec_<base64>` secret's key
is the decoded bytes, any other secret's is its UTF-8.

Attempts: the first, then up to `retry_count` retries after `retry_delay * 2**(n-1)` seconds each with
+-50% jitter; a 2xx is delivered, anything else (3xx included: redirects are never followed) is a failed
attempt; after the cap the delivery is `dead` and kept (`alma webhooks deliveries|retry`). Receivers on
private, loopback or link-local addresses are refused (SSRF) unless `allow_private=True`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as _PydanticError

from ._checks import first_error
from ._errors import ValidationError, WebhookVerificationError
from .events import EventEmitter, MemoryEvent, MemoryEventType
from .storage._base import SYSTEM_PROJECT, BaseStorage, GetRecord, ListRecords, PutRecord, Record

if TYPE_CHECKING:
    from ._alma import ALMA

__all__ = [
    "Delivery",
    "WebhookConfig",
    "WebhookManager",
    "WebhookVerificationError",
    "deliveries",
    "retry_delivery",
    "send_once",
    "sign",
    "verify",
]

log = logging.getLogger("alma.webhooks")

NAMESPACE = "webhooks/outbox"
_WRITE_EVENTS: list[MemoryEventType] = [t for t in MemoryEventType if t is not MemoryEventType.ACCESSED]
Status = Literal["pending", "delivered", "dead"]
MAX_BACKOFF = 60.0  # seconds: the longest pause before a failing store is tried again
_UNREADABLE: set[str] = set()  # outbox keys already reported as not a delivery (each is logged once)


class WebhookConfig(BaseModel):
    """One receiver: where, which events, how to sign, how hard to retry. Validated at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http(s) URL of the receiver.")
    events: list[MemoryEventType] = Field(
        default_factory=lambda: _WRITE_EVENTS.copy(),
        description="Event types to send (default: every write event, not ACCESSED).",
    )
    secret: str | None = Field(None, description="Signing secret (whsec_<base64> or any string).")
    retry_count: int = Field(3, ge=0, le=20, description="Retries after the first attempt before `dead`.")
    retry_delay: float = Field(5.0, ge=0, le=3600, description="Base delay (s) of the exponential backoff.")
    timeout: float = Field(10.0, gt=0, le=120, description="Seconds per attempt.")
    allow_private: bool = Field(False, description="Allow private/loopback receivers (off: SSRF guard).")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except _PydanticError as exc:
            where, msg = first_error(exc)
            raise ValidationError(f"WebhookConfig {where}: {msg}") from None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL with a host, got {url!r}")
        if any(c.isspace() or not c.isprintable() for c in url):  # http.client refuses them at each attempt
            raise ValueError(f"must not contain spaces or control characters, got {url!r}")
        return url

    @model_validator(mode="after")
    def _not_private(self) -> WebhookConfig:
        """An IP-literal receiver is checked now; a host name when it is resolved, at each delivery."""
        if not self.allow_private:
            try:
                address = ipaddress.ip_address((urlsplit(self.url).hostname or "").strip("[]"))
            except ValueError:
                return self
            _check_address(address)
        return self


class Delivery(BaseModel):
    """One message to one receiver, as the outbox keeps it."""

    id: str
    url: str
    event_type: str
    project_id: str
    body: str
    status: Status = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    last_status: int | None = None
    created_at: float
    delivered_at: float | None = None


# ---- signing ------------------------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode("utf-8")


def sign(msg_id: str, timestamp: int, body: str | bytes, secret: str) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + data, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify(
    body: str | bytes, headers: Mapping[str, str], secret: str, tolerance: float = 300.0, now: float | None = None
) -> dict[str, Any]:
    """Check a received webhook (constant time, timestamp within `tolerance` seconds); returns the
    parsed JSON body. Raises `WebhookVerificationError` otherwise."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, signatures = lower["webhook-id"], lower["webhook-timestamp"], lower["webhook-signature"]
        timestamp = int(stamp)
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook-id / -timestamp / -signature") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance (replayed or clock skew)")
    expected = sign(msg_id, timestamp, body, secret)
    if not any(hmac.compare_digest(expected, sig) for sig in signatures.split(" ") if sig.startswith("v1,")):
        raise WebhookVerificationError("no matching signature")
    try:
        return dict(json.loads(body))
    except (ValueError, TypeError):
        raise WebhookVerificationError("the body is not a JSON object") from None


# ---- one attempt --------------------------------------------------------------------------------------


class RefusedAddress(ValidationError):
    """The receiver resolves to a private, loopback or reserved address (SSRF guard)."""


def _check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    if not address.is_global or address.is_multicast:
        raise RefusedAddress(f"refused: {address} is a private, loopback or reserved address (allow_private=True)")


def _resolve_checked(host: str, port: int, allow_private: bool) -> None:
    """SSRF guard: every address the host resolves to must be public (unless allowed)."""
    if allow_private:
        return
    for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
        _check_address(ipaddress.ip_address(info[4][0]))


def send_once(config: WebhookConfig, msg_id: str, body: str, timestamp: int | None = None) -> int:
    """POST one signed message; returns the HTTP status. Never follows redirects. Raises OSError (network)
    or RefusedAddress."""
    parts = urlsplit(config.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    _resolve_checked(host, port, config.allow_private)
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {"content-type": "application/json", "user-agent": "alma-webhooks", "webhook-id": msg_id,
               "webhook-timestamp": str(stamp)}  # fmt: skip
    if config.secret:
        headers["webhook-signature"] = sign(msg_id, stamp, body, config.secret)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(host, port, timeout=config.timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body.encode("utf-8"), headers=headers)
        response = conn.getresponse()
        response.read(65536)
        return response.status
    finally:
        conn.close()


def _body(event: MemoryEvent) -> str:
    data = {"project_id": event.project_id, "agent": event.agent, "memory_id": event.memory_id,
            "memory_type": event.memory_type, "payload": event.payload}  # fmt: skip
    message = {"type": f"memory.{event.type.value}", "timestamp": event.timestamp.isoformat(), "data": data}
    return json.dumps(message, separators=(",", ":"), sort_keys=True, default=str)


def _backoff(config: WebhookConfig, attempts: int) -> float:
    return config.retry_delay * 2 ** max(attempts - 1, 0) * random.uniform(0.5, 1.5)


# ---- the outbox ---------------------------------------------------------------------------------------


def _put(storage: BaseStorage, delivery: Delivery) -> None:
    storage.execute(PutRecord(Record(SYSTEM_PROJECT, NAMESPACE, delivery.id, None, delivery.model_dump())))


def deliveries(storage: BaseStorage, status: Status | None = None, limit: int | None = None) -> list[Delivery]:
    """The outbox's deliveries, newest first (optionally of one status). A record that is not a delivery
    (edited by hand, a future version's) is skipped and logged once: it never blocks the others."""
    where = {"status": status} if status else None
    records = storage.execute(ListRecords(SYSTEM_PROJECT, NAMESPACE, where=where, limit=limit))
    found = []
    for record in records:
        try:
            found.append(Delivery.model_validate(record.metadata))
        except _PydanticError as exc:
            if record.key not in _UNREADABLE and len(_UNREADABLE) < 10_000:
                _UNREADABLE.add(record.key)
                log.warning("webhook outbox record %r is not a delivery; skipped (%s)", record.key,
                            str(exc).splitlines()[0])  # fmt: skip
    return found


def retry_delivery(storage: BaseStorage, delivery_id: str) -> Delivery:
    """Queue a dead (or delivered) delivery again, with the same id and body."""
    with storage.transaction() as tx:
        record = tx.execute(GetRecord(SYSTEM_PROJECT, NAMESPACE, delivery_id))
        if record is None:
            raise ValidationError(f"no webhook delivery {delivery_id!r}")
        try:
            delivery = Delivery.model_validate(record.metadata)
        except _PydanticError:
            raise ValidationError(f"webhook outbox record {delivery_id!r} is not a delivery") from None
        delivery = delivery.model_copy(
            update={"status": "pending", "attempts": 0, "next_attempt_at": 0.0, "last_error": None}
        )
        tx.execute(PutRecord(Record(SYSTEM_PROJECT, NAMESPACE, delivery.id, None, delivery.model_dump())))
    return delivery


class WebhookManager:
    """Queues deliveries in the write's transaction and delivers them from a background worker."""

    def __init__(
        self,
        alma: ALMA | None = None,
        *,
        storage: BaseStorage | None = None,
        webhooks: Iterable[WebhookConfig | Mapping[str, Any]] = (),
        poll_interval: float = 1.0,
    ) -> None:
        """`alma` / `storage`: a store whose pending deliveries to resume at `start()`. Any store an ALMA
        writes through the emitter is picked up as well."""
        self._configs: dict[str, WebhookConfig] = {}
        self._stores: list[BaseStorage] = []
        self._states: dict[int, _StoreState] = {}  # id(store) -> what the worker keeps about it
        if alma is not None:
            self._stores.append(alma.storage)
        if storage is not None and storage not in self._stores:
            self._stores.append(storage)
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._started = False
        self._thread: threading.Thread | None = None
        self._emitter: EventEmitter | None = None
        self._lock = threading.Lock()
        for webhook in webhooks:
            self.add_webhook(webhook)

    # ---- configuration ----

    def add_webhook(self, config: WebhookConfig | Mapping[str, Any]) -> WebhookConfig:
        """Register a receiver (one per URL; adding a URL again replaces its config)."""
        if not isinstance(config, WebhookConfig):
            if not isinstance(config, Mapping):
                raise ValidationError(f"add_webhook takes a WebhookConfig or a mapping, got {type(config).__name__}")
            config = WebhookConfig(**config)
        with self._lock:
            self._configs[config.url] = config
        return config

    def remove_webhook(self, url: str) -> bool:
        with self._lock:
            return self._configs.pop(url, None) is not None

    @property
    def webhooks(self) -> list[WebhookConfig]:
        return list(self._configs.values())

    # ---- the outbox protocol (called by the core inside the write transaction) ----

    def outbox_records(self, storage: Any, events: Sequence[MemoryEvent]) -> list[Record]:
        configs = list(self._configs.values())
        if not configs or not events:
            return []
        self._track(storage)
        now = time.time()
        records = []
        for event in events:
            body = _body(event)
            for config in configs:
                if event.type in config.events:
                    delivery = Delivery(id=f"msg_{uuid.uuid4().hex}", url=config.url, event_type=event.type.value,
                                        project_id=event.project_id, body=body, created_at=now)  # fmt: skip
                    records.append(Record(SYSTEM_PROJECT, NAMESPACE, delivery.id, None, delivery.model_dump()))
        return records

    def committed(self, storage: Any) -> None:
        self._wake.set()
        with self._lock:
            if self._started:
                self._spawn()  # the worker leaves once every store it knew was closed: this one is new

    def _track(self, storage: BaseStorage) -> None:
        with self._lock:
            if storage not in self._stores:
                self._stores.append(storage)

    # ---- the worker ----

    def start(self, emitter: EventEmitter | None = None) -> WebhookManager:
        """Queue deliveries for `emitter`'s writes (default: the process-wide one) and start delivering,
        resuming what the known stores still have pending."""
        from .events import get_emitter

        self._emitter = emitter or get_emitter()
        self._emitter.add_outbox(self)
        with self._lock:
            self._started = True
            self._spawn()
        self._wake.set()
        return self

    def _spawn(self) -> None:
        """Start a worker unless one runs (called under the lock)."""
        if self._thread is None or not self._thread.is_alive():
            # Each worker has its own stop flag: one that outlived `stop()`'s join (mid-send on a loaded
            # machine) finishes its attempt and exits, instead of running on beside the new one.
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="alma-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop queueing and delivering (pending deliveries stay in the outbox for the next start)."""
        if self._emitter is not None:
            self._emitter.remove_outbox(self)
        with self._lock:
            self._started = False
            thread, self._thread = self._thread, None
            self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> WebhookManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        """Deliver until stopped, or until every known store was closed (a later write to another store
        starts a worker again). A failing store never ends it: see `_deliver_store`."""
        while not stop.is_set():
            next_due = self.deliver_due(stop)
            with self._lock:
                if not self._stores:
                    if self._thread is threading.current_thread():
                        self._thread = None
                    return
            wait = self.poll_interval if next_due is None else max(0.0, min(self.poll_interval, next_due - time.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def deliver_due(self, stop: threading.Event | None = None) -> float | None:
        """One pass: attempt every pending delivery that is due; returns when the next one falls due.
        `stop` (default: the current worker's flag) ends the pass early. Never raises."""
        stop = self._stop if stop is None else stop
        next_due: float | None = None
        with self._lock:
            stores = list(self._stores)
        for storage in stores:
            if stop.is_set():
                return None
            state = self._states.setdefault(id(storage), _StoreState())
            if state.retry_at > time.time():  # failed lately: left alone until its backoff ends
                next_due = _earliest(next_due, state.retry_at)
                continue
            next_due = _earliest(next_due, self._deliver_store(storage, state, stop))
        return next_due

    def _deliver_store(self, storage: BaseStorage, state: _StoreState, stop: threading.Event) -> float | None:
        """`_deliver_from`, with its failures handled: a closed store is dropped (its pending deliveries
        wait in the file for the next manager); any other error ("database is locked", a lost server) is
        logged and the store is retried after a backoff, from what the worker kept."""
        try:
            due = self._deliver_from(storage, state, stop)
        except Exception as exc:
            if getattr(storage, "closed", False):  # a store without the property is never "closed"
                self._drop(storage)
                log.info("webhook outbox: %r was closed; no longer delivering from it", storage)
                return None
            state.failures += 1
            pause = min(max(self.poll_interval, 0.01) * 2 ** (state.failures - 1), MAX_BACKOFF)
            state.retry_at = time.time() + pause
            log.warning("webhook outbox of %r failed (%s: %s); retrying in %.1f s", storage, type(exc).__name__,
                        exc, pause, exc_info=state.failures == 1)  # fmt: skip
            return state.retry_at
        state.failures, state.retry_at = 0, 0.0
        return due

    def _deliver_from(self, storage: BaseStorage, state: _StoreState, stop: threading.Event) -> float | None:
        # The result of an attempt the store could not take is written before anything is sent again:
        # the receiver got that message once, and its attempt is counted once.
        for delivery in list(state.unsaved.values()):
            _put(storage, delivery)
            state.unsaved.pop(delivery.id, None)
        next_due: float | None = None
        for delivery in reversed(deliveries(storage, "pending")):  # oldest first
            if stop.is_set():
                return None
            config = self._configs.get(delivery.url)
            if config is None:
                continue  # no manager knows this receiver's secret yet: it waits
            if delivery.next_attempt_at > time.time():
                next_due = _earliest(next_due, delivery.next_attempt_at)
                continue
            updated = state.unsaved[delivery.id] = self._attempt(config, delivery)
            _put(storage, updated)
            state.unsaved.pop(delivery.id, None)
            if updated.status == "pending":
                next_due = _earliest(next_due, updated.next_attempt_at)
        return next_due

    def _drop(self, storage: BaseStorage) -> None:
        with self._lock:
            self._stores = [s for s in self._stores if s is not storage]
            self._states.pop(id(storage), None)

    def _attempt(self, config: WebhookConfig, delivery: Delivery) -> Delivery:
        attempts = delivery.attempts + 1
        status: int | None = None
        try:
            status = send_once(config, delivery.id, delivery.body)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except RefusedAddress as exc:  # retrying cannot help
            return delivery.model_copy(update={"status": "dead", "attempts": attempts, "last_error": str(exc)})
        except Exception as exc:  # network errors, a malformed response (http.client.HTTPException), ...
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            return delivery.model_copy(update={"status": "delivered", "attempts": attempts, "last_status": status,
                                               "last_error": None, "delivered_at": time.time()})  # fmt: skip
        dead = attempts > config.retry_count
        log.info("webhook %s to %s failed (attempt %d): %s", delivery.id, delivery.url, attempts, error)
        return delivery.model_copy(update={
            "status": "dead" if dead else "pending", "attempts": attempts, "last_status": status,
            "last_error": error, "next_attempt_at": time.time() + _backoff(config, attempts),
        })  # fmt: skip


@dataclass
class _StoreState:
    """What the worker keeps about one store between passes."""

    unsaved: dict[str, Delivery] = field(default_factory=dict)  # attempted, but the store failed to record it
    failures: int = 0  # passes in a row that failed
    retry_at: float = 0.0  # not before (unix seconds) after a failure


def _earliest(current: float | None, due: float | None) -> float | None:
    return due if current is None else current if due is None else min(current, due)


def from_config(alma: ALMA) -> WebhookManager | None:
    """The manager of a config's `webhooks:` list, started on the ALMA's emitter (None without webhooks)."""
    hooks = alma.config.webhooks
    if not hooks:
        return None
    return WebhookManager(alma, webhooks=[h.model_dump(exclude_none=True) for h in hooks]).start(alma.events)
