"""`alma webhooks deliveries | retry | test`: inspect and replay the webhook outbox, or ping a receiver.

Registered on the `alma` parser by `register()` (one line in cli.py). These commands open the store only,
never an `ALMA`, so they start no delivery worker of their own.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

__all__ = ["register"]


def _storage(args: argparse.Namespace) -> Any:
    from .cli import cli_config
    from .storage import open_storage

    return open_storage(cli_config(args.config))


def cmd_deliveries(args: argparse.Namespace) -> int:
    from .webhooks import deliveries

    storage = _storage(args)
    try:
        found = deliveries(storage, args.status, args.limit)
    finally:
        storage.close()
    if args.json:
        print(json.dumps([d.model_dump() for d in found], indent=2, default=str))
        return 0
    if not found:
        print("no deliveries" + (f" with status {args.status}" if args.status else ""))
    for d in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.created_at))
        error = f"  {d.last_error}" if d.last_error else ""
        print(f"{d.id}  {d.status:<9} {d.event_type:<12} attempts={d.attempts}  {when}Z  {d.url}{error}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from .webhooks import deliveries, retry_delivery

    storage = _storage(args)
    try:
        ids = list(args.ids) + ([d.id for d in deliveries(storage, "dead")] if args.all_dead else [])
        if not ids:
            print("nothing to retry (give delivery ids or --all-dead)")
            return 1
        for delivery_id in ids:
            retry_delivery(storage, delivery_id)
    finally:
        storage.close()
    print(f"queued {len(ids)} deliveries again; a running WebhookManager delivers them")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from .webhooks import WebhookConfig, send_once

    config = WebhookConfig(url=args.url, secret=args.secret, allow_private=args.allow_private, timeout=args.timeout)
    msg_id = f"msg_{uuid.uuid4().hex}"
    body = json.dumps({"type": "webhook.test", "timestamp": time.time(), "data": {}}, separators=(",", ":"))
    status = send_once(config, msg_id, body)
    print(f"{args.url}: HTTP {status} (webhook-id {msg_id})")
    return 0 if 200 <= status < 300 else 1


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `alma webhooks ...` to the `alma` subparsers."""
    help_text = "Webhook outbox: list deliveries, retry dead ones, or send a signed test message."
    p = sub.add_parser("webhooks", parents=[common], help=help_text, description=help_text)
    actions = p.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True, parser_class=type(p))

    d = actions.add_parser("deliveries", parents=[common], help="list deliveries, newest first")
    d.add_argument("--status", choices=["pending", "delivered", "dead"], help="only this status")
    d.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=cmd_deliveries)

    r = actions.add_parser("retry", parents=[common], help="queue deliveries again (same id and body)")
    r.add_argument("ids", nargs="*", help="delivery ids (msg_...)")
    r.add_argument("--all-dead", action="store_true", help="every dead delivery")
    r.set_defaults(func=cmd_retry)

    t = actions.add_parser("test", parents=[common], help="send one signed test message to a URL")
    t.add_argument("url", help="the receiver's http(s) URL")
    t.add_argument("--secret", help="signing secret (whsec_... or any string)")
    t.add_argument("--allow-private", action="store_true", help="allow a private or loopback receiver")
    t.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    t.set_defaults(func=cmd_test)
