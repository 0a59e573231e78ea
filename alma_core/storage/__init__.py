"""Storage backends and the protocol they implement (see `alma_core.storage._base`)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._base import (
    BaseStorage,
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    FindMemories,
    GetRecord,
    Head,
    Linked,
    ListLinked,
    ListNamespaces,
    ListRecords,
    MemoryFilter,
    Op,
    PutMemories,
    PutRecord,
    PutRecords,
    Record,
    SearchHits,
    SearchMemories,
    SearchRecords,
    Storage,
    StoreVersion,
    Transaction,
    WriteIf,
    expand_linked,
    expand_write_if,
)
from ._record_search import encode_vector
from ._record_search import matches as matches_filter
from .sqlite import SQLiteStorage

__all__ = [
    "BaseStorage",
    "ChromaStorage",
    "CountMemories",
    "DeleteMemories",
    "DeleteRecords",
    "FindMemories",
    "GetRecord",
    "Head",
    "Linked",
    "ListLinked",
    "ListNamespaces",
    "ListRecords",
    "MemoryFilter",
    "Op",
    "PostgresStorage",
    "PutMemories",
    "PutRecord",
    "PutRecords",
    "Record",
    "SQLiteStorage",
    "SearchHits",
    "SearchMemories",
    "SearchRecords",
    "Storage",
    "StoreVersion",
    "Transaction",
    "WriteIf",
    "encode_vector",
    "expand_linked",
    "expand_write_if",
    "matches_filter",
    "open_storage",
]


def __getattr__(name: str) -> Any:
    """`PostgresStorage` and `ChromaStorage` load on first use (their drivers are optional extras)."""
    if name == "PostgresStorage":
        from .postgres import PostgresStorage

        return PostgresStorage
    if name == "ChromaStorage":
        from .chroma import ChromaStorage

        return ChromaStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(spec: Any) -> BaseStorage:
    """A storage object from a path (SQLite file or ":memory:"), an open `sqlite3.Connection`, a
    `postgresql://` URI, an `AlmaConfig` (`storage: sqlite | postgres | chroma`), or a storage object."""
    from .._config import AlmaConfig

    if isinstance(spec, BaseStorage):
        return spec
    if isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStorage

        return PostgresStorage(spec)
    if isinstance(spec, (str, os.PathLike, sqlite3.Connection)):
        return SQLiteStorage(spec)
    if isinstance(spec, AlmaConfig):
        if spec.storage == "postgres":
            from .postgres import PostgresStorage

            return PostgresStorage(spec.postgres)
        if spec.storage == "chroma":
            from .chroma import ChromaStorage

            return ChromaStorage(spec.chroma.path or Path(spec.storage_dir) / "chroma", config=spec.chroma)
        return SQLiteStorage(spec.db_path)
    raise ConfigError(f"storage must be a path or a storage object, got {type(spec).__name__}")
