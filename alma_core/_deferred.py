"""What the `ALMA` facade (`_alma.py`, `_workflow_api.py`) uses at run time, imported on its first use.

These modules pull in pydantic, numpy and the storage backends (most of a cold start). The facade modules
import them only under TYPE_CHECKING and bind them at the first `ALMA(...)` (`alma_core._lazy.bind`), so
`from alma_core import ALMA` stays cheap (docs/performance.md). A facade module that needs another heavy
name adds it here, not at its top (tests/core/test_core_startup.py checks that).
"""

from __future__ import annotations

from pydantic import ValidationError as _PydanticError

from ._cache import RetrievalCache, copy_slice, freeze_slice
from ._checks import (
    as_utc,
    build_model,
    check_count,
    check_days,
    check_memory,
    check_number,
    check_optional_text,
    check_text,
    first_error,
    parse_success,
)
from ._checks import memory_types as check_memory_types
from ._config import AgentConfig, AlmaConfig, load_config
from ._context import AlmaContext
from ._erasure import UserErasure, erase_user
from ._forgetting import Forgetting
from ._learning import Learner
from ._models import (
    AGENT_TYPES,
    TYPE_FIELDS,
    AntiPattern,
    DomainKnowledge,
    Memory,
    MemoryStats,
    MemoryType,
    Outcome,
    UserPreference,
    memory_from_dict,
    utcnow,
)
from ._plans import WRITE, After, Compute, Generation, run
from ._repair import repair_project
from ._retrieval import Retriever
from ._scopes import ScopePolicy
from ._slice import MemorySlice
from ._transfer import export_project, import_project
from .embeddings import Embedder, make_embedder
from .events import EventEmitter, MemoryEvent, MemoryEventType, get_emitter
from .storage import open_storage
from .storage._base import (
    SYSTEM_PROJECT,
    BaseStorage,
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    FindMemories,
    GetRecord,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    Record,
    Transaction,
)
from .workflow._checkpoints import CheckpointStore, entries_of
from .workflow._models import Artifact, ArtifactType, Checkpoint, RetrievalScope, check_workflow_id
from .workflow._sources import checkpoint_sources
from .workflow.reducers import Reducer, reduce_states

__all__ = [
    "AGENT_TYPES",
    "SYSTEM_PROJECT",
    "TYPE_FIELDS",
    "WRITE",
    "After",
    "AgentConfig",
    "AlmaConfig",
    "AlmaContext",
    "AntiPattern",
    "Artifact",
    "ArtifactType",
    "BaseStorage",
    "Checkpoint",
    "CheckpointStore",
    "Compute",
    "CountMemories",
    "DeleteMemories",
    "DeleteRecords",
    "DomainKnowledge",
    "Embedder",
    "EventEmitter",
    "FindMemories",
    "Forgetting",
    "Generation",
    "GetRecord",
    "Learner",
    "ListRecords",
    "Memory",
    "MemoryEvent",
    "MemoryEventType",
    "MemoryFilter",
    "MemorySlice",
    "MemoryStats",
    "MemoryType",
    "Outcome",
    "PutMemories",
    "PutRecord",
    "Record",
    "Reducer",
    "RetrievalCache",
    "RetrievalScope",
    "Retriever",
    "ScopePolicy",
    "Transaction",
    "UserErasure",
    "UserPreference",
    "_PydanticError",
    "as_utc",
    "build_model",
    "check_count",
    "check_days",
    "check_memory",
    "check_memory_types",
    "check_number",
    "check_optional_text",
    "check_text",
    "check_workflow_id",
    "checkpoint_sources",
    "copy_slice",
    "entries_of",
    "erase_user",
    "export_project",
    "first_error",
    "freeze_slice",
    "get_emitter",
    "import_project",
    "load_config",
    "make_embedder",
    "memory_from_dict",
    "open_storage",
    "parse_success",
    "reduce_states",
    "repair_project",
    "run",
    "utcnow",
]
