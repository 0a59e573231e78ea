"""Every backend tells a closed store from a failing one (`closed`): background workers (webhooks) stop
using a closed store instead of retrying it."""

from __future__ import annotations

import pytest

from alma_core import StorageError
from alma_core.storage import BaseStorage, ListRecords, PutRecord, Record


def test_a_closed_store_says_so_and_refuses_every_call(store: BaseStorage) -> None:
    store.execute(PutRecord(Record("p", "ns", "k", None, {"a": 1})))
    assert not store.closed
    store.close()
    assert store.closed
    with pytest.raises(StorageError):
        store.execute(ListRecords("p", "ns"))
    store.close()  # closing again is harmless
