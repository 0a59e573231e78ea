"""The receiver fixture: a real HTTP server on an ephemeral loopback port (see _webhook_receiver)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _webhook_receiver import Receiver, start_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state, server = start_receiver()
    yield state
    server.shutdown()
    server.server_close()
