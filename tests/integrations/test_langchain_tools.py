"""as_tools and AlmaLearningCallback: typed tools whose errors the model can read; runs become outcomes."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableLambda

from alma_core import ALMA, MemoryType, ScopeViolation
from alma_langchain import AlmaLearningCallback, LearnOutcomeArgs, RetrieveMemoriesArgs, as_tools


def tools_by_name(alma: ALMA, agent: str = "helena") -> dict:
    return {t.name: t for t in as_tools(alma, agent)}


def call(tool, args: dict) -> ToolMessage:
    """Invoke a tool the way an agent does: with a tool call, getting a ToolMessage back."""
    return tool.invoke({"name": tool.name, "args": args, "id": "call_1", "type": "tool_call"})


def test_tools_have_typed_schemas(alma: ALMA) -> None:
    tools = tools_by_name(alma)
    assert set(tools) == {"retrieve_memories", "learn_outcome"}
    assert tools["retrieve_memories"].args_schema is RetrieveMemoriesArgs
    assert tools["learn_outcome"].args_schema is LearnOutcomeArgs
    assert tools["learn_outcome"].tool_call_schema.model_json_schema()["required"] == ["task", "outcome"]


def test_learn_then_retrieve_through_tools(alma: ALMA) -> None:
    tools = tools_by_name(alma)
    message = call(tools["learn_outcome"], {"task": "Test the login form", "outcome": "success",
                                            "strategy_used": "use data-testid selectors"})  # fmt: skip
    assert message.status == "success" and "testing_strategies" in str(message.content)
    [outcome] = alma.list_memories(agent="helena", memory_types=[MemoryType.OUTCOME])
    assert outcome.success and outcome.strategy_used == "use data-testid selectors"
    recalled = call(tools["retrieve_memories"], {"task": "login form test", "top_k": 3})
    assert recalled.status == "success"
    assert "Test the login form → succeeded using: use data-testid selectors" in str(recalled.content)


async def test_tools_work_async(alma: ALMA) -> None:
    tools = tools_by_name(alma)
    await tools["learn_outcome"].ainvoke({"task": "Test the signup form", "outcome": "failure",
                                          "error_message": "timeout"})  # fmt: skip
    text = await tools["retrieve_memories"].ainvoke({"task": "signup form"})
    assert "failed" in text and "timeout" in text


def test_bad_argument_becomes_a_readable_tool_error(alma: ALMA) -> None:
    tools = tools_by_name(alma)
    message = call(tools["learn_outcome"], {"task": "Test it", "outcome": "maybe"})
    assert message.status == "error"
    assert "invalid arguments" in str(message.content) and "outcome" in str(message.content)
    message = call(tools["retrieve_memories"], {"task": "x", "top_k": 0})
    assert message.status == "error" and "top_k" in str(message.content)
    assert alma.list_memories() == []


def test_scope_violation_becomes_a_readable_tool_error(alma: ALMA) -> None:
    message = call(tools_by_name(alma)["learn_outcome"],
                   {"task": "Tune the SQL", "outcome": "success", "task_type": "backend_logic"})  # fmt: skip
    assert message.status == "error"
    assert "ScopeViolation" in str(message.content) and "backend_logic" in str(message.content)
    assert alma.list_memories() == []


def test_unknown_agent_becomes_a_tool_error(alma: ALMA) -> None:
    message = call(tools_by_name(alma, "nobody")["retrieve_memories"], {"task": "anything"})
    assert message.status == "error" and "UnknownAgent" in str(message.content)


def test_callback_learns_success_of_the_top_level_run(alma: ALMA) -> None:
    inner = RunnableLambda(lambda q: f"checked {q['input']}")
    chain = inner | RunnableLambda(lambda s: s.upper())
    callback = AlmaLearningCallback(alma, "helena", strategy="check then shout")
    assert chain.invoke({"input": "Test the login form"}, config={"callbacks": [callback]}) == (
        "CHECKED TEST THE LOGIN FORM"
    )
    [outcome] = alma.list_memories(agent="helena", memory_types=[MemoryType.OUTCOME])
    assert outcome.task == "Test the login form" and outcome.success
    assert outcome.strategy_used == "check then shout" and outcome.task_type == "testing_strategies"
    assert outcome.metadata["source"] == "langchain"


def test_callback_learns_failure_with_the_error(alma: ALMA) -> None:
    def boom(_: str) -> str:
        raise RuntimeError("selector not found")

    callback = AlmaLearningCallback(alma, "helena", task="Test the checkout page")
    with pytest.raises(RuntimeError):
        RunnableLambda(boom).invoke("go", config={"callbacks": [callback]})
    [outcome] = alma.list_memories(agent="helena", memory_types=[MemoryType.OUTCOME])
    assert not outcome.success
    assert outcome.error_message == "RuntimeError: selector not found"


def test_callback_surfaces_a_scope_violation(alma: ALMA) -> None:
    callback = AlmaLearningCallback(alma, "helena", task_type="backend_logic")
    with pytest.raises(ScopeViolation):
        RunnableLambda(lambda x: x).invoke("Tune SQL", config={"callbacks": [callback]})
    assert alma.list_memories() == []


def test_callback_on_a_langgraph_agent_records_the_human_task(alma: ALMA) -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langgraph.graph import START, MessagesState, StateGraph

    model = FakeMessagesListChatModel(responses=[AIMessage("Use page objects for the login form.")])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "agent")
    agent = graph.compile()
    callback = AlmaLearningCallback(alma, "helena")
    question = "How should I test the login form?"
    agent.invoke({"messages": [SystemMessage("be brief"), HumanMessage(question)]}, config={"callbacks": [callback]})
    [outcome] = alma.list_memories(agent="helena", memory_types=[MemoryType.OUTCOME])
    assert outcome.task == question  # not a repr of the message list
    assert outcome.strategy_used == "Use page objects for the login form." and outcome.success
    agent.invoke({"messages": [("user", "Test the signup form")]}, config={"callbacks": [callback]})
    assert {o.task for o in alma.list_memories(agent="helena", memory_types=["outcome"])} == {
        question, "Test the signup form",
    }  # fmt: skip
