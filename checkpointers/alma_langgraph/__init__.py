"""ALMA for LangGraph: a drop-in checkpointer and Store on ALMA's storage, ALMA's reducers, memory nodes.

    from alma_langgraph import AlmaSaver
    graph = builder.compile(checkpointer=AlmaSaver(alma))

Thin adapters over `alma_core`'s public API (extra `langgraph`).
"""

from __future__ import annotations

from alma_core import MissingDependency, register_erasure_hook
from alma_core.workflow import register_checkpoint_source

try:
    import langgraph.checkpoint.base  # noqa: F401
except ImportError:
    raise MissingDependency("langgraph", "langgraph") from None

from ._crypto import KeyRing, generate_key
from ._import import import_checkpoints
from ._layout import erase_threads
from ._lessons import RunLessons
from ._native import LangGraphCheckpoints, state_values
from ._nodes import alma_learn_node, alma_retrieve_node
from ._reducers import OWNERS, GraphPriorityAgent, latest_wins, merge_lists, priority_agent
from ._saver import AlmaSaver, AsyncAlmaSaver
from ._serde import AlmaSerializer, safe_serializer
from ._store import MEMORY_NAMESPACE, AlmaStore

register_checkpoint_source(LangGraphCheckpoints())
register_erasure_hook(erase_threads)  # delete_user removes a user's threads whole

__all__ = [
    "MEMORY_NAMESPACE",
    "OWNERS",
    "AlmaSaver",
    "AlmaSerializer",
    "AlmaStore",
    "AsyncAlmaSaver",
    "GraphPriorityAgent",
    "KeyRing",
    "RunLessons",
    "alma_learn_node",
    "alma_retrieve_node",
    "generate_key",
    "import_checkpoints",
    "latest_wins",
    "merge_lists",
    "priority_agent",
    "safe_serializer",
    "state_values",
]
