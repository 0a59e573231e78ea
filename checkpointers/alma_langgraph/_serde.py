"""The saver's serializer: typed state comes back as its types, with no pickle and no imports on load.

LangGraph's `JsonPlusSerializer` writes a pydantic model, dataclass or Enum as (module, class name,
fields). On load, `AlmaSerializer` rebuilds it only when one of these holds:

- the type is one of LangGraph's safe types (datetimes, UUIDs, messages, `Send`, ...);
- the type was registered: `register(MyState)`, or by LangGraph itself (a compiled graph registers
  its state schema's types with `with_msgpack_allowlist`);
- `strict=False` (the default) and the class is a pydantic model, a dataclass or an Enum whose module
  is **already imported** in this process (a graph that defines or imports its state types has them).

Anything else comes back as its plain fields (a dict, or the Enum's value), exactly as in LangGraph's
strict mode. Loading never imports a module and never unpickles, so bytes read from the store cannot
pull in code that the process did not already load. `strict=True` (or the environment variable
`ALMA_STRICT_SERDE=true`) keeps only the safe and registered types.

`Packer` adds zstd compression (extra `zstd`) of blobs above a size threshold and, opt-in, AES-GCM
encryption bound to where each blob lives (see `_crypto`).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_TYPES
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer, _create_msgpack_ext_hook

from alma_core import EncryptionError, MissingDependency

from ._crypto import ENV, KeyRing, sealed_key_id

__all__ = ["COMPRESS_ABOVE", "AlmaSerializer", "Packer", "safe_serializer"]


def _strict_from_env() -> bool:
    return os.getenv("ALMA_STRICT_SERDE", "false").lower() in ("1", "true", "yes")


def _revivable(cls: Any) -> bool:
    """A pydantic model, a dataclass or an Enum: rebuilt from its fields, nothing else runs."""
    if not isinstance(cls, type):
        return False
    if issubclass(cls, enum.Enum) or dataclasses.is_dataclass(cls):
        return True
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


class _Allowed:
    """The allow-list LangGraph's ext hook consults (`key in allowed`), answering with our rule."""

    def __init__(self, registered: frozenset[tuple[str, ...]], strict: bool) -> None:
        self.registered, self.strict = registered, strict

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        if key in self.registered or key in SAFE_MSGPACK_TYPES:
            return True
        if self.strict:
            return False
        module = sys.modules.get(str(key[0]))  # never imported here: only what the process has
        return module is not None and _revivable(getattr(module, str(key[1]), None))


class AlmaSerializer(JsonPlusSerializer):
    """`JsonPlusSerializer` without pickle, reviving typed state by the module docstring's rule."""

    def __init__(self, *, strict: bool | None = None, types: Iterable[type | tuple[str, str]] = ()) -> None:
        super().__init__(pickle_fallback=False, allowed_json_modules=None, allowed_msgpack_modules=None)
        self.strict = _strict_from_env() if strict is None else strict
        self._registered: frozenset[tuple[str, ...]] = frozenset()
        self._install(types)

    def _install(self, types: Iterable[type | tuple[str, str]]) -> None:
        keys = {(t.__module__, t.__name__) if isinstance(t, type) else tuple(t) for t in types}
        self._registered = self._registered | frozenset(keys)
        self._unpack_ext_hook = _create_msgpack_ext_hook(_Allowed(self._registered, self.strict))  # type: ignore[arg-type]

    def register(self, *types: type | tuple[str, str]) -> AlmaSerializer:
        """Always revive these types (strict mode included). Returns self."""
        self._install(types)
        return self

    def with_msgpack_allowlist(self, extra_allowlist: Iterable[tuple[str, ...] | type]) -> AlmaSerializer:
        """What LangGraph calls with a compiled graph's state types: a copy that also revives them."""
        clone = copy.copy(self)
        clone._install(extra_allowlist)  # type: ignore[arg-type]
        return clone


def safe_serializer(*, strict: bool | None = None) -> AlmaSerializer:
    """The saver's default serializer (see the module docstring)."""
    return AlmaSerializer(strict=strict)


# ---- compression ---------------------------------------------------------------------------------

ZSTD = "+zstd"  # suffix of the stored serde type of a compressed blob
COMPRESS_ABOVE = 4096  # bytes: smaller blobs gain little and cost a call


class Packer:
    """Serialize with a serde (the saver's, which LangGraph may swap) and zstd-compress blobs above
    `compress_above` bytes (None: never). The stored type says which blobs are compressed, so a store
    mixes both and any setting reads it. With a `cipher` (a `KeyRing`), every blob is then sealed with
    AES-GCM; `aad` (where the blob lives, see `_crypto`) is then required and bound to it."""

    def __init__(self, compress_above: int | str | None = "auto", cipher: KeyRing | None = None) -> None:
        if compress_above == "auto":
            compress_above = COMPRESS_ABOVE if _zstd(required=False) is not None else None
        elif compress_above is not None:
            _zstd(required=True)
        self.compress_above: int | None = compress_above  # type: ignore[assignment]
        self.cipher = cipher
        self._local = threading.local()

    def dumps(self, serde: Any, obj: Any, aad: bytes | None = None) -> tuple[str, bytes]:
        type_, blob = serde.dumps_typed(obj)
        return self.pack(type_, blob, aad)

    def loads(self, serde: Any, type_: str, blob: bytes | None, aad: bytes | None = None) -> Any:
        return serde.loads_typed(self.unpack(type_, blob, aad))

    def pack(self, type_: str, blob: bytes, aad: bytes | None = None) -> tuple[str, bytes]:
        """Serialized bytes as stored: compressed above the threshold, then sealed for `aad`."""
        if self.compress_above is not None and len(blob) > self.compress_above:
            type_, blob = type_ + ZSTD, self._codec("c", lambda z: z.ZstdCompressor(level=1)).compress(blob)
        return type_, self.seal(type_, blob, aad)

    def unpack(self, type_: str, blob: bytes | None, aad: bytes | None = None) -> tuple[str, bytes]:
        """The serde type and serialized bytes of a stored blob (the inverse of `pack`)."""
        blob = self.unseal(type_, blob, aad)
        if type_.endswith(ZSTD):  # (the codec, made on first use, raises MissingDependency without zstandard)
            return type_[: -len(ZSTD)], self._codec("d", lambda z: z.ZstdDecompressor()).decompress(blob or b"")
        return type_, blob or b""

    def seal(self, type_: str, blob: bytes, aad: bytes | None) -> bytes:
        """`blob` encrypted for the place `aad` names (unchanged without a cipher)."""
        if self.cipher is None:
            return blob
        return self.cipher.seal(blob or b"", _bind(type_, aad))

    def unseal(self, type_: str, blob: bytes | None, aad: bytes | None) -> bytes:
        """A stored blob opened for the place `aad` names; `EncryptionError` when it does not open there,
        and for a sealed blob without a cipher."""
        if self.cipher is None:
            if sealed_key_id(blob) is not None:
                raise EncryptionError(f"an encrypted blob and no key ring: set ${ENV} or pass encryption=")
            return blob or b""
        return self.cipher.open(blob or b"", _bind(type_, aad), where=(aad or b"").decode(errors="replace"))

    def _codec(self, kind: str, make: Any) -> Any:
        codec = getattr(self._local, kind, None)  # zstd (de)compressors are not thread-safe: one per thread
        if codec is None:
            codec = make(_zstd(required=True))
            setattr(self._local, kind, codec)
        return codec


def _bind(type_: str, aad: bytes | None) -> bytes:
    if aad is None:
        raise ValueError("an encrypting Packer needs the blob's aad (where it is stored)")
    return aad + b"\x00" + type_.encode()


def _zstd(*, required: bool) -> Any:
    try:
        import zstandard
    except ImportError:
        if required:
            raise MissingDependency("zstandard", "zstd") from None
        return None
    return zstandard
