"""Webhooks benchmark: a slow receiver never slows `learn`.

    .venv/bin/python benchmarks/bench_webhooks.py [--learns 200] [--receiver-delay 2.0] [--quick]

Three runs of the same `learn` stream, each on its own fresh SQLite store with mock embeddings:
  no webhooks       the baseline
  fast receiver     a webhook to a loopback receiver that answers 200 at once
  slow receiver     a webhook to a loopback receiver that sleeps --receiver-delay seconds per request
Prints the p50 / p95 / max of `learn` per run, how many deliveries were queued, and how many the
receiver had got when the stream ended (the rest are still in the outbox, being delivered).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, timed_ms

from alma_core import ALMA
from alma_core.events import EventEmitter, WebhookManager
from alma_core.webhooks import deliveries


def receiver(delay: float) -> tuple[ThreadingHTTPServer, list[int]]:
    got: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(delay)
            got.append(1)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def run(label: str, learns: int, delay: float | None, directory: Path) -> None:
    emitter = EventEmitter()
    alma = ALMA(project_id="bench", storage=directory / f"{label}.db", embedder="mock", emitter=emitter)
    manager, server = None, None
    got: list[int] = []
    if delay is not None:
        server, got = receiver(delay)
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        hook = {"url": url, "secret": "bench", "allow_private": True, "timeout": delay + 5}
        manager = WebhookManager(alma, webhooks=[hook]).start(emitter)

    def learn(i: int) -> None:
        alma.learn("helena", f"Test form {i % 20}", i % 3 != 0, strategy_used=f"strategy {i % 7}", task_type="qa")

    samples = timed_ms(learn, learns)
    queued = len(deliveries(alma.storage)) if manager else 0  # type: ignore[arg-type]
    received = len(got)
    if manager:
        manager.stop()
    if server:
        server.shutdown()
    alma.close()
    print(f"{label:<15} learn p50 {percentile(samples, 50):7.2f} ms  p95 {percentile(samples, 95):7.2f} ms  "
          f"max {max(samples):8.2f} ms  queued {queued:4d}  received by the end {received:4d}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learns", type=int, default=200)
    parser.add_argument("--receiver-delay", type=float, default=2.0, help="seconds the slow receiver sleeps")
    parser.add_argument("--quick", action="store_true", help="60 learns, 1 s receiver")
    args = parser.parse_args()
    learns, delay = (60, 1.0) if args.quick else (args.learns, args.receiver_delay)
    print(f"settings: {learns} learns per run, SQLite file, mock embeddings, slow receiver {delay} s/request, "
          f"one worker thread per manager")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for label, d in (("no webhooks", None), ("fast receiver", 0.0), ("slow receiver", delay)):
            run(label, learns, d, Path(tmp))


if __name__ == "__main__":
    main()
