"""The latest checkpoint of recently read threads, kept exactly as correct as a re-read.

`get_tuple` (and `aget_tuple`, which runs it on a worker thread) of a thread's latest checkpoint first
asks the store for its version (`StoreVersion`, one statement: on SQLite `PRAGMA data_version`, which
moves on any other connection's commit, with the store's own count of commits). A thread read since,
with nothing committed in between by anyone, is answered from what that read returned; else the store is
read, the version taken before the read. Nothing a caller holds is ever kept or handed out twice: what
is kept is a copy, and each answer a copy of it (immutable values shared, every other one deep-copied).
A store that cannot tell its version (PostgreSQL, a connection passed in) turns the cache off. Bounded
by entry count.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import CheckpointTuple

from alma_core.storage import StoreVersion

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["Heads"]

_IMMUTABLE = (str, int, float, bool, bytes, type(None))


class Heads:
    """`(thread_id, checkpoint_ns)` -> (store version, the thread's latest checkpoint at that version)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, str], tuple[Any, CheckpointTuple]] = OrderedDict()
        self._lock = threading.Lock()

    def version(self, saver: AlmaSaver) -> Any:
        """The store's version now (None: it cannot tell, and the cache turns itself off)."""
        if self.size <= 0:
            return None
        found = saver.storage.execute(StoreVersion())
        if found is None:
            self.size = 0
            return None
        return found[0]

    def get(self, key: tuple[str, str], version: Any) -> CheckpointTuple | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or kept[0] != version:
                return None
            self._kept.move_to_end(key)
        return _copy(kept[1])

    def put(self, key: tuple[str, str], version: Any, found: CheckpointTuple) -> None:
        kept = _copy(found)
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = (version, kept)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)


def _copy(t: CheckpointTuple) -> CheckpointTuple:
    """A copy no caller can reach into: containers rebuilt, immutable values shared, others deep-copied."""
    cp: dict[str, Any] = dict(t.checkpoint)
    cp["channel_values"] = {k: _value(v) for k, v in cp["channel_values"].items()}
    cp["channel_versions"] = dict(cp["channel_versions"])
    cp["versions_seen"] = {k: dict(v) for k, v in cp["versions_seen"].items()}
    for k, v in cp.items():
        if k not in ("channel_values", "channel_versions", "versions_seen"):
            cp[k] = _value(v)
    return CheckpointTuple(
        config=_config(t.config),
        checkpoint=cp,  # type: ignore[arg-type]
        metadata={k: _value(v) for k, v in t.metadata.items()},  # type: ignore[arg-type]
        parent_config=_config(t.parent_config) if t.parent_config else None,
        pending_writes=[(task, channel, _value(v)) for task, channel, v in t.pending_writes or []],
    )


def _config(config: Any) -> Any:
    return {**config, "configurable": dict(config["configurable"])}


def _value(value: Any) -> Any:
    return value if type(value) in _IMMUTABLE else copy.deepcopy(value)
