"""Channel values stored once per channel version, and append-only lists stored as deltas.

A channel's value at one version is an `Entry` (key `<channel>/<version>`), stored once, when the channel
gets that version, and shared by every later checkpoint that keeps it (like PostgresSaver's
`checkpoint_blobs`): inside the checkpoint row that introduced it (format 3, see `_rows`), or as a blob
record (`_layout.blobs_ns`; format 2, and entries a pruned row handed over), whose metadata is
`{"t": stored type}` for a whole value. A channel whose value is a list that only grew since the version
this saver last wrote (or read) of it, such as `add_messages`' message list, is stored as a delta:

    {"t": stored type, "d": [v0, v1, ..., vk], "n": item count}   value: the new items only

Its list is the items of snapshot `v0` followed by the new items of deltas `v1..vk` and of its own,
so a read fetches the whole chain in one query. Lists are compared in their serialized form: msgpack
is self-delimiting, so the old list is a prefix of the new one exactly when the new bytes start with
the old ones (any other change, or a non-msgpack serde, stores a whole snapshot). A chain is at most
`SNAPSHOT_EVERY` deltas long. Bytes are packed with the saver's `Packer` (compression, a cipher) each
bound to its record's place (`_crypto.location`: project, thread, ns, channel, version).

What the saver last wrote or read of each list channel is remembered (bounded, least recent first
out); a process that remembers nothing writes a snapshot, which is always correct. Only a committed
write is remembered, so a delta never points at a blob that is not stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alma_core import StorageError
from alma_core.storage import Record

from ._crypto import location
from ._layout import BLOBS, blob_key, thread_prefix
from ._serde import Packer

__all__ = ["SNAPSHOT_EVERY", "Channels", "Entry", "Held", "Known", "Lookup"]

SNAPSHOT_EVERY = 16  # deltas at most between two snapshots: a read joins at most this many + 1 blobs
_MEMORY = 64 << 20  # bytes of list bodies remembered across threads


@dataclass(frozen=True, slots=True)
class Entry:
    """One channel version as stored, unpacked: serde type, serialized bytes (a delta: its new items only),
    the versions of its delta chain (oldest, a snapshot, first) and its item count."""

    type: str
    data: bytes
    chain: tuple[str, ...] = ()
    count: int = 0


Lookup = Callable[[str], "tuple[Entry, str] | None"]  # blob key -> (entry, where it lives: row id or "")
# blob key -> (the row holding its entry, or "" for a blob record; the rows of its delta chain, in order)
Held = dict[str, tuple[str, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Known:
    """A list channel's version as stored: its serialized items, their count, the chain below it, where
    it lives (a checkpoint row's id, or "" for a blob record) and where each chain entry lives."""

    version: Any
    body: bytes
    count: int
    chain: tuple[str, ...]
    home: str = ""
    places: tuple[str, ...] = ()


def _array(data: bytes) -> tuple[int, int] | None:
    """(item count, header length) of a msgpack array, or None."""
    if not data:
        return None
    first = data[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F, 1
    if first == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    if first == 0xDD and len(data) >= 5:
        return int.from_bytes(data[1:5], "big"), 5
    return None


def _header(count: int) -> bytes:
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _newer(a: Any, b: Any) -> bool:
    try:
        return bool(a > b)
    except TypeError:
        return False


class Channels:
    """Encode a checkpoint's new channel versions into blob records and decode them back."""

    def __init__(self, packer: Packer, memory: int = _MEMORY) -> None:
        self.packer = packer
        self.memory = memory
        self._known: OrderedDict[tuple[str, str], Known] = OrderedDict()  # (blob namespace, channel)
        self._size = 0
        self._lock = threading.Lock()

    # ---- write ----------------------------------------------------------------------------------

    def encode(
        self, serde: Any, namespace: str, values: Mapping[str, Any], versions: Mapping[str, Any], home: str
    ) -> tuple[dict[str, Entry], list[tuple[tuple[str, str], Known]], dict[str, tuple[str, ...]]]:
        """Entries for `values[ch]` at `versions[ch]` (channels without a value get none), to live in the
        row `home`; what to remember once they are committed (`learn`); the rows of each delta's chain."""
        entries: dict[str, Entry] = {}
        learned: list[tuple[tuple[str, str], Known]] = []
        places: dict[str, tuple[str, ...]] = {}
        for channel, version in versions.items():
            if channel not in values:
                continue
            value = values[channel]
            key = blob_key(channel, version)
            type_, data = serde.dumps_typed(value)
            entry: Entry | None = None
            array = _array(data) if type(value) is list and type_ == "msgpack" else None
            if array is not None:
                count, start = array
                slot = (namespace, channel)
                with self._lock:
                    prev = self._known.get(slot)
                chain: tuple[str, ...] = ()
                where: tuple[str, ...] = ()
                if (
                    prev is not None
                    and len(prev.chain) < SNAPSHOT_EVERY
                    and count >= prev.count
                    and str(prev.version) != str(version)
                    and data.startswith(prev.body, start)
                ):
                    chain, where = (*prev.chain, str(prev.version)), (*prev.places, prev.home)
                    entry = Entry(type_, data[start + len(prev.body) :], chain, count)
                    places[key] = where
                learned.append((slot, Known(version, data[start:], count, chain, home, where)))
            entries[key] = entry or Entry(type_, data)
        return entries, learned, places

    def blob(self, project_id: str, namespace: str, key: str, entry: Entry) -> Record:
        """An entry as a blob record (packed and sealed for its place)."""
        where = location(project_id, namespace, key) if self.packer.cipher is not None else None
        stored, blob = self.packer.pack(entry.type, entry.data, where)
        meta: dict[str, Any] = {"t": stored}
        if entry.chain:
            meta.update(d=list(entry.chain), n=entry.count)
        return Record(project_id, namespace, key, blob, meta)

    def entry(self, record: Record) -> Entry:
        """A blob record's entry."""
        type_, data = self.packer.unpack(record.metadata["t"], record.value, location(*_place(record)))
        meta = record.metadata
        return Entry(type_, data, tuple(meta.get("d", ())), int(meta.get("n", 0)))

    def learn(self, learned: Iterable[tuple[tuple[str, str], Known]]) -> None:
        """Remember committed list versions as the base of the next deltas (least recent evicted)."""
        with self._lock:
            for slot, known in learned:
                old = self._known.pop(slot, None)
                if old is not None:
                    self._size -= len(old.body)
                    if _newer(old.version, known.version):
                        known = old
                self._known[slot] = known
                self._size += len(known.body)
            while self._size > self.memory and self._known:
                _, dropped = self._known.popitem(last=False)
                self._size -= len(dropped.body)

    def forget(self, *thread_ids: str) -> None:
        """Drop what is remembered of threads (their blobs were deleted or pruned): one pass for all."""
        prefixes = {thread_prefix(BLOBS, t) for t in thread_ids}
        with self._lock:
            for slot in [s for s in self._known if _thread_of(s[0]) in prefixes]:
                self._size -= len(self._known.pop(slot).body)

    # ---- read -----------------------------------------------------------------------------------

    def decode(self, serde: Any, namespace: str, versions: Mapping[str, Any], lookup: Lookup) -> dict[str, Any]:
        """The channel values of a checkpoint with these `versions`, from its entries and their chains
        (`lookup` finds each by blob key; a version without an entry has no value)."""
        values: dict[str, Any] = {}
        learned = []
        for channel, version in versions.items():
            found = lookup(blob_key(channel, version))
            if found is None:
                continue
            entry, home = found
            chain, data = entry.chain, entry.data
            places: tuple[str, ...] = ()
            if chain:
                parts = [self._part(namespace, channel, v, lookup, first=i == 0) for i, v in enumerate(chain)]
                places = tuple(p[1] for p in parts)
                count, body = entry.count, b"".join((*(p[0] for p in parts), data))
                data = _header(count) + body
            elif entry.type == "msgpack" and (array := _array(data)) is not None:
                count, body = array[0], data[array[1] :]
            else:
                values[channel] = serde.loads_typed((entry.type, data))
                continue
            values[channel] = serde.loads_typed((entry.type, data))
            if type(values[channel]) is list:
                learned.append(((namespace, channel), Known(version, body, count, chain, home, places)))
        if learned:
            self.learn(learned)
        return values

    def _part(self, namespace: str, channel: str, version: str, lookup: Lookup, first: bool) -> tuple[bytes, str]:
        """The serialized items one entry of a delta chain adds (the first: a snapshot's items), and where
        it lives."""
        found = lookup(blob_key(channel, version))
        if found is None:
            raise StorageError(
                f"checkpoint data under {namespace!r} is incomplete: channel {channel!r} version {version} is missing"
            )
        entry, home = found
        if first:
            array = _array(entry.data)
            if array is None or entry.chain:
                raise StorageError(f"channel {channel!r} version {version} under {namespace!r} is no list snapshot")
            return entry.data[array[1] :], home
        return entry.data, home


def _place(record: Record) -> tuple[str, str, str]:
    return record.project_id, record.namespace, record.key


def _thread_of(namespace: str) -> str:
    """ "lgb/<thread>/" of a blob namespace "lgb/<thread>/<ns>" (the thread part holds no "/")."""
    return namespace[: namespace.index("/", len(BLOBS)) + 1] if "/" in namespace[len(BLOBS) :] else namespace
