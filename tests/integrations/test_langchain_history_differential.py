"""AlmaChatMessageHistory against LangChain's reference `InMemoryChatMessageHistory`.

Each example applies one random sequence of public calls (`add_message`, `add_messages`,
`add_user_message`, `add_ai_message`, `aadd_messages`, `clear`, `aclear`, reading `messages`,
`aget_messages` and `str(history)`) over several session ids to one `InMemoryChatMessageHistory` per
session and to `AlmaChatMessageHistory`s on one real SQLite file (a new history object per call, as
`RunnableWithMessageHistory`'s factory makes them; the store is closed and reopened midway), and compares
what they read back with `==` and by class: type, content (text or content blocks), id, name,
`additional_kwargs`, `response_metadata`, tool calls, invalid tool calls, usage, tool_call_id, status
and artifact. Messages here hold only what JSON reads back exactly; where the two differ on purpose (a
message that would not read back equal raises `SerializationError` on ours and stores nothing,
docs/langchain.md "Chat history") is tested by name in `test_a_message_that_would_not_read_back_equal_*`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.chat_history import BaseChatMessageHistory, InMemoryChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
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

pytestmark = [
    pytest.mark.filterwarnings("ignore:The class `InMemoryChatMessageHistory` was deprecated"),
    pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated"),
]

SESSIONS = ["a", "a/b", "b", "a%", "日本", "chat/a"]  # one a prefix of another, a LIKE wildcard, unicode

plain_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)  # no lone surrogates: not UTF-8
long_text = st.builds(lambda unit, n: unit * n, st.text(st.characters(blacklist_categories=["Cs"]), min_size=1,
                                                        max_size=4), st.integers(5_000, 40_000))  # fmt: skip
texts = st.one_of(st.sampled_from(["", " ", "\n", "a\x00b", "ünï ✓ 日本語 🙂"]), plain_text, long_text)
ids = st.one_of(st.none(), st.sampled_from(["m1", "m2", "", "日本"]))
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63), plain_text,
        st.floats(allow_nan=False), st.sampled_from([float("inf"), -0.0, 10**30]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(plain_text, inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip
kwargs = st.dictionaries(plain_text, json_values, max_size=3)
blocks = st.lists(
    st.one_of(
        plain_text,
        st.builds(lambda t: {"type": "text", "text": t}, texts),
        st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, plain_text),
        st.builds(lambda extra: {"type": "custom", **extra}, kwargs),
    ),
    max_size=3,
)
contents = st.one_of(texts, blocks)
tool_calls = st.lists(
    st.builds(lambda n, a, i: {"name": n, "args": a, "id": i, "type": "tool_call"}, plain_text, kwargs, ids),
    max_size=2,
)
invalid_tool_calls = st.lists(
    st.builds(
        lambda n, a, i, e: {"name": n, "args": a, "id": i, "error": e, "type": "invalid_tool_call"},
        st.one_of(st.none(), plain_text), st.one_of(st.none(), plain_text), ids, st.one_of(st.none(), plain_text),
    ),
    max_size=2,
)  # fmt: skip
usage = st.one_of(
    st.none(),
    st.builds(lambda i, o: {"input_tokens": i, "output_tokens": o, "total_tokens": i + o},
              st.integers(0, 10**6), st.integers(0, 10**6)),
)  # fmt: skip
common = {"content": contents, "id": ids, "additional_kwargs": kwargs}
messages = st.one_of(
    st.builds(HumanMessage, name=st.one_of(st.none(), plain_text), **common),
    st.builds(SystemMessage, **common),
    st.builds(
        AIMessage, name=st.one_of(st.none(), plain_text), response_metadata=kwargs, tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls, usage_metadata=usage, **common,
    ),
    st.builds(AIMessageChunk, response_metadata=kwargs, usage_metadata=usage, **common),
    st.builds(
        ToolMessage, tool_call_id=plain_text, status=st.sampled_from(["success", "error"]), artifact=json_values,
        **common,
    ),
    st.builds(ChatMessage, role=plain_text, **common),
    st.builds(FunctionMessage, name=plain_text, **common),
)  # fmt: skip
sessions = st.sampled_from(SESSIONS)
calls = st.one_of(
    st.tuples(st.just("add_message"), sessions, messages),
    st.tuples(st.sampled_from(["add_messages", "aadd_messages"]), sessions, st.lists(messages, max_size=4)),
    st.tuples(st.just("add_user_message"), sessions, st.one_of(texts, st.builds(HumanMessage, contents))),
    st.tuples(st.just("add_ai_message"), sessions, st.one_of(texts, st.builds(AIMessage, contents))),
    st.tuples(st.sampled_from(["clear", "aclear", "read"]), sessions),
)


def _assert_same(ours: list[BaseMessage], theirs: list[BaseMessage]) -> None:
    assert ours == theirs
    assert [type(m) for m in ours] == [type(m) for m in theirs]  # `==` alone lets a chunk equal its message


def _apply(history: BaseChatMessageHistory, call: tuple[Any, ...]) -> None:
    name, _session, *args = call
    if name == "read":
        return
    method: Callable[..., Any] = getattr(history, name)
    result = method(*args)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


def _compare(ours: AlmaChatMessageHistory, theirs: InMemoryChatMessageHistory) -> None:
    _assert_same(ours.messages, theirs.messages)
    _assert_same(asyncio.run(ours.aget_messages()), asyncio.run(theirs.aget_messages()))
    assert str(ours) == str(theirs)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls, min_size=1, max_size=16), st.integers(0, 16))
def test_random_calls_read_back_as_in_memory_history_does(sequence: list[tuple[Any, ...]], reopen_at: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "alma.db"
        alma = ALMA(project_id="diff", storage=path, embedder="mock")
        try:
            reference = {s: InMemoryChatMessageHistory() for s in SESSIONS}
            for i, call in enumerate(sequence):
                if i == reopen_at:
                    alma.close()
                    alma = ALMA(project_id="diff", storage=path, embedder="mock")
                session = call[1]
                _apply(AlmaChatMessageHistory(alma, session), call)
                _apply(reference[session], call)
                _compare(AlmaChatMessageHistory(alma, session), reference[session])
            alma.close()
            alma = ALMA(project_id="diff", storage=path, embedder="mock")
            for session in SESSIONS:  # every session, after a last reopen
                _compare(AlmaChatMessageHistory(alma, session), reference[session])
        finally:
            alma.close()


class _SentToModel(BaseCallbackHandler):
    """Records the messages of every chat-model call."""

    def __init__(self) -> None:
        self.sent: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.sent.extend(messages)


TURNS: list[tuple[str, Any]] = [
    ("s1", "hello"),
    ("s2", "other session ✓"),
    ("s1", ""),
    ("s1", [{"type": "text", "text": "a block"}]),
    ("s2", "x" * 10_000),
    ("s1", "last"),
]


def _replies() -> list[AIMessage]:
    return [
        AIMessage("first", id="r0", response_metadata={"model": "fake"}),
        AIMessage("", id="r1", tool_calls=[{"name": "f", "args": {"q": 1}, "id": "c1", "type": "tool_call"}]),
        AIMessage([{"type": "text", "text": "blocks"}], id="r2", usage_metadata={
            "input_tokens": 1, "output_tokens": 2, "total_tokens": 3}),
        AIMessage("ünï", id="r3"),
        AIMessage("long", id="r4", name="bot"),
        AIMessage("bye", id="r5"),
    ]  # fmt: skip


def _run_turns(factory: Callable[[str], BaseChatMessageHistory], with_prompt: bool, use_async: bool,
               between: Callable[[], None]) -> list[list[BaseMessage]]:  # fmt: skip
    recorder = _SentToModel()
    model = GenericFakeChatModel(messages=iter(_replies()))
    if with_prompt:
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
        )
        chain = RunnableWithMessageHistory(
            prompt | model, factory, input_messages_key="question", history_messages_key="history"
        )
    else:
        chain = RunnableWithMessageHistory(model, factory)  # a list of messages in, one message out
    for i, (session, text) in enumerate(TURNS):
        if i == len(TURNS) // 2:
            between()
        if with_prompt:  # a template's "{question}" is text: the content-block turn goes in as its text
            value: Any = {"question": text if isinstance(text, str) else text[0]["text"]}
        else:
            value = [HumanMessage(text, id=f"h{i}")]
        config: Any = {"configurable": {"session_id": session}, "callbacks": [recorder]}
        if use_async:
            asyncio.run(chain.ainvoke(value, config=config))
        else:
            chain.invoke(value, config=config)
    return recorder.sent


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
@pytest.mark.parametrize("with_prompt", [True, False], ids=["prompt", "messages"])
def test_runnable_with_message_history_sends_the_model_the_same_messages(
    db_path: Path, with_prompt: bool, use_async: bool
) -> None:
    reference: dict[str, InMemoryChatMessageHistory] = {}
    theirs = _run_turns(lambda s: reference.setdefault(s, InMemoryChatMessageHistory()), with_prompt, use_async,
                        lambda: None)  # fmt: skip
    holder = [ALMA(project_id="p", storage=db_path, embedder="mock")]

    def reopen() -> None:
        holder[0].close()
        holder[0] = ALMA(project_id="p", storage=db_path, embedder="mock")

    try:
        ours = _run_turns(lambda s: AlmaChatMessageHistory(holder[0], s), with_prompt, use_async, reopen)
        assert len(ours) == len(TURNS)
        for got, want in zip(ours, theirs, strict=True):
            _assert_same(got, want)
        for session, history in reference.items():
            _assert_same(AlmaChatMessageHistory(holder[0], session).messages, history.messages)
    finally:
        holder[0].close()


class _MyHuman(HumanMessage):
    """A user's subclass: JSON keeps only its `type`, so it would read back as a plain HumanMessage."""


NOT_EXACT_IN_JSON = {
    "int-dict-key": HumanMessage("x", additional_kwargs={1: "one"}),  # read back as {"1": "one"}
    "tuple": AIMessage("x", response_metadata={"pair": (1, 2)}),  # read back as a list
    "nan": ToolMessage("x", tool_call_id="c", artifact={"score": float("nan")}),  # NaN != NaN
    "subclass": _MyHuman("x"),  # read back as HumanMessage
    "lone-surrogate": HumanMessage("\ud800"),  # not UTF-8
    "object": HumanMessage("x", additional_kwargs={"o": object()}),
}


@pytest.mark.parametrize("message", NOT_EXACT_IN_JSON.values(), ids=NOT_EXACT_IN_JSON.keys())
def test_a_message_that_would_not_read_back_equal_is_refused_and_nothing_is_stored(
    alma: ALMA, message: BaseMessage
) -> None:
    """The one intended difference (docs/langchain.md, "Chat history"): InMemoryChatMessageHistory keeps the
    object itself; ours stores JSON, so it refuses what JSON would change instead of handing back another value."""
    history = AlmaChatMessageHistory(alma, "s")
    history.add_user_message("before")
    with pytest.raises(SerializationError):
        history.add_messages([HumanMessage("fine"), message])
    with pytest.raises(SerializationError):
        asyncio.run(history.aadd_messages([message]))
    with pytest.raises(SerializationError):
        history.add_message(message)
    assert [m.content for m in AlmaChatMessageHistory(alma, "s").messages] == ["before"]


@pytest.mark.parametrize(
    "bad", [["hi"], [{"role": "user", "content": "hi"}], HumanMessage("not in a list"), [HumanMessage("ok"), None]]
)
def test_something_other_than_messages_is_a_validation_error_and_nothing_is_stored(alma: ALMA, bad: Any) -> None:
    """InMemoryChatMessageHistory appends anything (a bare message is iterated into its fields) and fails
    later, in `str(history)` or the model; ours refuses it at the call, with ALMA's typed error."""
    history = AlmaChatMessageHistory(alma, "s")
    with pytest.raises(ValidationError):
        history.add_messages(bad)
    with pytest.raises(ValidationError):
        asyncio.run(history.aadd_messages(bad))
    assert history.messages == []


def test_add_messages_reads_a_generator_once_as_the_in_memory_history_does(alma: ALMA) -> None:
    ours, theirs = AlmaChatMessageHistory(alma, "s"), InMemoryChatMessageHistory()
    for history in (ours, theirs):
        history.add_messages(HumanMessage(t) for t in ["one", "two"])
    _assert_same(ours.messages, theirs.messages)
