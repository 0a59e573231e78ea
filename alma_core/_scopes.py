"""Scopes and sharing, enforced once for every write and read path.

Write rule: with agents configured, an unknown agent raises `UnknownAgent`. A write whose category
(task_type, domain or preference category) is in the agent's `cannot_learn`, or not in a non-empty
`can_learn`, raises `ScopeViolation`. With no agents configured, every agent is open.

Read rule: an agent reads its own memories and, with `include_shared`, those of the agents it
`inherit_from`s and of the agents that `share_with` it. Sharing is one hop, never transitive.

Agent names are case-insensitive everywhere: every method here takes any case and works on the
lower-case name (`agent_key`), which is also how memories, sessions and work items store them.
"""

from __future__ import annotations

from ._config import AgentConfig, agent_key
from ._errors import ScopeViolation, UnknownAgent, ValidationError
from ._text import WORD, stem

__all__ = ["ScopePolicy"]

_SUFFIXES = ("ing", "ies", "es", "ed", "s", "er")


def _stems(text: str) -> set[str]:
    return {stem(w, _SUFFIXES) for w in WORD.findall(text.lower().replace("_", " "))}


class ScopePolicy:
    """Who may learn what, and who reads whom."""

    def __init__(self, agents: dict[str, AgentConfig]) -> None:
        self.agents = agents
        self._open_config = AgentConfig()  # every agent's, when none is configured (read, never changed)
        self._readers: dict[str, list[str]] = {name: [] for name in agents}
        for owner, cfg in agents.items():
            for reader in cfg.share_with:  # a reader the config does not define yet is kept for when it is
                self._readers.setdefault(reader, []).append(owner)
        for reader, cfg in agents.items():
            for owner in cfg.inherit_from:
                if owner in agents and owner not in self._readers[reader]:
                    self._readers[reader].append(owner)

    @property
    def open(self) -> bool:
        return not self.agents

    def config(self, agent: str) -> AgentConfig:
        """The agent's config (an open default when no agents are configured)."""
        self.check_agent(agent)
        return self.agents.get(agent_key(agent)) or self._open_config

    def check_agent(self, agent: str) -> str:
        """The canonical (lower-case) name of `agent`; `UnknownAgent` if the config does not define it,
        `ValidationError` if it is not a non-empty string."""
        if not isinstance(agent, str) or not agent.strip():
            raise ValidationError(f"agent must be a non-empty string, got {agent!r}"[:200])
        key = agent_key(agent)
        if self.agents and key not in self.agents:
            raise UnknownAgent(agent, list(self.agents))
        return key

    def check_write(self, agent: str, category: str | None) -> None:
        """Raise unless `agent` may learn a memory of `category`."""
        cfg = self.config(agent)
        if category is not None and category in cfg.cannot_learn:
            raise ScopeViolation(agent, category, "it is in cannot_learn")
        if cfg.can_learn and category not in cfg.can_learn:
            raise ScopeViolation(agent, category, f"can_learn is {cfg.can_learn}")

    def infer_category(self, agent: str, text: str, default: str = "general") -> str:
        """The agent's can_learn or cannot_learn category sharing the most word stems with `text` (or
        `default`; a tie goes to can_learn).

        Lets `learn(task="Test login form")` land in `testing_strategies` without a task_type, and makes
        a task that names a forbidden category ("Fix the backend logic" for `cannot_learn: [backend_logic]`)
        a `ScopeViolation` instead of a `general` memory.
        """
        cfg = self.config(agent)
        if not cfg.can_learn and not cfg.cannot_learn:
            return default
        words = _stems(text)
        best, best_overlap = default, 0
        for category in (*cfg.can_learn, *cfg.cannot_learn):
            overlap = len(words & _stems(category))
            if overlap > best_overlap:
                best, best_overlap = category, overlap
        return best

    def shared_sources(self, agent: str) -> list[str]:
        """Agents whose memories `agent` may read besides its own (inherit_from, then share_with)."""
        key = self.check_agent(agent)
        return list(self._readers.get(key, []))

    def readable(self, agent: str, include_shared: bool = True) -> list[str]:
        key = self.check_agent(agent)
        return [key, *self.shared_sources(key)] if include_shared else [key]
