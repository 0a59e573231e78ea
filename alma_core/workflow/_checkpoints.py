"""Checkpoints and artifacts in the record space.

Layout (per project):

    wf/<workflow_id>/checkpoints   key = checkpoint id, value = serialized state (JSON bytes),
                                   metadata = {workflow_id, agent, parent_id, meta, [user_id]};
                                   the record's seq is the checkpoint's sequence
    wf/<workflow_id>/artifacts     key = artifact id, value = None,
                                   metadata = {workflow_id, artifact_type, ref, meta}

Checkpoint records are never overwritten (fresh ids), so their seq is their write order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from .._errors import NotFound, ValidationError
from ..storage._base import BaseStorage, DeleteRecords, GetRecord, ListNamespaces, ListRecords, PutRecord, Record
from ._models import Artifact, ArtifactType, Checkpoint, stamp
from ._serde import Serializer

__all__ = ["CheckpointStore"]

PREFIX = "wf/"
CHECKPOINTS = "/checkpoints"
ARTIFACTS = "/artifacts"
_DELETE_CHUNK = 500


def checkpoints_ns(workflow_id: str) -> str:
    return f"{PREFIX}{workflow_id}{CHECKPOINTS}"


def artifacts_ns(workflow_id: str) -> str:
    return f"{PREFIX}{workflow_id}{ARTIFACTS}"


def _checkpoint(record: Record, serializer: Serializer, with_state: bool) -> Checkpoint:
    meta = record.metadata
    return Checkpoint(
        id=record.key, workflow_id=meta["workflow_id"], sequence=record.seq, created_at=stamp(record.created_at),
        agent=meta.get("agent"), parent_id=meta.get("parent_id"), metadata=serializer.decode(meta.get("meta") or {}),
        state=serializer.loads(record.value) if with_state and record.value is not None else None,
        size_bytes=len(record.value) if record.value is not None else None,
    )  # fmt: skip


class CheckpointStore:
    """Checkpoint and artifact operations of one project on one storage (what `ALMA` delegates to)."""

    def __init__(self, storage: BaseStorage, project_id: str, serializer: Serializer | None = None) -> None:
        self.storage, self.project_id = storage, project_id
        self.serializer = serializer or Serializer()

    def put(
        self,
        workflow_id: str,
        state: Any,
        metadata: dict[str, Any] | None,
        agent: str | None,
        parent_id: str | None,
    ) -> Checkpoint:
        """Serialize first (nothing is written when it fails), then write in one transaction."""
        value = self.serializer.dumps(state)
        meta = self.serializer.encode(dict(metadata or {}), "metadata", set())
        record_meta: dict[str, Any] = {"workflow_id": workflow_id, "agent": agent, "parent_id": parent_id, "meta": meta}
        if isinstance(meta.get("user_id"), str):
            record_meta["user_id"] = meta["user_id"]  # so ALMA.delete_user finds it
        ns = checkpoints_ns(workflow_id)
        with self.storage.transaction() as tx:
            if parent_id is not None and tx.execute(GetRecord(self.project_id, ns, parent_id)) is None:
                raise NotFound(f"no checkpoint {parent_id!r} in workflow {workflow_id!r} (parent_id)")
            stored = tx.execute(PutRecord(Record(self.project_id, ns, uuid.uuid4().hex, value, record_meta)))
        return _checkpoint(stored, self.serializer, False).model_copy(update={"state": state})

    def get(self, workflow_id: str, checkpoint_id: str | None = None) -> Checkpoint:
        """The named checkpoint, or the latest, with its state; `NotFound` when there is none."""
        ns = checkpoints_ns(workflow_id)
        if checkpoint_id is None:
            found = self.storage.execute(ListRecords(self.project_id, ns, limit=1))
            record = found[0] if found else None
        else:
            record = self.storage.execute(GetRecord(self.project_id, ns, checkpoint_id))
        if record is None:
            what = f"checkpoint {checkpoint_id!r}" if checkpoint_id else "checkpoint"
            raise NotFound(f"no {what} in workflow {workflow_id!r} of project {self.project_id!r}")
        return _checkpoint(record, self.serializer, True)

    def history(self, workflow_id: str, limit: int | None, before: int | str | None) -> list[Checkpoint]:
        """Checkpoints newest first, without their states; `before` is a sequence or a checkpoint id."""
        ns = checkpoints_ns(workflow_id)
        before_seq = before if not isinstance(before, str) else None
        if isinstance(before, str):
            anchor = self.storage.execute(GetRecord(self.project_id, ns, before))
            if anchor is None:
                raise NotFound(f"no checkpoint {before!r} in workflow {workflow_id!r} (before)")
            before_seq = anchor.seq
        records = self.storage.execute(
            ListRecords(self.project_id, ns, before_seq=before_seq, limit=limit, with_values=False)
        )
        return [_checkpoint(r, self.serializer, False) for r in records]

    def workflows(self) -> list[str]:
        """Every workflow id of the project that has checkpoints."""
        spaces = self.storage.execute(ListNamespaces(self.project_id, PREFIX))
        return [ns[len(PREFIX) : -len(CHECKPOINTS)] for ns in spaces if ns.endswith(CHECKPOINTS)]

    def cleanup(self, older_than_days: float, keep_latest: int, workflow_id: str | None) -> int:
        """Delete checkpoints older than the cutoff, except each workflow's `keep_latest` newest."""
        cutoff = time.time() - older_than_days * 86400.0
        gone = 0
        for wf in [workflow_id] if workflow_id is not None else self.workflows():
            ns = checkpoints_ns(wf)
            with self.storage.transaction() as tx:
                old = tx.execute(ListRecords(self.project_id, ns, updated_before=cutoff, with_values=False))
                if keep_latest:
                    newest = tx.execute(ListRecords(self.project_id, ns, limit=keep_latest, with_values=False))
                    kept = {r.key for r in newest}
                    old = [r for r in old if r.key not in kept]
                keys = [r.key for r in old]
                for start in range(0, len(keys), _DELETE_CHUNK):
                    gone += tx.execute(DeleteRecords(self.project_id, ns, tuple(keys[start : start + _DELETE_CHUNK])))
        return gone

    # ---- artifacts ------------------------------------------------------------------------------

    def link(self, workflow_id: str, artifact_type: ArtifactType, ref: str, metadata: dict[str, Any]) -> Artifact:
        meta = self.serializer.encode(dict(metadata), "metadata", set())
        record_meta = {"workflow_id": workflow_id, "artifact_type": artifact_type.value, "ref": ref, "meta": meta}
        stored = self.storage.execute(
            PutRecord(Record(self.project_id, artifacts_ns(workflow_id), uuid.uuid4().hex, None, record_meta))
        )
        return _artifact(stored, self.serializer)

    def artifacts(self, workflow_id: str, artifact_type: ArtifactType | None) -> list[Artifact]:
        where = {"artifact_type": artifact_type.value} if artifact_type is not None else None
        records = self.storage.execute(ListRecords(self.project_id, artifacts_ns(workflow_id), where=where))
        return [_artifact(r, self.serializer) for r in records]


def _artifact(record: Record, serializer: Serializer) -> Artifact:
    meta = record.metadata
    return Artifact(
        id=record.key, workflow_id=meta["workflow_id"], artifact_type=ArtifactType(meta["artifact_type"]),
        ref=meta["ref"], created_at=stamp(record.created_at), metadata=serializer.decode(meta.get("meta") or {}),
    )  # fmt: skip


def entries_of(states: Sequence[Any]) -> list[tuple[str | None, Any, str | None]]:
    """Normalize merge_states inputs to (agent, state, checkpoint_id)."""
    out: list[tuple[str | None, Any, str | None]] = []
    for i, item in enumerate(states):
        if isinstance(item, Checkpoint):
            out.append((item.agent, item.state, item.id))
        elif isinstance(item, tuple) and len(item) == 2 and (item[0] is None or isinstance(item[0], str)):
            out.append((item[0], item[1], None))
        else:
            out.append((None, item, None))
        if not isinstance(out[-1][1], dict):
            raise ValidationError(
                f"states[{i}] must be a dict, an (agent, dict) pair or a Checkpoint loaded with its state "
                f"(get_checkpoint), got {type(out[-1][1]).__name__}"
            )
    return out
