"""AutoLearner: a chat model's structured output becomes memories through the scoped write path."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from alma_core import ALMA, AutoLearner, ConfigError, ValidationError
from alma_core.extraction import Extraction

CONVERSATION = [
    HumanMessage("Please test the signup form. And from now on, always report results as a table."),
    AIMessage("Done: I used data-testid selectors and every check passed."),
    HumanMessage("Great. Note that signup emails must be unique."),
]
PAYLOAD = {
    "outcomes": [
        {"task": "Test the signup form", "success": True, "strategy_used": "use data-testid selectors",
         "task_type": "testing_strategies"},
        {"task": "Tune the SQL query", "success": True, "strategy_used": "add an index",
         "task_type": "database_queries"},
        {"task": "", "success": False},
    ],
    "preferences": [{"preference": "Report results as a table", "category": "selector_patterns"}],
    "facts": [
        {"fact": "Signup emails must be unique", "domain": "testing_strategies"},
        {"fact": "The billing service retries twice", "domain": "backend_logic"},
    ],
}  # fmt: skip


def test_valid_items_are_stored_and_out_of_scope_ones_refused(coding_alma: ALMA, fake_model: Any) -> None:
    learner = AutoLearner(coding_alma, fake_model(payload=PAYLOAD))
    result = learner.learn_from_conversation(CONVERSATION, agent="helena", user_id="ana")
    assert result.extracted_count == 6
    stored = sorted(m.text for m in result.stored)
    assert stored == ["Report results as a table", "Signup emails must be unique",
                      "Test the signup form | use data-testid selectors"]  # fmt: skip
    reasons = {r.item.get("task", r.item.get("fact")): r.reason for r in result.refused}
    assert reasons["Tune the SQL query"].startswith("out of scope")
    assert reasons["The billing service retries twice"].startswith("out of scope")
    assert reasons[""].startswith("invalid")
    stats = coding_alma.stats("helena")
    assert (stats.outcomes, stats.preferences, stats.knowledge, stats.total) == (1, 1, 1, 3)
    prefs = coding_alma.retrieve("report format", "helena", user_id="ana").preferences
    assert [p.preference for p in prefs] == ["Report results as a table"]


def test_the_model_sees_the_transcript_and_a_system_prompt(coding_alma: ALMA, fake_model: Any) -> None:
    model = fake_model(payload={"outcomes": []}, seen=[])
    AutoLearner(coding_alma, model).learn_from_conversation(
        [{"role": "user", "content": "hello"}, ("assistant", "hi there")], agent="helena"
    )
    system, human = model.seen[0]
    assert "extract durable lessons" in system.content
    assert "user: hello\nassistant: hi there" in human.content


def test_a_preference_without_a_user_is_refused(coding_alma: ALMA, fake_model: Any) -> None:
    payload = {"preferences": [{"preference": "Be brief", "category": "testing_strategies"}]}
    result = AutoLearner(coding_alma, fake_model(payload=payload)).learn_from_conversation(CONVERSATION, "helena")
    assert result.stored == [] and "needs the user_id" in result.refused[0].reason
    assert coding_alma.stats().total == 0


def test_an_empty_extraction_stores_nothing(coding_alma: ALMA, fake_model: Any) -> None:
    result = AutoLearner(coding_alma, fake_model(payload={})).learn_from_conversation(CONVERSATION, "helena")
    assert (result.extracted_count, result.stored, result.refused) == (0, [], [])


async def test_the_async_twin_stores_the_same(coding_alma: ALMA, fake_model: Any) -> None:
    learner = AutoLearner(coding_alma, fake_model(payload=PAYLOAD))
    result = await learner.alearn_from_conversation(CONVERSATION, agent="helena", user_id="ana")
    assert result.stored_count == 3 and len(result.refused) == 3


def test_bad_input_is_refused(coding_alma: ALMA, fake_model: Any) -> None:
    with pytest.raises(ValidationError, match="with_structured_output"):
        AutoLearner(coding_alma, object())
    learner = AutoLearner(coding_alma, fake_model(payload=PAYLOAD))
    with pytest.raises(ValidationError, match="no messages"):
        learner.learn_from_conversation([], "helena")
    with pytest.raises(KeyError, match="unknown agent"):
        learner.learn_from_conversation(CONVERSATION, "nobody")
    assert learner.store(Extraction(), "helena").extracted_count == 0


SEED_CONVERSATION = [
    {"role": "user", "content": "Test the login form"},
    {"role": "assistant", "content": "I used incremental validation which worked well..."},
]


def test_without_a_model_the_offline_extractor_learns_the_stated_strategy(coding_alma: ALMA) -> None:
    results = AutoLearner(coding_alma).learn_from_conversation(messages=SEED_CONVERSATION, agent="Helena")
    assert results["extracted_count"] == results.extracted_count == 1 and results["stored_count"] == 1
    (outcome,) = results.stored
    assert (outcome.agent, outcome.task, outcome.success) == ("helena", "Test the login form", True)  # type: ignore[union-attr]
    assert outcome.strategy_used == "incremental validation"  # type: ignore[union-attr]
    failed = AutoLearner(coding_alma).learn_from_conversation(
        [("user", "Fix the flaky checkout test. I prefer explicit waits."),
         ("assistant", "I tried sleep(5000) before the click, but it still failed.")], "helena", user_id="ana",
    )  # fmt: skip
    (outcome,) = failed.stored
    assert not outcome.success and outcome.strategy_used == "sleep(5000) before the click"  # type: ignore[union-attr]
    (refused,) = failed.refused  # helena may not learn a "general" preference: scopes hold offline too
    assert refused.kind == "preference" and "explicit waits" in refused.item["preference"]
    assert "out of scope" in refused.reason
    nothing = AutoLearner(coding_alma).learn_from_conversation([("user", "hi"), ("assistant", "hello")], "helena")
    assert nothing.extracted_count == 0
    with pytest.raises(ValidationError, match="no messages"):
        AutoLearner(coding_alma).learn_from_conversation([], "helena")
    with pytest.raises(KeyError):
        results["nope"]


def test_the_configs_llm_is_used_when_none_is_passed(coding_alma: ALMA, fake_model: Any, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys
    import types

    module = types.ModuleType("seed_llm_for_test")
    module.model = fake_model(payload=PAYLOAD)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "seed_llm_for_test", module)
    coding_alma.config.llm = "seed_llm_for_test:model"
    learner = AutoLearner(coding_alma)
    assert learner.llm is module.model  # type: ignore[attr-defined]
    assert learner.learn_from_conversation(CONVERSATION, "helena").extracted_count == 6
    coding_alma.config.llm = "seed_llm_for_test:missing"
    with pytest.raises(ConfigError, match="cannot load"):
        AutoLearner(coding_alma)
