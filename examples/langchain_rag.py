"""ALMA in a LangChain RAG chain, offline: memories in the prompt, a persisted chat history, and the
run's outcome learned back. Run: `python examples/langchain_rag.py` (a fake chat model answers).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from alma_core import ALMA, MemoryType
from alma_langchain import AlmaChatMessageHistory, AlmaLearningCallback, AlmaRetriever

AGENTS = {"helena": {"domain": "coding", "can_learn": ["testing_strategies"]}}


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"- [{d.metadata['type']}] {d.page_content}" for d in docs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ALMA("demo", AGENTS, Path(tmp) / "alma.db", "mock") as alma:
        alma.add_domain_knowledge("helena", "testing_strategies", "The login page locks after five failed attempts")
        for outcome in ("success", "success", "success", "failure"):
            alma.learn("helena", "Test the login form", outcome, strategy_used="use data-testid selectors")

        # Learned strategies, warnings and facts; not the raw outcomes behind them.
        wanted = [MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN, MemoryType.KNOWLEDGE]
        retriever = AlmaRetriever(alma=alma, agent="helena", k=4, memory_types=wanted)
        prompt = ChatPromptTemplate.from_messages(
            [("system", "You test web apps. What you remember:\n{context}"), ("human", "{question}")]
        )
        rag_input = {"context": retriever | format_docs, "question": RunnablePassthrough()}
        model = FakeListChatModel(responses=["Use data-testid selectors; expect a lockout after five failures."])
        chain = rag_input | prompt | model | StrOutputParser()

        question = "How should I test the login form?"
        print("Prompt sent to the model:")
        for message in (rag_input | prompt).invoke(question).to_messages():
            print(f"  {message.type}: {message.content}")
        learning = AlmaLearningCallback(alma, "helena", strategy="RAG over ALMA memories")
        answer = chain.invoke(question, config={"callbacks": [learning]})
        print(f"Answer: {answer}")

        history = AlmaChatMessageHistory(alma, "session-1", user_id="ana")
        history.add_messages([HumanMessage(question), AIMessage(answer)])
        print(f"Stored chat turns: {len(AlmaChatMessageHistory(alma, 'session-1').messages)}")
        print(f"Outcomes learned: {alma.stats('helena').outcomes}")


if __name__ == "__main__":
    main()
