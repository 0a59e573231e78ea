"""ALMA in LlamaIndex, offline: an agent whose Memory holds an ALMA block, a query engine over ALMA,
and a workflow Context checkpointed in ALMA. Run: `python examples/llamaindex_agent.py` (mock LLMs).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from llama_index.core import Settings
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.mock import MockFunctionCallingLLMWithChatMemoryOfLastCall, MockLLM
from llama_index.core.memory import Memory
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step

from alma_core import ALMA
from alma_llamaindex import AlmaMemoryBlock, AlmaRetriever, restore_context, save_context

AGENTS = {"helena": {"domain": "coding", "can_learn": ["testing_strategies", "conversation"]}}


class Counter(Workflow):
    """Counts its runs in its Context's store."""

    @step
    async def count(self, ctx: Context, ev: StartEvent) -> StopEvent:
        runs = await ctx.store.get("runs", default=0) + 1
        await ctx.store.set("runs", runs)
        return StopEvent(result=runs)


async def main() -> None:
    Settings.llm, Settings.embed_model = MockLLM(), MockEmbedding(embed_dim=8)  # nothing reaches OpenAI
    with tempfile.TemporaryDirectory() as tmp, ALMA("demo", AGENTS, Path(tmp) / "alma.db", "mock") as alma:
        alma.add_domain_knowledge("helena", "testing_strategies", "The login page locks after five failed attempts")
        alma.learn("helena", "Test the login form", "success", strategy_used="use data-testid selectors")

        # 1. An agent whose Memory carries ALMA's block (injected into the system message).
        block = AlmaMemoryBlock(alma=alma, agent="helena", top_k=3)
        memory = Memory.from_defaults(session_id="demo", memory_blocks=[block])
        llm = MockFunctionCallingLLMWithChatMemoryOfLastCall()
        agent = FunctionAgent(llm=llm, tools=[], system_prompt="You test web apps.")
        await agent.run("How should I test the login form?", memory=memory)
        print("System messages the LLM saw:")
        for message in llm.last_chat_messages or []:
            if message.role == "system":
                print(message.content)

        # 2. A query engine over ALMA's memories.
        engine = RetrieverQueryEngine.from_args(AlmaRetriever(alma, "helena", top_k=2), llm=MockLLM())
        response = await engine.aquery("login page failed attempts")
        print("Query engine sources:", [n.node.get_content() for n in response.source_nodes])

        # 3. A workflow's Context checkpointed in ALMA and restored (in another process, it works the same).
        ctx = Context(Counter())
        await Counter().run(ctx=ctx)
        checkpoint = save_context(alma, "counter", ctx)
        runs = await Counter().run(ctx=restore_context(alma, "counter", Counter()))
        print(f"Workflow runs after restoring checkpoint {checkpoint.sequence}: {runs}")


if __name__ == "__main__":
    asyncio.run(main())
