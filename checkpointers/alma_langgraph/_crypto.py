"""Encryption at rest for the saver's blobs: AES-GCM under a key ring (extra `encryption`).

A sealed blob is `MAGIC | len(key id) | key id | 12-byte nonce | ciphertext and tag`. Its associated
data is where the blob lives (project, namespace and key of its record, which name the thread, the
checkpoint namespace and the checkpoint id, or the write's task and index) plus its serde type, so a
blob copied to another row, or a row whose type was edited, fails to open. Everything fails closed
with `EncryptionError`: a tampered or moved blob, a plaintext blob while encryption is on, a sealed
blob without a key ring, or a key id the ring does not hold.

The key ring is ordered, newest first: new blobs are sealed under the first key, and any key of the
ring opens the blobs sealed under it. Rotation: put the new key first, run `saver.rotate_keys()` (or
`alma checkpoints rekey`), then drop the old key. From the environment:

    ALMA_CHECKPOINT_KEYS="k2:<base64 key>,k1:<base64 key>"     # 16, 24 or 32 bytes each (AES-128/192/256)

Only blobs are encrypted (checkpoint values and writes); checkpoint metadata stays readable so `list`
can filter on it, as with LangGraph's `EncryptedSerializer`.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from typing import Any

from alma_core import ConfigError, EncryptionError, MissingDependency

__all__ = ["ENV", "MAGIC", "KeyRing", "generate_key", "key_ring", "location", "sealed_key_id"]

ENV = "ALMA_CHECKPOINT_KEYS"
MAGIC = b"\x00AE1"  # never the start of a msgpack or JSON blob LangGraph writes
_NONCE = 12


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise MissingDependency("cryptography", "encryption") from None
    return AESGCM


def location(project_id: str, namespace: str, key: str) -> bytes:
    """The associated data that binds a blob to its record: project, namespace (thread, checkpoint
    namespace and, for writes, checkpoint id) and key (checkpoint id, or the write's task and index)."""
    return f"{project_id}\x00{namespace}\x00{key}".encode()


def generate_key() -> str:
    """A new random AES-256 key, base64-encoded (for `ALMA_CHECKPOINT_KEYS`)."""
    return base64.b64encode(os.urandom(32)).decode()


class KeyRing:
    """AES-GCM keys by id, the first one current. `seal` / `open` bind a blob to its associated data."""

    def __init__(self, keys: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]]) -> None:
        items = list(keys.items() if isinstance(keys, Mapping) else keys)
        if not items:
            raise ConfigError("an encryption key ring needs at least one key")
        aesgcm = _aesgcm()
        self._ciphers: dict[str, Any] = {}
        for key_id, key in items:
            if not key_id or len(key_id.encode()) > 255 or any(c in key_id for c in ",:"):
                raise ConfigError(f"bad key id {key_id!r}: 1-255 bytes without ',' or ':'")
            raw = _decode(key_id, key)
            if len(raw) not in (16, 24, 32):
                raise ConfigError(f"key {key_id!r} is {len(raw)} bytes; AES-GCM takes 16, 24 or 32")
            if key_id in self._ciphers:
                raise ConfigError(f"key id {key_id!r} appears twice in the key ring")
            self._ciphers[key_id] = aesgcm(raw)
        self.current = items[0][0]
        self._prefix = MAGIC + bytes([len(self.current.encode())]) + self.current.encode()

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """From `"id:base64key,id2:base64key"` (the `ALMA_CHECKPOINT_KEYS` format), newest first."""
        pairs = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            key_id, sep, key = part.partition(":")
            if not sep:
                raise ConfigError(f"{ENV}: each entry is id:base64key, got {part[:20]!r}...")
            pairs.append((key_id.strip(), key.strip()))
        return cls(pairs)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return self._prefix + nonce + self._ciphers[self.current].encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes, where: str) -> bytes:
        key_id = sealed_key_id(blob)
        if key_id is None:
            raise EncryptionError(
                f"plaintext blob at {where} while encryption is on: run `alma checkpoints rekey` to encrypt "
                "the rows written before encryption was turned on"
            )
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptionError(f"blob at {where} is sealed under key {key_id!r}, which the key ring ({ENV}) lacks")
        start = len(MAGIC) + 1 + len(key_id.encode())
        nonce, body = blob[start : start + _NONCE], blob[start + _NONCE :]
        from cryptography.exceptions import InvalidTag

        try:
            return bytes(cipher.decrypt(nonce, body, aad))
        except InvalidTag as exc:  # the wrong place, edited bytes or type, or another key under this id
            raise EncryptionError(
                f"blob at {where} does not authenticate: tampered with, moved from another row, or sealed "
                "under a different key with the same id"
            ) from exc


def sealed_key_id(blob: bytes | None) -> str | None:
    """The key id of a sealed blob, None for a plaintext one."""
    if not blob or not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 1:
        return None
    size = blob[len(MAGIC)]
    try:
        return blob[len(MAGIC) + 1 : len(MAGIC) + 1 + size].decode()
    except UnicodeDecodeError:
        return None


def key_ring(spec: KeyRing | str | Mapping[str, bytes | str] | bool | None) -> KeyRing | None:
    """The saver's `encryption=` argument as a key ring: a `KeyRing`, an `"id:base64,..."` string or a
    `{id: key}` mapping (newest first), True (from `ALMA_CHECKPOINT_KEYS`, which must be set), False (off),
    or None (from `ALMA_CHECKPOINT_KEYS` when it is set, else off)."""
    if spec is None or spec is True:
        text = os.environ.get(ENV, "").strip()
        if not text:
            if spec is True:
                raise ConfigError(f"encryption=True needs keys in ${ENV} (id:base64key, newest first)")
            return None
        return KeyRing.parse(text)
    if spec is False:
        return None
    if isinstance(spec, KeyRing):
        return spec
    if isinstance(spec, str):
        return KeyRing.parse(spec)
    return KeyRing(spec)


def _decode(key_id: str, key: bytes | str) -> bytes:
    if isinstance(key, bytes):
        return key
    try:
        return base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"key {key_id!r} is not valid base64") from None
