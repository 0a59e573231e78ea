"""AlmaChatMessageHistory: exact round-trips, sessions, RunnableWithMessageHistory, delete_user."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from alma_core import ALMA, SerializationError, ValidationError
from alma_langchain import AlmaChatMessageHistory

EVERY_KIND: list[BaseMessage] = [
    SystemMessage("You test web apps.", id="s1"),
    HumanMessage(
        content=[
            {"type": "text", "text": "What is on this page?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
        id="h1",
        additional_kwargs={"lang": "en"},
        name="ana",
    ),
    AIMessage(
        content="",
        id="a1",
        tool_calls=[{"name": "retrieve_memories", "args": {"task": "login", "top_k": 2}, "id": "call_1"}],
        response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
        usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
    ),
    ToolMessage("No relevant memories.", tool_call_id="call_1", id="t1", status="error", artifact={"n": 0}),
    AIMessage(
        content=[{"type": "text", "text": "Done."}, {"type": "reasoning", "reasoning": "because"}],
        id="a2",
        invalid_tool_calls=[
            {"name": "x", "args": "{bad", "id": "call_2", "error": "bad json", "type": "invalid_tool_call"}
        ],
    ),
    AIMessageChunk(content="partial", id="c1"),
    ChatMessage(content="custom role", role="critic", id="r1"),
    FunctionMessage(content="42", name="answer", id="f1"),
    HumanMessage("unicode ✓ 日本語"),
]


def test_every_message_kind_round_trips_exactly(alma: ALMA) -> None:
    history = AlmaChatMessageHistory(alma, "s-1")
    history.add_messages(EVERY_KIND)
    again = AlmaChatMessageHistory(alma, "s-1").messages
    assert again == EVERY_KIND
    assert [type(m) for m in again] == [type(m) for m in EVERY_KIND]


def test_history_survives_reopening_the_store(db_path: Path) -> None:
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        AlmaChatMessageHistory(alma, "s").add_messages([HumanMessage("hi"), AIMessage("hello")])
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        assert [m.content for m in AlmaChatMessageHistory(alma, "s").messages] == ["hi", "hello"]


def test_sessions_are_separate_and_clear_only_its_own(alma: ALMA) -> None:
    a, b = AlmaChatMessageHistory(alma, "a"), AlmaChatMessageHistory(alma, "b")
    a.add_user_message("for a")
    b.add_user_message("for b")
    a.add_ai_message("reply a")
    assert [m.content for m in a.messages] == ["for a", "reply a"]
    a.clear()
    assert a.messages == []
    assert [m.content for m in b.messages] == ["for b"]


async def test_async_methods(alma: ALMA) -> None:
    history = AlmaChatMessageHistory(alma, "async")
    await history.aadd_messages([HumanMessage("one"), AIMessage("two")])
    assert [m.content for m in await history.aget_messages()] == ["one", "two"]
    await history.aclear()
    assert await history.aget_messages() == []


def test_unserializable_message_stores_nothing(alma: ALMA) -> None:
    history = AlmaChatMessageHistory(alma, "bad")
    with pytest.raises(SerializationError):
        history.add_messages([HumanMessage("fine"), AIMessage("x", additional_kwargs={"obj": object()})])
    assert history.messages == []


def test_empty_session_id_is_rejected(alma: ALMA) -> None:
    with pytest.raises(ValidationError):
        AlmaChatMessageHistory(alma, "")


def test_delete_user_removes_that_users_histories(alma: ALMA) -> None:
    ana = AlmaChatMessageHistory(alma, "ana-1", user_id="ana")
    ana.add_messages([HumanMessage("secret"), AIMessage("noted")])
    bob = AlmaChatMessageHistory(alma, "bob-1", user_id="bob")
    bob.add_user_message("keep me")
    assert alma.delete_user("ana") == 2
    assert ana.messages == []
    assert [m.content for m in bob.messages] == ["keep me"]


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history_keeps_the_conversation(alma: ALMA) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    seen: list[int] = []

    def count_messages(value: object) -> object:
        seen.append(len(value.to_messages()))  # type: ignore[attr-defined]
        return value

    chain = prompt | count_messages | FakeListChatModel(responses=["first answer", "second answer"])
    with_history = RunnableWithMessageHistory(
        chain,
        lambda session_id: AlmaChatMessageHistory(alma, session_id, user_id="ana"),
        input_messages_key="question",
        history_messages_key="history",
    )
    config = {"configurable": {"session_id": "chat-42"}}
    assert with_history.invoke({"question": "hello"}, config=config).content == "first answer"
    assert with_history.invoke({"question": "again"}, config=config).content == "second answer"
    assert seen == [2, 4]  # the second call saw the first exchange
    stored = AlmaChatMessageHistory(alma, "chat-42").messages
    assert [(m.type, m.content) for m in stored] == [
        ("human", "hello"), ("ai", "first answer"), ("human", "again"), ("ai", "second answer"),
    ]  # fmt: skip
