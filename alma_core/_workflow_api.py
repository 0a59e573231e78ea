"""Workflow methods of `ALMA` (checkpoints, reducers, artifacts, scoped retrieval): see the [workflow] issue."""

from __future__ import annotations

__all__ = ["WorkflowAPI"]


class WorkflowAPI:
    """Mixed into `ALMA`: checkpoint / resume / merge_states / link_artifact / retrieve_scoped."""
