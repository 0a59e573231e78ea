"""`alma webhooks deliveries | retry | test` on a real store and a real receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _webhook_receiver import Receiver, wait_deliveries

from alma_core import ALMA, load_config
from alma_core.cli import main
from alma_core.events import EventEmitter, WebhookManager
from alma_core.webhooks import verify


def test_list_retry_and_test_from_the_command_line(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"alma:\n  project_id: cli\n  storage_dir: {tmp_path}\n  embedding_provider: mock\n")
    receiver.script = [500, 200]
    hook = {"url": receiver.url, "retry_count": 0, "retry_delay": 0, "allow_private": True}
    emitter = EventEmitter()
    with (
        ALMA(config=load_config(config), emitter=emitter) as alma,
        WebhookManager(alma, webhooks=[hook]).start(emitter) as manager,
    ):
        alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        wait_deliveries(alma, "dead")
        manager.stop()
    assert main(["webhooks", "deliveries", "--status", "dead", "--config", str(config), "--json"]) == 0
    (dead,) = json.loads(capsys.readouterr().out)
    assert dead["status"] == "dead" and dead["last_error"] == "HTTP 500"
    assert main(["webhooks", "retry", "--all-dead", "--config", str(config)]) == 0
    assert "queued 1" in capsys.readouterr().out
    assert main(["webhooks", "deliveries", "--config", str(config)]) == 0
    assert f"{dead['id']}  pending" in capsys.readouterr().out
    assert main(["webhooks", "test", receiver.url, "--secret", "s3cret", "--allow-private"]) == 0
    assert "HTTP 200" in capsys.readouterr().out
    last = receiver.requests[-1]
    assert verify(last.body, last.headers, "s3cret")["type"] == "webhook.test"
    assert main(["webhooks", "test", receiver.url]) == 1  # loopback without --allow-private
    assert "private, loopback or reserved" in capsys.readouterr().err
