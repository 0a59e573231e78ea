"""`saver.rotate_keys()` / `alma checkpoints rekey`: re-seal every blob under the key ring's newest key.

Run after putting a new key first in the ring (see `_crypto`); afterwards the old key can go. Rows
written before encryption was turned on are encrypted by the same pass. Each chunk of namespaces is
read and rewritten in one write transaction, so a concurrent put or a second rekey never sees a
half-rewritten row, and a rekey stopped half-way can simply run again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from alma_core import ConfigError
from alma_core.storage import ListNamespaces, ListRecords, Op, PutRecord, Record

from ._crypto import location, sealed_key_id
from ._layout import BLOBS, CHECKPOINTS, META, WRITES, Plan, run

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["SEALED_SPACES", "rotate_keys"]

SEALED_SPACES = (CHECKPOINTS, WRITES, BLOBS)  # every namespace prefix whose records hold sealed blobs
_CHUNK = 200  # namespaces per write transaction


def rotate_keys(saver: AlmaSaver) -> int:
    """Re-seal every blob not sealed under the newest key (plaintext ones included); returns how many."""
    if saver.packer.cipher is None:
        raise ConfigError("rotate_keys needs encryption on: pass encryption= or set ALMA_CHECKPOINT_KEYS")
    count = 0
    for space in SEALED_SPACES:
        namespaces = saver.storage.execute(ListNamespaces(saver.project_id, space))
        for start in range(0, len(namespaces), _CHUNK):
            count += run(saver.storage, _reseal(saver, namespaces[start : start + _CHUNK]), write=True)
    return count


def _reseal(saver: AlmaSaver, namespaces: list[str]) -> Plan[int]:
    packer, current = saver.packer, saver.packer.cipher.current if saver.packer.cipher else ""
    found: list[list[Record]] = yield [ListRecords(saver.project_id, ns) for ns in namespaces]
    ops: list[Op] = []
    for r in (r for records in found for r in records):
        key_id = sealed_key_id(r.value)
        if key_id == current:
            continue
        type_ = r.metadata[META]["type"] if META in r.metadata else str(r.metadata.get("type", r.metadata.get("t")))
        where = location(r.project_id, r.namespace, r.key)
        plain = packer.unseal(type_, r.value, where) if key_id is not None else (r.value or b"")
        ops.append(PutRecord(replace(r, value=packer.seal(type_, plain, where))))
    if ops:
        yield ops
    return len(ops)
