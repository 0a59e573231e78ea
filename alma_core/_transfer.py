"""Export and import: a project's memories and records as JSON lines.

One JSON object per line. A memory is its `to_dict()` (tagged with its type); a record of the record
space (learning evidence, checkpoints, artifacts, sessions, handoffs, work items, LangGraph threads) is
`{"type": "record", "namespace", "key", "value" (base64 or null), "metadata", "created_at", ...}`.

Export writes through a private temp file created exclusively (O_EXCL, O_NOFOLLOW, mode 0600, random
name) in the target's folder, then renames it over the target: a planted symlink is never followed and a
target that is not a regular file (symlink, FIFO, device, directory) is refused. Import streams the file
with a per-line size cap, validates every line at the edge, and writes all of it in one transaction, or
nothing: importing a file twice leaves the store as importing it once (memories and records are keyed).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from pydantic import ValidationError as _PydanticError

from ._checks import check_json, check_memory, first_error
from ._errors import AlmaError, StorageError, ValidationError
from ._models import Memory, memory_from_dict
from .storage._base import FindMemories, ListRecords, Record

if TYPE_CHECKING:
    from ._alma import ALMA

__all__ = ["MAX_LINE_BYTES", "export_project", "import_project"]

MAX_LINE_BYTES = 32 * 1024 * 1024  # one line of an import file (a memory is at most ~100 KB; checkpoints more)
MAX_STAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z: a record stamp past it cannot be read back as a datetime
RECORD = "record"
_SKIP_NAMESPACES = ("alma/quarantine",)  # rows `alma repair` set aside stay with the store they came from


def _target(path: str | os.PathLike[str]) -> Path:
    """The export target, refused unless it is absent or a regular file."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValidationError("export needs a file path, got an empty one" if path == "" else f"bad path {path!r}")
    target = Path(path)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise ValidationError(f"{target}: cannot export there: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise ValidationError(f"{target} is {kind}; export writes a regular file only (remove it or pick another path)")
    return target


_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _private_file(folder: Path, name: str) -> tuple[int, Path]:
    """A new file only we can open, with a random name in `folder` (never an existing path or a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):
        tmp = folder / f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise StorageError(f"{folder}: cannot create a private temp file")


def _lines(alma: ALMA, with_embeddings: bool) -> Iterator[tuple[bool, str]]:
    """(is_memory, JSON line) for every memory and record of the project."""
    every = FindMemories(alma.context.filter(), descending=False, with_embeddings=with_embeddings)
    memories = alma.storage.execute(every)
    for memory in memories:
        yield True, json.dumps(memory.to_dict(with_embedding=with_embeddings), ensure_ascii=False)
    records = alma.storage.execute(ListRecords(alma.project_id, "", prefix=True, descending=False))
    for r in records:
        if r.namespace.startswith(_SKIP_NAMESPACES):
            continue
        value = None if r.value is None else base64.b64encode(r.value).decode("ascii")
        line = {"type": RECORD, "namespace": r.namespace, "key": r.key, "value": value, "metadata": r.metadata,
                "created_at": r.created_at, "updated_at": r.updated_at, "expires_at": r.expires_at}  # fmt: skip
        yield False, json.dumps(line, ensure_ascii=False, default=str)


def export_project(alma: ALMA, path: str | os.PathLike[str], with_embeddings: bool) -> int:
    """Write the project's memories and records to `path` (see the module docstring); returns how many
    memories."""
    target = _target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"{target}: cannot create its folder: {exc.strerror}") from None
    fd, tmp = _private_file(target.parent, target.name)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for is_memory, line in _lines(alma, with_embeddings):
                fh.write(line + "\n")
                count += is_memory
            fh.flush()
            os.fsync(fh.fileno())
        _target(target)  # still absent or a regular file: never rename over something planted meanwhile
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError(f"{target}: cannot write the export: {exc.strerror or exc}") from None
        raise
    return count


# ---- import ---------------------------------------------------------------------------------------


def _read_lines(fh: BinaryIO, source: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line; a line over `MAX_LINE_BYTES` or not UTF-8 is an error."""
    number = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ValidationError(f"{source}:{number}: a line longer than {MAX_LINE_BYTES} bytes; not an ALMA export")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{source}:{number}: not UTF-8 (byte {exc.start}); not an ALMA export") from None
        if text.strip():
            yield number, text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse(alma: ALMA, data: Any) -> Memory | Record:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("type") == RECORD:
        return _parse_record(alma, data)
    data["project_id"] = alma.project_id
    embedding = data.get("embedding")
    memory = memory_from_dict(data)
    check_memory(memory)
    if embedding is not None:
        vector = memory.embedding
        if vector is None or vector.ndim != 1 or not np.isfinite(vector).all():
            raise ValueError("embedding must be a list of finite numbers")
    return memory


def _parse_record(alma: ALMA, data: dict[str, Any]) -> Record:
    namespace, key, value, metadata = (data.get(k) for k in ("namespace", "key", "value", "metadata"))
    if not isinstance(namespace, str) or not isinstance(key, str) or not key:
        raise ValueError("a record needs a string namespace and a non-empty string key")
    if not isinstance(metadata, dict):
        raise ValueError("a record's metadata must be an object")
    check_json("record", {"namespace": namespace, "key": key, "metadata": metadata})
    if value is not None:
        if not isinstance(value, str):
            raise ValueError("a record's value must be base64 text or null")
        value = base64.b64decode(value, validate=True)
    stamps = []
    for name in ("created_at", "updated_at", "expires_at"):
        stamp = data.get(name)
        if stamp is not None and (isinstance(stamp, bool) or not isinstance(stamp, int | float)):
            raise ValueError(f"a record's {name} must be a number")
        if stamp is not None and not 0 <= stamp <= MAX_STAMP:  # also -1e999 (-inf), which JSON parses
            raise ValueError(f"a record's {name} must be epoch seconds in 0..{MAX_STAMP:.0f}, got {stamp!r}")
        stamps.append(None if stamp is None else float(stamp))
    created, updated, expires = stamps
    return Record(alma.project_id, namespace, key, value, metadata, 0, created or 0.0, updated or 0.0, expires)


def import_project(alma: ALMA, path: str | os.PathLike[str]) -> int:
    """Load an export into `alma`'s project: all lines or none. Returns how many distinct memories it
    stored (a repeated id counts once; its last line wins)."""
    source = os.fspath(path) if isinstance(path, str | os.PathLike) else repr(path)
    memories: dict[str, Memory] = {}
    records: dict[tuple[str, str], Record] = {}
    try:
        with open(path, "rb") as fh:
            for number, line in _read_lines(fh, source):
                try:
                    item = _parse(alma, json.loads(line, parse_constant=_no_constant))
                except AlmaError as exc:
                    raise ValidationError(f"{source}:{number}: {exc}") from None
                except _PydanticError as exc:
                    where, msg = first_error(exc)
                    raise ValidationError(f"{source}:{number}: not an ALMA export line: {where}: {msg}") from None
                except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
                    why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
                    raise ValidationError(f"{source}:{number}: not an ALMA export line: {why}") from None
                if isinstance(item, Record):
                    records[(item.namespace, item.key)] = item
                else:
                    memories.pop(item.id, None)  # a repeated id: the last line wins, counted once
                    memories[item.id] = item
    except OSError as exc:
        raise ValidationError(f"{source}: cannot read: {exc.strerror or exc}") from None
    for memory in memories.values():
        if memory.agent != "*":
            alma.scopes.check_agent(memory.agent)
    if memories or records:
        alma._store(list(memories.values()), records=list(records.values()))
    return len(memories)
