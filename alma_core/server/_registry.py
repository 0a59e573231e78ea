"""Which projects a server answers for, and the one token each accepts.

A token opens exactly one project: the right token for project A sent to `/v1/projects/B/...` gets
403, a wrong or missing token 401. All projects share one store and one embedder (opened once);
`ServeSettings` is plain JSON so `--workers N` can hand it to each worker process.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ConfigError
from ._guard import DEFAULT_MAX_BODY_BYTES
from ._problems import Problem

if TYPE_CHECKING:
    from .._alma import ALMA

__all__ = ["SETTINGS_ENV", "ProjectRegistry", "ServeSettings"]

SETTINGS_ENV = "ALMA_SERVE_SETTINGS"  # how `--workers N` passes the settings to each worker
_CHALLENGE = {"www-authenticate": 'Bearer realm="alma"'}


class ServeSettings(BaseModel):
    """What `alma serve` was asked for (every worker builds the same app from it)."""

    model_config = ConfigDict(extra="forbid")

    config: str = ".alma/config.yaml"
    tokens: dict[str, str] = Field(default_factory=dict, description="project_id -> its bearer token")
    allowed_origins: list[str] = Field(default_factory=list, description="browser Origins accepted besides localhost")
    cors_origins: list[str] = Field(default_factory=list, description="Origins sent CORS headers (off when empty)")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024)
    loopback_only: bool = True

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls) -> ServeSettings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise ConfigError(f"{SETTINGS_ENV} is not set: start workers with `alma serve --workers N`")
        return cls.model_validate(json.loads(raw))


class ProjectRegistry:
    """The served projects' `ALMA`s and their tokens."""

    def __init__(self, projects: dict[str, ALMA], tokens: dict[str, str]) -> None:
        if set(projects) != set(tokens) or not tokens or not all(tokens.values()):
            raise ConfigError("every served project needs exactly one non-empty token")
        if len(set(tokens.values())) != len(tokens):
            raise ConfigError("two projects share a token; give each project its own")
        self.projects = projects
        self._tokens = {p: t.encode() for p, t in tokens.items()}

    @classmethod
    def open(cls, settings: ServeSettings) -> ProjectRegistry:
        """Open the config's store once and an `ALMA` per token's project on it."""
        from .._alma import ALMA
        from ..cli import open_alma

        base = open_alma(settings.config)
        projects = {base.project_id: base}
        try:
            for project_id in settings.tokens:
                if project_id not in projects:
                    projects[project_id] = ALMA(project_id=project_id, config=base.config, storage=base.storage,
                                                embedder=base.embedder, emitter=base.events)  # fmt: skip
            if base.project_id not in settings.tokens:
                del projects[base.project_id]
            return cls(projects, settings.tokens)
        except BaseException:
            base.close()
            raise

    def _holder(self, authorization: str | None) -> str | None:
        """The project whose token this is, or None (every token is compared, in constant time)."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = value.strip().encode()
        found = None
        for project_id, token in self._tokens.items():
            if hmac.compare_digest(given, token):
                found = project_id
        return found

    def authorize(self, project_id: str, authorization: str | None) -> ALMA:
        """The project's `ALMA` if the bearer token is its own; `Problem` 401 / 403 otherwise."""
        holder = self._holder(authorization)
        if holder is None:
            raise Problem(401, "Unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)",
                          _CHALLENGE)  # fmt: skip
        if holder != project_id:
            raise Problem(403, "Forbidden", f"this token is not valid for project {project_id!r}")
        return self.projects[project_id]

    def close(self) -> None:
        storages = {id(a.storage): a for a in self.projects.values()}
        for alma in storages.values():
            alma.close()
