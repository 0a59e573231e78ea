"""Every ```python block of docs/*.md runs as written, as a newcomer would copy it.

Each block runs in a fresh working directory holding what `alma init` writes (so `.alma/config.yaml` is the
starter config, with its local embedder), offline. A block gets from outside only the names it uses without
defining them, from GIVENS below: what a reader brings (their `alma`, their chat model as langchain-core's
fake one, their graph builder, their crew's agents). A block marked in the Markdown, on the line just above
its fence, with

- `<!-- continues -->` runs after the block before it, in the same namespace;
- `<!-- pytest -->` is a test module: pytest runs it, with only the `alma` plugin's fixtures;
- `<!-- fragment: why -->` is not run (a signature, a server that serves until interrupted).

Fragments are counted (FRAGMENTS): marking a block a fragment means changing this file too, and a block can
never drop out of the run unnoticed.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from _fake_models import ToolCallingFakeModel, fake_chat_model
from _helpers import ROOT, Block, python_blocks, run_block, run_cli
from langgraph.graph.message import add_messages

pytestmark = pytest.mark.filterwarnings(  # what the docs say of these third-party APIs, not ours
    "ignore:RunnableWithMessageHistory is deprecated",
    "ignore:is_running called from within a step:DeprecationWarning",
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",  # LlamaIndex's workflow runtime inspecting pydantic
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
)

DOCS = {path.name: python_blocks(path.read_text(encoding="utf-8")) for path in sorted((ROOT / "docs").glob("*.md"))}

# The blocks deliberately not run, by "<doc>: <heading above the block>" (not by line: an edit above a block
# must not fail the test): a changed list fails the count test.
FRAGMENTS = {"mcp.md: From Python"}

# The placeholders a block uses for what only the reader has, and what stands in for them here.
PLACEHOLDERS: dict[str, Callable[[Reader], str]] = {
    "postgresql://alma:secret@db/alma": lambda r: str(r.request.getfixturevalue("pg_database")),
    "k1:<base64 key>": lambda r: "k1:" + __import__("alma_langgraph").generate_key(),
}


def _chains() -> list[tuple[str, list[Block]]]:
    """(id, blocks) of every run: a block with the `continues` blocks that follow it."""
    chains: list[tuple[str, list[Block]]] = []
    for doc, blocks in DOCS.items():
        for block in blocks:
            if block.mark == "continues":
                assert chains and chains[-1][0].startswith(doc + ":"), f"{doc}:{block.line} continues nothing"
                chains[-1][1].append(block)
            elif block.mark is None or block.mark == "pytest":
                chains.append((f"{doc}:{block.line}", [block]))
    return chains


CHAINS = _chains()


def test_every_block_is_run_or_a_counted_fragment() -> None:
    blocks = [f"{doc}:{b.line}" for doc, bs in DOCS.items() for b in bs]
    fragments = [(doc, b) for doc, bs in DOCS.items() for b in bs if b.mark == "fragment"]
    run = [f"{doc}:{b.line}" for _, chain in CHAINS for b in chain for doc in [_doc_of(b)]]
    named = {f"{doc}: {b.title}" for doc, b in fragments}
    assert named == FRAGMENTS and len(fragments) == len(FRAGMENTS), (
        "a block was marked (or unmarked) <!-- fragment -->: update FRAGMENTS"
    )
    assert sorted(run + [f"{doc}:{b.line}" for doc, b in fragments]) == sorted(blocks)
    assert len(blocks) >= 30, f"only {len(blocks)} python blocks found in docs/: did the fence syntax change?"
    for doc, text in ((d, (ROOT / "docs" / d).read_text(encoding="utf-8")) for d in DOCS):
        marks = text.count("<!-- fragment") + text.count("<!-- continues") + text.count("<!-- pytest")
        assert marks == sum(b.mark is not None for b in DOCS[doc]), f"{doc}: a mark is not just above a fence"


def _doc_of(block: Block) -> str:
    return next(doc for doc, blocks in DOCS.items() if block in blocks)


def free_names(code: str, defined: set[str]) -> list[str]:
    """Names `code` reads without binding them anywhere (nor in `defined`, nor builtins), in order of use."""
    tree = ast.parse(code)
    bound = set(defined) | set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    used = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return list(dict.fromkeys(n for n in used if n not in bound))


# --- what a reader brings ------------------------------------------------------------------------------------


class Reader:
    """The outside world of one run: its working directory, its givens (made on first use), what to close."""

    def __init__(self, request: pytest.FixtureRequest, cwd: Path) -> None:
        self.request, self.cwd, self.ns = request, cwd, {"__name__": "__docs__"}
        self.closers: list[Callable[[], Any]] = []

    def given(self, name: str) -> Any:
        if name not in self.ns:
            if name not in GIVENS:
                pytest.fail(f"the block uses `{name}` but neither defines it nor is it a reader's given (GIVENS)")
            self.ns[name] = GIVENS[name](self)
        return self.ns[name]

    def close(self) -> None:
        """Close the givens, and the ALMAs and stores the blocks opened (as the reader's process exit would)."""
        from alma_core import ALMA
        from alma_core.storage import BaseStorage

        made = [v for v in self.ns.values() if isinstance(v, (ALMA, BaseStorage)) and v.close not in self.closers]
        for close in [*reversed(self.closers), *(v.close for v in made)]:
            close()


def _alma(reader: Reader) -> Any:
    from alma_core import ALMA

    alma = ALMA.from_config(".alma/config.yaml")
    reader.closers.append(alma.close)
    return alma


class GraphState(TypedDict, total=False):
    """The state of the reader's graph (`builder`)."""

    messages: Annotated[list[Any], add_messages]
    task: str
    memories: str


def _builder(reader: Reader) -> Any:
    """A one-node LangGraph StateGraph whose node answers like a chat model (the reader's graph)."""
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, StateGraph

    def answer(state: GraphState) -> dict[str, Any]:
        return {"messages": [AIMessage("Validated each field of the login form, then a valid submission")]}

    builder = StateGraph(GraphState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


def _prompt(reader: Reader) -> Any:
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("system", "Memories:\n{context}"), ("human", "{question}")])


def _chain(reader: Reader) -> Any:
    """The reader's own chain, taking {"input": ...}."""
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("human", "{input}")]) | reader.given("model")


def _llama_llm(reader: Reader) -> Any:
    """LlamaIndex's mock function-calling LLM, answering in ReAct's format (which FunctionAgent passes on)."""
    from llama_index.core.base.llms.types import ChatMessage, MessageRole
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    def respond(messages: Any, **kwargs: Any) -> ChatMessage:
        text = "Thought: I can answer without tools.\nAnswer: Test one field at a time."
        return ChatMessage(role=MessageRole.ASSISTANT, content=text)

    return MockFunctionCallingLLM(response_generator=respond)


def _crew_llm() -> Any:
    from crewai.llms.base_llm import BaseLLM

    class EchoLLM(BaseLLM):  # a fixed final answer for the agents, '{}' for CrewAI's own analysis
        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            text = messages if isinstance(messages, str) else "\n".join(str(m.get("content", "")) for m in messages)
            return "Thought: done\nFinal Answer: a short brief" if "Current Task:" in text else "{}"

    return EchoLLM(model="echo")


def _crew_agent(role: str) -> Callable[[Reader], Any]:
    def make(reader: Reader) -> Any:
        from crewai import Agent

        return Agent(role=role, goal=f"the {role}'s work", backstory="b", llm=_crew_llm())

    return make


def _crew_task(description: str, agent: str) -> Callable[[Reader], Any]:
    def make(reader: Reader) -> Any:
        from crewai import Task

        return Task(description=description, expected_output="a paragraph", agent=reader.given(agent))

    return make


def _report_state(reader: Reader) -> Any:
    from pydantic import BaseModel

    class ReportState(BaseModel):
        id: str = ""
        draft: str = ""

    return ReportState


def _review(reader: Reader) -> Any:
    """The reader's LlamaIndex workflow that waits for a human's approval."""
    from llama_index.core.workflow import (
        Context,
        HumanResponseEvent,
        InputRequiredEvent,
        StartEvent,
        StopEvent,
        Workflow,
        step,
    )

    class Review(Workflow):
        @step
        async def draft(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent:
            await ctx.store.set("draft", ev.text.upper())
            return InputRequiredEvent(prefix="approve?")

        @step
        async def decide(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
            return StopEvent(result=f"{await ctx.store.get('draft')} {ev.response}")

    return Review


def _pg_uri(reader: Reader) -> str:
    return str(reader.request.getfixturevalue("pg_database"))


# What the reader's chat model extracts from a conversation (AutoLearner's structured output).
EXTRACTION = {
    "outcomes": [
        {
            "task": "Test the login form",
            "success": True,
            "strategy_used": "validate one field at a time",
            "task_type": "testing_strategies",
        }
    ],
    "preferences": [{"preference": "Report results as a table", "category": "selector_patterns"}],
}

GIVENS: dict[str, Callable[[Reader], Any]] = {
    "alma": _alma,
    "chat_model": lambda r: ToolCallingFakeModel(
        text="Validated the login form one field at a time.", payload=EXTRACTION
    ),
    "chat": lambda r: fake_chat_model(
        '{"task": "Test the login form", "success": true, "strategy": "one field at a time", "error": null}'
    ),
    "model": lambda r: fake_chat_model("Validate one field at a time."),
    "prompt": _prompt,
    "chain": _chain,
    "builder": _builder,
    "inputs": lambda r: {"messages": [("user", "Test the login form")], "task": "Test the login form"},
    "messages": lambda r: [
        {"role": "user", "content": "How should I test the login form?"},
        {"role": "assistant", "content": "Validate one field at a time."},
    ],
    "my_agent": lambda r: lambda prompt: "Checked empty fields, an invalid email and a valid submission",
    "llm": _llama_llm,
    "tools": lambda r: [],
    "researcher": _crew_agent("researcher"),
    "writer": _crew_agent("writer"),
    "research": _crew_task("Research SQLite's WAL mode", "researcher"),
    "brief": _crew_task("Write a brief on SQLite's WAL mode", "writer"),
    "ReportState": _report_state,
    "Review": _review,
    "uri": _pg_uri,
}


def _stats(ns: dict[str, Any], agent: str) -> Any:
    return ns["alma"].stats(agent)


# What some blocks visibly did, beyond not raising, by (doc, heading of the chain's last block).
CHECKS: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    ("crewai.md", "A crew that learns"): lambda ns: _check(_stats(ns, "researcher").outcomes == 1),
    ("harness.md", "AutoLearner (`alma_core.extraction`)"): lambda ns: _check(ns["result"].stored),
    ("langchain.md", "Learning from runs"): lambda ns: _check(_stats(ns, "helena").outcomes == 1),
    ("langgraph.md", "Lessons from finished runs"): lambda ns: _check(
        ns["lesson"].strategy_used == "one field at a time" and ns["lesson"].metadata["run"]["thread_id"] == "t1"
    ),
    ("llamaindex.md", "Workflow checkpoints"): lambda ns: _check(ns["result"] == "RELEASE NOTES approved"),
    ("workflow.md", "Merging states: reducers"): lambda ns: _check(
        ns["alma"].resume("release-42") == {"findings": ["slow checkout"], "step": "review"}
    ),
}


def _check(ok: bool) -> None:
    assert ok


@pytest.fixture
def reader(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    """A fresh working directory after `alma init`, offline."""
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert run_cli(tmp_path, "init").returncode == 0
    monkeypatch.chdir(tmp_path)
    reader = Reader(request, tmp_path)
    yield reader
    reader.close()


@pytest.mark.parametrize("blocks", [c for _, c in CHAINS], ids=[i for i, _ in CHAINS])
def test_block_runs(blocks: list[Block], reader: Reader) -> None:
    doc = _doc_of(blocks[0])
    if blocks[0].mark == "pytest":
        _run_as_pytest(blocks[0], reader.request.getfixturevalue("pytester"))
        return
    for block in blocks:
        code = block.code
        for placeholder, value in PLACEHOLDERS.items():
            if placeholder in code:
                code = code.replace(placeholder, value(reader))
        for name in free_names(code, set(reader.ns)):
            reader.given(name)
        run_block(code, reader.ns, f"docs/{doc}:{block.line}")
    check = CHECKS.get((doc, blocks[-1].title))
    if check is not None:
        check(reader.ns)


def test_every_given_is_used_by_a_block() -> None:
    used = {name for _, chain in CHAINS for b in chain for name in free_names(b.code, set())}
    assert set(GIVENS) <= used | {"model"}, f"givens no block uses: {set(GIVENS) - used}"  # `chain` takes `model`
    ends = {(_doc_of(chain[-1]), chain[-1].title) for _, chain in CHAINS}
    assert set(CHECKS) <= ends, f"checks of no block: {set(CHECKS) - ends}"


def _run_as_pytest(block: Block, pytester: pytest.Pytester) -> None:
    """The block as a test module of its own project: no conftest.py, only the `alma` plugin's fixtures."""
    pytester.makepyfile(test_from_docs=block.code)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")
    tests = sum(line.startswith("def test_") for line in block.code.splitlines())
    result.assert_outcomes(passed=tests)
