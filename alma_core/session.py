"""Persistent sessions and handoffs: what an agent did last time, read by its next session.

    sessions = SessionManager("my-project", alma=alma)
    ctx = sessions.start_session("helena", goal="Fix the login tests")
    ctx.previous_handoff            # helena's last handoff in this project (read on first use)
    sessions.create_handoff("helena", ctx.session_id, last_action="ran tests", last_outcome="2 failing",
                            next_steps=["fix selector in login.spec"])
    sessions.end_session("helena", ctx.session_id, summary="...")

Records (per project): `sessions/<agent>` (key = session id) and `handoffs/<agent>` (key = handoff
id; the newest seq is the latest handoff), so a handoff written by one process is read by the next.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ._checks import check_text
from ._config import AlmaConfig, agent_key
from ._errors import NotFound, ValidationError
from ._models import utcnow
from .storage import open_storage
from .storage._base import BaseStorage, GetRecord, ListRecords, PutRecord, Record

if TYPE_CHECKING:
    from ._alma import ALMA

__all__ = ["Handoff", "SessionContext", "SessionInfo", "SessionManager", "resolve_store"]

_PAGE = 20  # handoffs read per query while skipping the current session's own


class Handoff(BaseModel):
    """What an agent leaves for its next session."""

    id: str
    agent: str
    session_id: str
    last_action: str
    last_outcome: str
    next_steps: list[str] = Field(default_factory=list)
    blockers: list[str] = Field(default_factory=list)
    decisions: list[str] = Field(default_factory=list)
    notes: str = ""
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionInfo(BaseModel):
    """A session as stored: who, why, when, and how it ended."""

    session_id: str
    agent: str
    goal: str
    status: Literal["active", "ended"] = "active"
    started_at: datetime
    ended_at: datetime | None = None
    summary: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionContext(SessionInfo):
    """What `start_session` returns: the session, plus the agent's previous handoff (loaded lazily)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _loader: Callable[[], Handoff | None] | None = PrivateAttr(None)
    _loaded: bool = PrivateAttr(False)
    _handoff: Handoff | None = PrivateAttr(None)

    @property
    def previous_handoff(self) -> Handoff | None:
        """The agent's latest handoff in this project from another session, or None (read on first use)."""
        if not self._loaded and self._loader is not None:
            self._handoff, self._loaded = self._loader(), True
        return self._handoff


def resolve_store(
    project_id: str | None, alma: ALMA | None, storage: BaseStorage | str | os.PathLike[str] | None
) -> tuple[str, BaseStorage]:
    """The (project_id, storage) a manager works on: the ALMA's, else `storage`, else the project's
    default store (`.alma/alma.db` under the working directory, as `ALMA()` uses)."""
    if alma is not None:
        return project_id or alma.project_id, alma.storage
    if project_id is not None:
        check_text("project_id", project_id)
    if storage is None:
        config = AlmaConfig(project_id=project_id) if project_id else AlmaConfig()
        Path(config.storage_dir).mkdir(parents=True, exist_ok=True)
        return config.project_id, open_storage(config)
    if not project_id:
        raise ValidationError("pass alma=ALMA(...), or project_id (with storage=, a path or a storage object)")
    return project_id, open_storage(storage)


def _ns(kind: str, agent: str) -> str:
    """The record namespace of an agent's sessions or handoffs (agent names are case-insensitive)."""
    return f"{kind}/{agent_key(agent)}"


def _strings(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{name} must be a list of strings")
    return list(value)


class SessionManager:
    """Starts and ends agents' sessions and keeps their handoffs, in the ALMA store."""

    def __init__(
        self,
        project_id: str | None = None,
        alma: ALMA | None = None,
        *,
        storage: BaseStorage | str | os.PathLike[str] | None = None,
    ) -> None:
        self.project_id, self.storage = resolve_store(project_id, alma, storage)

    def start_session(self, agent: str, goal: str = "", metadata: dict[str, Any] | None = None) -> SessionContext:
        """Open a session for `agent`; its `previous_handoff` is the latest one written before now."""
        check_text("agent", agent)
        info = SessionInfo(session_id=uuid.uuid4().hex, agent=agent_key(agent), goal=goal or "", started_at=utcnow(),
                           metadata=metadata or {})  # fmt: skip
        self._put_session(info)
        ctx = SessionContext(**info.model_dump())
        ctx._loader = lambda: self._latest_handoff(agent, ctx.session_id)
        return ctx

    def create_handoff(
        self,
        agent: str,
        session_id: str,
        last_action: str,
        last_outcome: str,
        next_steps: list[str] | None = None,
        blockers: list[str] | None = None,
        decisions: list[str] | None = None,
        notes: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Handoff:
        """Leave a handoff for the agent's next session (the session must exist)."""
        self.get_session(agent, session_id)
        handoff = Handoff(
            id=uuid.uuid4().hex, agent=agent_key(agent), session_id=session_id,
            last_action=check_text("last_action", last_action),
            last_outcome=check_text("last_outcome", last_outcome), next_steps=_strings("next_steps", next_steps),
            blockers=_strings("blockers", blockers), decisions=_strings("decisions", decisions), notes=notes or "",
            created_at=utcnow(), metadata=metadata or {},
        )  # fmt: skip
        data = handoff.model_dump(mode="json")
        self.storage.execute(PutRecord(Record(self.project_id, _ns("handoffs", agent), handoff.id, None, data)))
        return handoff

    def end_session(self, agent: str, session_id: str, summary: str | None = None) -> SessionInfo:
        """Mark the session ended (idempotent: ending twice keeps the first end time)."""
        info = self.get_session(agent, session_id)
        if info.status == "ended":
            return info
        info = info.model_copy(update={"status": "ended", "ended_at": utcnow(), "summary": summary})
        self._put_session(info)
        return info

    def get_session(self, agent: str, session_id: str) -> SessionInfo:
        record = self.storage.execute(GetRecord(self.project_id, _ns("sessions", agent), session_id))
        if record is None:
            raise NotFound(f"no session {session_id!r} of agent {agent!r} in project {self.project_id!r}")
        return SessionInfo.model_validate(record.metadata)

    def get_latest_handoff(self, agent: str) -> Handoff | None:
        """The newest handoff of `agent` in this project, or None."""
        return self._latest_handoff(agent, None)

    def list_handoffs(self, agent: str, limit: int | None = None) -> list[Handoff]:
        records = self.storage.execute(ListRecords(self.project_id, _ns("handoffs", agent), limit=limit))
        return [Handoff.model_validate(r.metadata) for r in records]

    def list_sessions(self, agent: str, limit: int | None = None) -> list[SessionInfo]:
        """The agent's sessions, most recently started or ended first."""
        records = self.storage.execute(ListRecords(self.project_id, _ns("sessions", agent), limit=limit))
        return [SessionInfo.model_validate(r.metadata) for r in records]

    def _put_session(self, info: SessionInfo) -> None:
        data = info.model_dump(mode="json")
        record = Record(self.project_id, _ns("sessions", info.agent), info.session_id, None, data)
        self.storage.execute(PutRecord(record))

    def _latest_handoff(self, agent: str, exclude_session: str | None) -> Handoff | None:
        """The newest handoff not written by `exclude_session` (pages back past that session's own)."""
        ns, before = _ns("handoffs", agent), None
        while True:
            page = self.storage.execute(ListRecords(self.project_id, ns, before_seq=before, limit=_PAGE))
            for record in page:
                if record.metadata.get("session_id") != exclude_session:
                    return Handoff.model_validate(record.metadata)
            if len(page) < _PAGE:
                return None
            before = page[-1].seq
