"""AlmaMemoryBlock inside LlamaIndex's Memory (FunctionAgent, chat engine) and AlmaRetriever in a query engine."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Settings
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.mock import (
    MockFunctionCallingLLMWithChatMemoryOfLastCall,
    MockLLM,
    MockLLMWithChatMemoryOfLastCall,
)
from llama_index.core.memory import Memory
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore

from alma_core import ALMA, MemoryType, ScopeViolation
from alma_llamaindex import AlmaMemoryBlock, AlmaRetriever, alma_memory

# LlamaIndex's workflow runtime inspects its pydantic agents, which pydantic reports as deprecated (not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
    "ignore:is_running called from within a step:DeprecationWarning",  # ReActAgent's own
)

LOCKOUT = "The login page locks after five failed attempts"


@pytest.fixture(autouse=True)
def offline_settings() -> None:
    """Nothing may reach OpenAI: LlamaIndex's global defaults are mocks in these tests."""
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)


def system_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)


async def test_block_renders_alma_prompt_for_latest_user_message(alma: ALMA) -> None:
    alma.add_domain_knowledge("helena", "testing_strategies", LOCKOUT)
    block = AlmaMemoryBlock(alma=alma, agent="helena")
    history = [ChatMessage(role="user", content="hello"), ChatMessage(role="assistant", content="hi"),
               ChatMessage(role="user", content="login page failed attempts")]  # fmt: skip
    expected = alma.retrieve("login page failed attempts", "helena").to_prompt()
    assert await block.aget(history) == expected
    assert LOCKOUT in expected
    assert await block.aget([ChatMessage(role="assistant", content="no user yet")]) == ""


def all_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages)


class ReActMockLLM(MockLLMWithChatMemoryOfLastCall):
    """A MockLLM that answers in ReAct's format (an echo would not parse) and keeps what it was sent."""

    async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        self.last_chat_messages = list(messages)
        return ChatResponse(message=ChatMessage(role="assistant", content="Thought: I can answer.\nAnswer: five"))


@pytest.mark.parametrize("agent_type", ["function", "react"])
async def test_both_agent_kinds_see_alma_memory(alma: ALMA, agent_type: str) -> None:
    alma.add_domain_knowledge("helena", "testing_strategies", LOCKOUT)
    memory = alma_memory(alma, "helena", session_id="s1")
    if agent_type == "function":
        llm: Any = MockFunctionCallingLLMWithChatMemoryOfLastCall()
        agent: Any = FunctionAgent(llm=llm, tools=[], system_prompt="You test web apps.")
    else:
        llm = ReActMockLLM()
        agent = ReActAgent(llm=llm, tools=[], system_prompt="You test web apps.", streaming=False)
    await agent.run("How do I test login attempts?", memory=memory)
    sent = all_text(list(llm.last_chat_messages or []))
    assert "<alma_memory>" in sent and LOCKOUT in sent
    assert "How do I test login attempts?" in sent


async def test_react_agent_loses_a_system_inserted_block(alma: ALMA) -> None:
    """Why `alma_memory` inserts into the user message: ReActAgent drops the system message."""
    alma.add_domain_knowledge("helena", "testing_strategies", LOCKOUT)
    memory = Memory.from_defaults(session_id="s1", memory_blocks=[AlmaMemoryBlock(alma=alma, agent="helena")])
    llm = ReActMockLLM()
    await ReActAgent(llm=llm, tools=[], streaming=False).run("How do I test login attempts?", memory=memory)
    assert LOCKOUT not in all_text(list(llm.last_chat_messages or []))


async def test_function_agent_sees_alma_memory_in_its_prompt(alma: ALMA) -> None:
    alma.add_domain_knowledge("helena", "testing_strategies", LOCKOUT)
    memory = Memory.from_defaults(session_id="s1", memory_blocks=[AlmaMemoryBlock(alma=alma, agent="helena")])
    llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
    agent = FunctionAgent(llm=llm, tools=[], system_prompt="You test web apps.")
    await agent.run("How do I test login attempts?", memory=memory)
    sent = list(llm.last_chat_messages or [])
    assert "<alma_memory>" in system_text(sent) and LOCKOUT in system_text(sent)
    assert sent[-1].content == "How do I test login attempts?"


async def test_flushed_turns_become_domain_knowledge(alma: ALMA) -> None:
    block = AlmaMemoryBlock(alma=alma, agent="helena", domain="testing_strategies", user_id="ana")
    memory = Memory.from_defaults(session_id="s2", memory_blocks=[block], token_limit=40, token_flush_size=10,
                                  chat_history_token_ratio=0.5)  # fmt: skip
    engine = SimpleChatEngine.from_defaults(llm=MockLLM(), memory=memory)
    await engine.achat("How should I test the login form with many fields and buttons?")
    await engine.achat("And what about the signup form with its many fields?")
    facts = alma.list_memories(agent="helena", memory_types=[MemoryType.KNOWLEDGE])
    assert facts, "the first turn should have been flushed into ALMA"
    first = facts[-1]
    assert first.fact.startswith("User: How should I test the login form with many fields and buttons?\nAssistant: ")
    assert first.domain == "testing_strategies"
    assert first.metadata == {"source": "llamaindex", "kind": "chat", "session_id": "s2", "user_id": "ana"}
    assert first.confidence == 0.3
    assert alma.delete_user("ana") >= 1
    assert alma.list_memories(agent="helena", memory_types=[MemoryType.KNOWLEDGE]) == []


async def test_chat_engine_reads_what_an_earlier_session_stored(alma: ALMA) -> None:
    writer = AlmaMemoryBlock(alma=alma, agent="helena", domain="testing_strategies")
    await writer.aput([ChatMessage(role="user", content="What breaks the checkout?"),
                       ChatMessage(role="assistant", content="Expired cards break the checkout."),
                       ChatMessage(role="tool", content="ignored tool output")], session_id="old")  # fmt: skip
    llm = MockLLMWithChatMemoryOfLastCall()
    memory = Memory.from_defaults(session_id="new", memory_blocks=[AlmaMemoryBlock(alma=alma, agent="helena")])
    await SimpleChatEngine.from_defaults(llm=llm, memory=memory).achat("checkout problems")
    text = system_text(list(llm.last_chat_messages or []))
    assert "User: What breaks the checkout?\nAssistant: Expired cards break the checkout." in text
    assert "ignored tool output" not in text


async def test_out_of_scope_domain_is_refused(alma: ALMA) -> None:
    block = AlmaMemoryBlock(alma=alma, agent="helena", domain="backend_logic")
    with pytest.raises(ScopeViolation):
        await block.aput([ChatMessage(role="user", content="tune SQL"), ChatMessage(role="assistant", content="ok")])
    assert alma.list_memories() == []


async def test_read_only_block_stores_nothing(alma: ALMA) -> None:
    block = AlmaMemoryBlock(alma=alma, agent="helena", learn_from_chat=False)
    await block.aput([ChatMessage(role="user", content="q"), ChatMessage(role="assistant", content="a")])
    assert alma.list_memories() == []


async def test_flushed_chat_turns_come_after_real_facts(alma: ALMA) -> None:
    block = AlmaMemoryBlock(alma=alma, agent="helena", domain="testing_strategies")
    question = "How do I test login attempts?"
    await block.aput([ChatMessage(role="user", content=question), ChatMessage(role="assistant", content="?")])
    alma.add_domain_knowledge("helena", "testing_strategies", LOCKOUT)
    text = await block.aget([ChatMessage(role="user", content=question)])
    assert text.index(LOCKOUT) < text.index(f"User: {question}")
    nodes = AlmaRetriever(alma, "helena", top_k=2).retrieve(question)
    assert [n.node.get_content() for n in nodes] == [LOCKOUT, f"User: {question}\nAssistant: ?"]


def seed_knowledge(alma: ALMA) -> None:
    for fact in (LOCKOUT, "Login buttons carry data-testid attributes", "Signup needs an email check"):
        alma.add_domain_knowledge("helena", "testing_strategies", fact)


def test_retriever_returns_scored_nodes(alma: ALMA) -> None:
    seed_knowledge(alma)
    nodes = AlmaRetriever(alma, "helena", top_k=2).retrieve("login page failed attempts")
    assert len(nodes) == 2 and all(isinstance(n, NodeWithScore) for n in nodes)
    top = nodes[0]
    assert top.node.get_content() == LOCKOUT
    assert top.node.metadata["type"] == "knowledge" and top.node.metadata["agent"] == "helena"
    assert top.node.node_id == top.node.metadata["id"]
    assert top.score is not None and top.score >= (nodes[1].score or 0)


async def test_retriever_async_and_sharing(alma: ALMA) -> None:
    seed_knowledge(alma)  # helena shares with qa_lead
    nodes = await AlmaRetriever(alma, "qa_lead", top_k=3).aretrieve("login")
    assert len(nodes) == 3 and {n.node.metadata["shared_from"] for n in nodes} == {"helena"}
    assert await AlmaRetriever(alma, "qa_lead", include_shared=False).aretrieve("login") == []


def test_retriever_in_a_query_engine(alma: ALMA) -> None:
    seed_knowledge(alma)
    engine = RetrieverQueryEngine.from_args(AlmaRetriever(alma, "helena", top_k=1), llm=MockLLM())
    response = engine.query("login page failed attempts")
    assert [n.node.get_content() for n in response.source_nodes] == [LOCKOUT]
    assert LOCKOUT in str(response)  # MockLLM echoes its prompt, which holds the retrieved memory
    assert "shared_from" not in str(response) and "type:" not in str(response)  # only content reaches the LLM
