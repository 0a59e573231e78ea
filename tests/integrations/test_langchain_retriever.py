"""AlmaRetriever: langchain-tests' standard retriever suite, metadata, sharing, async, and an LCEL RAG chain."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_tests.integration_tests import RetrieversIntegrationTests

from alma_core import ALMA, MemoryType, ValidationError
from alma_langchain import AlmaRetriever

FACTS = [
    "Login forms need a visible password toggle test",
    "Login pages rate-limit after five failed attempts",
    "Use data-testid selectors for login buttons",
    "Login redirects go to the dashboard on success",
    "Password fields must mask input on the login form",
]


def seed(alma: ALMA, agent: str = "helena") -> None:
    for fact in FACTS:
        alma.add_domain_knowledge(agent=agent, domain="testing_strategies", fact=fact)
    alma.learn(agent=agent, task="Test the login form", outcome="success", strategy_used="fill fields, submit")


class TestAlmaRetrieverStandard(RetrieversIntegrationTests):
    """The standard suite every LangChain retriever is held to, with its default parameter name `k`."""

    @pytest.fixture(autouse=True)
    def _store(self, alma: ALMA) -> None:
        seed(alma)
        self._alma = alma

    @property
    def retriever_constructor(self) -> type[AlmaRetriever]:
        return AlmaRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"alma": self._alma, "agent": "helena"}

    @property
    def retriever_query_example(self) -> str:
        return "login form testing"


def test_k_as_langchain_spells_it_in_the_constructor_and_per_call(alma: ALMA) -> None:
    seed(alma)
    assert len(AlmaRetriever(alma=alma, agent="helena", k=3).invoke("login")) == 3
    retriever = AlmaRetriever(alma=alma, agent="helena")
    assert (retriever.k, len(retriever.invoke("login"))) == (5, 5)
    assert len(retriever.invoke("login", k=2)) == 2
    assert len(retriever.invoke("login", top_k=4)) == 4  # the older name still works
    assert AlmaRetriever(alma=alma, agent="helena", top_k=1).k == 1
    with pytest.raises(ValidationError):
        retriever.invoke("login", k=0)


def test_chat_turns_never_outrank_lessons(alma: ALMA) -> None:
    """A turn flushed from a chat (metadata kind "chat") matching the query word for word still comes last."""
    alma.learn(agent="helena", task="Test the login form", outcome="success", strategy_used="fill fields, submit")
    alma.add_domain_knowledge("helena", "testing_strategies", "Login forms lock after five tries")
    alma.add_domain_knowledge("helena", "testing_strategies", "User: how do I test the login form?",
                              metadata={"kind": "chat"})  # fmt: skip
    docs = AlmaRetriever(alma=alma, agent="helena", k=3).invoke("how do I test the login form?")
    assert docs[-1].page_content == "User: how do I test the login form?"


def test_documents_carry_memory_text_and_metadata(alma: ALMA) -> None:
    seed(alma)
    docs = AlmaRetriever(alma=alma, agent="helena", top_k=10).invoke("login rate limit")
    by_id = {d.metadata["id"]: d for d in docs}
    fact = next(m for m in alma.list_memories(agent="helena") if m.text == FACTS[1])
    doc = by_id[fact.id]
    assert doc.page_content == FACTS[1]
    assert doc.id == fact.id
    assert doc.metadata["type"] == "knowledge"
    assert doc.metadata["agent"] == "helena"
    assert doc.metadata["shared_from"] is None
    assert 0 < doc.metadata["score"] <= 1
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert {"knowledge", "outcome"} <= {d.metadata["type"] for d in docs}


def test_shared_memories_name_their_owner_and_can_be_excluded(alma: ALMA) -> None:
    seed(alma)  # helena shares with qa_lead
    shared = AlmaRetriever(alma=alma, agent="qa_lead", top_k=3).invoke("login form")
    assert shared and all(d.metadata["shared_from"] == "helena" for d in shared)
    own_only = AlmaRetriever(alma=alma, agent="qa_lead", include_shared=False).invoke("login form")
    assert own_only == []


def test_memory_types_and_user_id_filter(alma: ALMA) -> None:
    seed(alma)
    alma.add_user_preference("ana", "Prefer short login test reports")
    alma.add_user_preference("bob", "Prefer long login test reports")
    docs = AlmaRetriever(
        alma=alma, agent="helena", memory_types=[MemoryType.PREFERENCE], user_id="ana", top_k=5
    ).invoke("login test reports")
    assert [d.page_content for d in docs] == ["Prefer short login test reports"]


async def test_async_retrieval_matches_sync(alma: ALMA) -> None:
    seed(alma)
    retriever = AlmaRetriever(alma=alma, agent="helena", top_k=4)
    sync_ids = [d.id for d in retriever.invoke("login selectors")]
    async_ids = [d.id for d in await retriever.ainvoke("login selectors")]
    assert async_ids == sync_ids and len(async_ids) == 4


def test_bad_query_raises_alma_validation_error(alma: ALMA) -> None:
    with pytest.raises(ValidationError):
        AlmaRetriever(alma=alma, agent="helena").invoke("   ")


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"- {d.page_content}" for d in docs)


def test_lcel_rag_chain_puts_memories_in_the_prompt(alma: ALMA) -> None:
    seed(alma)
    retriever = AlmaRetriever(alma=alma, agent="helena", top_k=2)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Use what you remember:\n{context}"), ("human", "{question}")]
    )
    rag_input = {"context": retriever | format_docs, "question": RunnablePassthrough()}
    prompt_value = (rag_input | prompt).invoke("How many failed attempts before the login page rate-limits?")
    system, human = prompt_value.to_messages()
    assert "- Login pages rate-limit after five failed attempts" in str(system.content)
    assert human.content == "How many failed attempts before the login page rate-limits?"
    model = FakeListChatModel(responses=["Expect a lockout after five tries."])
    chain = rag_input | prompt | model | StrOutputParser()
    assert chain.invoke("failed login attempts") == "Expect a lockout after five tries."


def test_empty_store_returns_no_documents(tmp_path: Path) -> None:
    with ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock") as alma:
        assert AlmaRetriever(alma=alma, agent="anyone").invoke("nothing stored") == []
