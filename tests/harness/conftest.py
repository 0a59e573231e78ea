"""Fixtures of the harness tests: a coding-schema ALMA and a tool-calling fake chat model (LangChain's own
base class; only the network call is faked)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from alma_core import DomainMemoryFactory


class ToolCallingFakeModel(BaseChatModel):
    """Answers every call with one tool call carrying `payload` (what a real model returns for
    `with_structured_output`), or with `text` when no tools are bound. Records the prompts it saw."""

    payload: dict[str, Any] = {}
    text: str = "ok"
    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "tool-calling-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append(list(messages))
        if kwargs.get("tools"):
            tool = kwargs["tools"][0]
            name = tool.__name__ if isinstance(tool, type) else str(tool)
            message = AIMessage("", tool_calls=[{"name": name, "args": self.payload, "id": "call-1"}])
        else:
            message = AIMessage(self.text)
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.fixture
def coding_alma(tmp_path: Path):
    """helena learns testing_strategies and selector_patterns only; victor learns every coding category."""
    factory = DomainMemoryFactory()
    agents = {
        "helena": {"can_learn": ["testing_strategies", "selector_patterns"], "min_occurrences_for_heuristic": 2},
        "victor": None,
    }
    alma = factory.create_alma("coding", "harness-test", agents=agents, storage=tmp_path / "alma.db", embedder="mock")
    yield alma
    alma.close()


@pytest.fixture
def fake_model():
    return ToolCallingFakeModel
