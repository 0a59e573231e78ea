"""The workflow layer: checkpoints, reducers, artifacts and the allow-list serializer.

`ALMA.checkpoint` / `resume` / `merge_states` / `link_artifact` / `retrieve_scoped` use these; the
reducers are plain binary functions, usable as LangGraph channel reducers too.
"""

from __future__ import annotations

from . import reducers
from ._checkpoints import checkpoints_ns
from ._models import Artifact, ArtifactType, Checkpoint, RetrievalScope
from ._serde import Serializer, dumps, loads
from ._sources import CheckpointSource, register_checkpoint_source
from .reducers import PriorityAgent, latest_wins, merge_lists, priority_agent

__all__ = [
    "Artifact",
    "ArtifactType",
    "Checkpoint",
    "CheckpointSource",
    "PriorityAgent",
    "RetrievalScope",
    "Serializer",
    "checkpoints_ns",
    "dumps",
    "latest_wins",
    "loads",
    "merge_lists",
    "priority_agent",
    "reducers",
    "register_checkpoint_source",
]
