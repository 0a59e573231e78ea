"""Chat models a user would supply, faked with langchain-core's own classes (only the network call is faked)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def fake_chat_model(*responses: str) -> FakeListChatModel:
    """langchain-core's FakeListChatModel answering `responses` in turn (cycling)."""
    return FakeListChatModel(responses=list(responses))


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
