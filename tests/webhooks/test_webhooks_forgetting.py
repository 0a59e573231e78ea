"""`forget()` and `decay_confidence()` announce what they change: `deleted` / `updated` events reach
subscribers after the commit and the webhook outbox inside the write's transaction (a real HTTP receiver)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _webhook_receiver import SECRET, FailingOutbox, Receiver, wait_deliveries

from alma_core import ALMA
from alma_core.events import EventEmitter, MemoryEvent, WebhookConfig, WebhookManager
from alma_core.webhooks import deliveries, verify

OLD = datetime.now(UTC) - timedelta(days=360)


def _hook(receiver: Receiver) -> WebhookConfig:
    return WebhookConfig(url=receiver.url, secret=SECRET, events=["updated", "deleted"], retry_delay=0.05,
                         allow_private=True)  # fmt: skip


def test_decay_and_forget_reach_subscribers_and_webhooks(db_path: Path, receiver: Receiver) -> None:
    emitter = EventEmitter()
    seen: list[MemoryEvent] = []
    emitter.subscribe(seen.append, ["updated", "deleted"])
    with (
        ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter) as alma,
        WebhookManager(alma, webhooks=[_hook(receiver)]).start(emitter),
    ):
        facts = [alma.add_domain_knowledge("bot", "auth", f"Fact {i} about tokens", created_at=OLD) for i in range(2)]
        fresh = alma.add_domain_knowledge("bot", "auth", "Sessions rotate nightly")
        assert alma.decay_confidence(dry_run=True) and alma.forget(below_confidence=0.5, dry_run=True) == []
        assert seen == [] and deliveries(alma.storage) == []  # type: ignore[arg-type]  # dry runs announce nothing

        decayed = alma.decay_confidence(half_life_days=90)
        assert {m.id for m in decayed} == {f.id for f in facts}
        assert [(e.type.value, e.memory_id, e.payload) for e in seen] == [
            ("updated", f.id, {"reason": "decay"}) for f in decayed
        ]
        gone = alma.forget(below_confidence=0.5)
        assert {m.id for m in gone} == {f.id for f in facts} and alma.get(fresh.id)
        assert [(e.type.value, e.memory_id, e.payload) for e in seen[2:]] == [
            ("deleted", m.id, {"reason": "forget"}) for m in gone
        ]
        delivered = wait_deliveries(alma, "delivered", 4)
    assert len(delivered) == 4  # the two creations are not subscribed to
    bodies = [verify(r.body, r.headers, SECRET) for r in receiver.requests]
    got = sorted((b["type"], b["data"]["memory_id"], b["data"]["payload"]["reason"]) for b in bodies)
    expected = [("memory.deleted", f.id, "forget") for f in facts] + [("memory.updated", f.id, "decay") for f in facts]
    assert got == sorted(expected)


def test_a_forget_whose_events_cannot_be_staged_deletes_nothing(db_path: Path) -> None:
    emitter = EventEmitter()
    with ALMA(project_id="hooks", storage=db_path, embedder="mock", emitter=emitter) as alma:
        fact = alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly", created_at=OLD)
        emitter.add_outbox(FailingOutbox())
        with pytest.raises(RuntimeError, match="disk full"):
            alma.forget(older_than_days=30)
        with pytest.raises(RuntimeError, match="disk full"):
            alma.decay_confidence(half_life_days=90)
        assert alma.get(fact.id).confidence == fact.confidence
