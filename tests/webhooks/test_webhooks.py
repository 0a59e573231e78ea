"""Webhooks against a real HTTP receiver on a loopback port: Standard Webhooks signatures, the outbox
written in the write's transaction, retries with backoff, dead letters, SSRF refusal, no redirects."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest
from _webhook_receiver import SECRET, FailingOutbox, Receiver, wait_deliveries

from alma_core import ALMA, ValidationError
from alma_core._errors import WebhookVerificationError
from alma_core.events import EventEmitter, WebhookConfig, WebhookManager
from alma_core.webhooks import deliveries, retry_delivery, sign, verify


def _alma(db_path: Path, emitter: EventEmitter) -> ALMA:
    return ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter)


def _hook(receiver: Receiver, **kwargs: object) -> WebhookConfig:
    settings: dict[str, object] = {"url": receiver.url, "secret": SECRET, "retry_count": 3, "retry_delay": 0.05,
                                   "allow_private": True, **kwargs}  # fmt: skip
    return WebhookConfig(**settings)  # type: ignore[arg-type]


def test_sign_and_verify_follow_standard_webhooks() -> None:
    body = '{"type":"memory.created"}'
    now = int(time.time())
    signature = sign("msg_1", now, body, SECRET)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    assert verify(body, headers, SECRET) == {"type": "memory.created"}
    # the scheme's own vector: HMAC-SHA256 over "id.timestamp.body" with the base64-decoded whsec key
    import hashlib
    import hmac

    mac = hmac.new(b"a test secret of 24 bytes", f"msg_1.{now}.{body}".encode(), hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(body.replace("created", "deleted"), headers, SECRET)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(body, headers, SECRET, now=now + 301)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(body, {"webhook-id": "msg_1"}, SECRET)
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert verify(body, rotated, SECRET)  # several signatures: any one matching is enough


def test_failing_twice_then_ok_gets_exactly_one_more_delivery_with_the_same_id(
    db_path: Path, receiver: Receiver
) -> None:
    receiver.script = [500, 500, 200]
    emitter = EventEmitter()
    with _alma(db_path, emitter) as alma, WebhookManager(alma, webhooks=[_hook(receiver)]).start(emitter):
        fact = alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        (delivered,) = wait_deliveries(alma, "delivered")
        time.sleep(0.5)  # several backoff periods: nothing more may arrive
    got = receiver.requests
    assert len(got) == 3 and delivered.attempts == 3
    assert len({r.headers["webhook-id"] for r in got}) == 1 and got[0].headers["webhook-id"] == delivered.id
    payload = verify(got[-1].body, got[-1].headers, SECRET)
    assert payload["type"] == "memory.created" and payload["data"]["memory_id"] == fact.id


def test_a_worker_that_outlives_stop_exits_after_its_attempt_instead_of_running_beside_the_next(
    db_path: Path, receiver: Receiver
) -> None:
    """`stop()` waits a bounded time; a worker still mid-send then finishes its attempt and exits. It used
    to run on beside the worker of the next `start()` (its stop flag was cleared again)."""
    receiver.gate = threading.Event()  # every request waits here: the worker stays mid-send
    emitter = EventEmitter()
    before = set(threading.enumerate())
    with _alma(db_path, emitter) as alma:
        manager = WebhookManager(alma, webhooks=[_hook(receiver)]).start(emitter)
        try:
            alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
            assert receiver.arrived.wait(60)
            [old] = [t for t in threading.enumerate() if t.name == "alma-webhooks" and t not in before]
            manager.stop(timeout=0.01)
            assert old.is_alive()  # held by the receiver's gate
            manager.start(emitter)
            receiver.gate.set()
            old.join(60)  # only a worker that runs on reaches the limit
            assert not old.is_alive(), "the stopped worker runs on beside the new one"
            (delivered,) = wait_deliveries(alma, "delivered")  # at least once (both may have sent it)
        finally:
            manager.stop()
    assert delivered.attempts >= 1 and {r.headers["webhook-id"] for r in receiver.requests} == {delivered.id}


def test_only_subscribed_event_types_are_queued(db_path: Path, receiver: Receiver) -> None:
    emitter = EventEmitter()
    with (
        _alma(db_path, emitter) as alma,
        WebhookManager(alma, webhooks=[_hook(receiver, events=["deleted"])]).start(emitter),
    ):
        fact = alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        alma.retrieve("tokens", agent="bot")  # ACCESSED is never queued
        alma.delete(fact.id)
        (delivered,) = wait_deliveries(alma, "delivered")
    assert delivered.event_type == "deleted" and len(receiver.requests) == 1


def test_a_rolled_back_write_queues_nothing(db_path: Path, receiver: Receiver) -> None:
    emitter = EventEmitter()
    with _alma(db_path, emitter) as alma:
        manager = WebhookManager(alma, webhooks=[_hook(receiver)])
        emitter.add_outbox(manager)
        emitter.add_outbox(FailingOutbox())  # fails inside the transaction, after the webhook records were staged
        with pytest.raises(RuntimeError, match="disk full"):
            alma.learn("bot", "Deploy", True, strategy_used="blue-green", task_type="ops")
        assert alma.stats().total == 0 and deliveries(alma.storage) == []  # type: ignore[arg-type]


def test_dead_after_the_cap_is_kept_and_can_be_retried(db_path: Path, receiver: Receiver) -> None:
    receiver.script = [503, 503, 200]
    emitter = EventEmitter()
    with (
        _alma(db_path, emitter) as alma,
        WebhookManager(alma, webhooks=[_hook(receiver, retry_count=1)]).start(emitter) as manager,
    ):
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        (dead,) = wait_deliveries(alma, "dead")
        assert dead.attempts == 2 and dead.last_error == "HTTP 503" and len(receiver.requests) == 2
        retry_delivery(alma.storage, dead.id)  # type: ignore[arg-type]
        manager.committed(alma.storage)
        (delivered,) = wait_deliveries(alma, "delivered")
    assert delivered.id == dead.id and len(receiver.requests) == 3


def test_redirects_are_not_followed(db_path: Path, receiver: Receiver) -> None:
    receiver.script = [302]
    emitter = EventEmitter()
    with (
        _alma(db_path, emitter) as alma,
        WebhookManager(alma, webhooks=[_hook(receiver, retry_count=0)]).start(emitter),
    ):
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        (dead,) = wait_deliveries(alma, "dead")
    assert dead.last_error == "HTTP 302" and [r.path for r in receiver.requests] == ["/hook"]


def test_private_and_loopback_receivers_are_refused_unless_allowed(db_path: Path, receiver: Receiver) -> None:
    for url in ("http://127.0.0.1:8080/x", "http://10.0.0.5/x", "http://[::1]/x", "http://169.254.169.254/"):
        with pytest.raises(ValidationError, match="private, loopback or reserved"):
            WebhookConfig(url=url)
    with pytest.raises(ValidationError, match="http"):
        WebhookConfig(url="file:///etc/passwd")
    emitter = EventEmitter()
    named = receiver.url.replace("127.0.0.1", "localhost")  # a host name resolving to loopback: refused at delivery
    with (
        _alma(db_path, emitter) as alma,
        WebhookManager(alma, webhooks=[{"url": named, "retry_delay": 0}]).start(emitter),
    ):
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        (dead,) = wait_deliveries(alma, "dead")
    assert "refused" in (dead.last_error or "") and receiver.requests == []


def test_config_webhooks_start_with_the_alma_and_resume_what_is_pending(db_path: Path, receiver: Receiver) -> None:
    receiver.script = [500]
    emitter = EventEmitter()
    with _alma(db_path, emitter) as alma:  # queued while no worker runs (a process that died)
        manager = WebhookManager(alma, webhooks=[_hook(receiver)])
        emitter.add_outbox(manager)
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        (pending,) = deliveries(alma.storage, "pending")  # type: ignore[arg-type]
    receiver.script = [200]
    from alma_core import AlmaConfig

    config = AlmaConfig(project_id="hooks", webhooks=[_hook(receiver).model_dump()])
    with ALMA(config=config, storage=db_path, embedder="mock", emitter=EventEmitter()) as alma:
        assert alma.webhooks is not None
        (delivered,) = wait_deliveries(alma, "delivered")
    assert delivered.id == pending.id and receiver.requests[0].headers["webhook-id"] == pending.id


def test_killed_with_pending_deliveries_they_arrive_after_a_restart(db_path: Path, receiver: Receiver) -> None:
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    receiver.script = [500]
    root = Path(__file__).resolve().parents[2]
    code = f"""
        import time
        from alma_core import ALMA, AlmaConfig
        hook = {{"url": {receiver.url!r}, "secret": {SECRET!r}, "retry_count": 20, "retry_delay": 0.2,
                 "allow_private": True}}
        alma = ALMA(config=AlmaConfig(project_id="hooks", webhooks=[hook]), storage={str(db_path)!r},
                    embedder="mock")
        for fact in ("Tokens expire hourly", "Refresh tokens last a week", "Sessions are sticky"):
            alma.add_domain_knowledge("bot", "auth", fact)
        print("written", flush=True)
        time.sleep(120)
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
        assert receiver.wait_for(1)  # the dying process got at least one (failed) attempt out
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    failed_ids = {r.headers["webhook-id"] for r in receiver.requests}
    receiver.script = [200]
    with ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=EventEmitter()) as alma:
        pending = {d.id for d in deliveries(alma.storage, "pending")}  # type: ignore[arg-type]
        assert len(pending) == 3 and failed_ids <= pending
        hook = _hook(receiver, retry_count=20, retry_delay=0.2)
        with WebhookManager(alma, webhooks=[hook]).start(alma.events):
            delivered = wait_deliveries(alma, "delivered", count=3)
    assert {d.id for d in delivered} == pending
    ok = [r for r in receiver.requests if r.status == 200]
    assert sorted(r.headers["webhook-id"] for r in ok) == sorted(pending)  # each exactly once, same ids
    facts = {verify(r.body, r.headers, SECRET)["data"]["memory_id"] for r in ok}
    assert len(facts) == 3
