"""The int8 MiniLM as built at load, kept on disk: built once per machine, read back by every later load.

Building the int8 model is a pure function of the weights and of this code: a float32 session run over
`CALIBRATION` sets the smoothing scales and split channels, then each product is quantized. That was ~60% of the
model's load (~260 of ~430 ms of CPU on a quiet core, docs/performance.md "Session 8"). The cache holds what it
produces, the graph's bytes and every array the graph names (the int8 weights, their scales, biases, ...: ~12 MB),
in one safetensors-layout file in the user's cache directory (`cache_dir()`):

- **keyed** by `int8_key`: the sha256 of every input of that function (each tensor of the weights file but the
  word-embedding table, the calibration texts' token ids and their rows of that table, the model's shape) and of
  this code (our modules' files, alma_core's, onnxruntime's and numpy's versions, the machine): ~35 ms of CPU on
  44 MB, on a thread while the tokenizer loads;
- **written atomically**: a temporary file in the same directory, renamed over the entry (a reader sees the old
  file or the new one, never part of one);
- **validated on read**: its format and full key, every tensor within the file and the file's size, a CRC-32 of
  its data; a session that will not start from it is built afresh;
- **silent on any error**: no cache directory, a read-only disk, a corrupt or foreign file: the model is built as
  without a cache, and nothing is raised.

`ALMA_CACHE_DIR` moves the directory; `ALMA_CACHE_DIR=off` turns the cache off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import mmap
import os
import platform
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ._minilm import _map_safetensors, safetensors_header

FORMAT = "alma-minilm-int8/1"
ENV = "ALMA_CACHE_DIR"
KEEP = 4
"""Entries kept in the directory (the newest): one per weights file, code and runtime version in use."""
_PREFIX, _SUFFIX = "minilm-int8-", ".safetensors"
_ALIGN = 64
_CODES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64",
          np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8"}  # fmt: skip
_MODULES = ("alma_core", "alma_core._minilm", "alma_core._minilm_onnx", "alma_core._minilm_int8", __name__)
WORD = "embeddings.word_embeddings.weight"


def cache_dir() -> Path | None:
    """Where the built model is kept: `ALMA_CACHE_DIR` if set ("off" or empty: nowhere), else the user's cache
    directory (`$XDG_CACHE_HOME` or ~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows) +
    "alma"; None where there is none."""
    setting = os.environ.get(ENV)
    if setting is not None:
        return None if setting.strip().lower() in ("", "off", "0", "none") else Path(setting).expanduser()
    try:
        if sys.platform == "win32":
            base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        elif sys.platform == "darwin":
            base = Path.home() / "Library" / "Caches"
        else:
            xdg = os.environ.get("XDG_CACHE_HOME", "")
            base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    except RuntimeError:  # no home directory
        return None
    return base / "alma"


@functools.cache
def _code() -> bytes:
    """What else the built model depends on: our modules' files (any edit changes the key) and the versions."""
    import onnxruntime

    digest = hashlib.sha256()
    for name in _MODULES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        digest.update(Path(path).read_bytes() if path else name.encode())
    versions = [FORMAT, getattr(sys.modules.get("alma_core"), "__version__", ""), onnxruntime.__version__,
                np.__version__, platform.machine()]  # fmt: skip
    return digest.digest() + json.dumps(versions).encode()


def weights_digest(buf: mmap.mmap) -> bytes:
    """The sha256 of a mapped safetensors file but its word-embedding table's bytes: its header (every tensor's
    name, type, shape and place) and every other tensor's data. Two updates: `hashlib` lets go of the GIL for
    each, so it runs beside the tokenizer's load on another core."""
    header, start = safetensors_header(buf)
    (begin, end,) = next(v["data_offsets"] for k, v in header.items() if k.removeprefix("bert.") == WORD)  # fmt: skip
    digest = hashlib.sha256()
    with memoryview(buf) as view:
        digest.update(view[: start + begin])
        digest.update(view[start + end :])
    return digest.digest()


def int8_key(weights: bytes, ids: np.ndarray, rows: np.ndarray, config: tuple[object, ...]) -> str:
    """The key of the int8 model built from weights of digest `weights` (`weights_digest`), with the calibration's
    token `ids` and their `rows` of the word-embedding table (the only ones of it the build reads), the model's
    `config`, and this code."""
    digest = hashlib.sha256(_code() + weights)
    digest.update(json.dumps([list(map(str, config)), ids.shape, rows.dtype.str]).encode())
    digest.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(rows).tobytes())
    return digest.hexdigest()


def _path(directory: Path, key: str) -> Path:
    return directory / f"{_PREFIX}{key[:32]}{_SUFFIX}"


def load(key: str) -> tuple[bytes, dict[str, np.ndarray], mmap.mmap] | None:
    """The model's bytes, its arrays (read-only views of the mapped file) and the map, if a valid entry for `key`
    is there; None otherwise, whatever went wrong."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        buf, arrays = _map_safetensors(_path(directory, key))
        header, start = safetensors_header(buf)
        meta = header["__metadata__"]
        if meta["format"] != FORMAT or meta["key"] != key:
            return None
        end = max((t["data_offsets"][1] for n, t in header.items() if n != "__metadata__"), default=0)
        with memoryview(buf) as view:
            if start + end != len(buf) or zlib.crc32(view[start:]) != int(meta["crc32"]):
                return None
        return arrays.pop("__model__").tobytes(), arrays, buf
    except Exception:  # missing, unreadable, truncated, corrupt or foreign: build the model instead
        return None


def store(key: str, model: bytes, arrays: dict[str, np.ndarray]) -> None:
    """Keep the built model for `key` (nothing happens, and nothing is raised, where it cannot be written)."""
    directory = cache_dir()
    if directory is None:
        return
    with contextlib.suppress(Exception):
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"__model__": np.frombuffer(model, dtype=np.uint8), **arrays}
        entries, chunks, offset, crc = {}, [], 0, 0
        for name in sorted(tensors):
            array = np.ascontiguousarray(tensors[name])
            pad = -offset % _ALIGN
            data = b"\0" * pad + array.tobytes()
            chunks.append(data)
            crc = zlib.crc32(data, crc)
            offset += pad
            entries[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                             "data_offsets": [offset, offset + array.nbytes]}  # fmt: skip
            offset += array.nbytes
        entries["__metadata__"] = {"format": FORMAT, "key": key, "crc32": str(crc)}
        head = json.dumps(entries).encode()
        head += b" " * (-(8 + len(head)) % _ALIGN)  # the data, hence each array, starts aligned
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{_PREFIX}", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(len(head).to_bytes(8, "little") + head)
                fh.writelines(chunks)
            os.replace(tmp, _path(directory, key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(directory)


def _prune(directory: Path) -> None:
    """Remove all but the `KEEP` newest entries (each ~12 MB)."""
    entries = sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
