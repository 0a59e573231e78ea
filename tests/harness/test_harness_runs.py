"""The harness loop: retrieve, prompt, execute, judge, learn; the next run's prompt carries the lesson."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

from alma_core import ALMA, Context, Harness, RunResult, Setting, ValidationError, create_harness
from alma_core.harness import Agent, Tool

TASK = "Test the login form"


def selector_executor(prompt: str, context: Context) -> dict[str, Any]:
    """Fails with XPath until the prompt warns against it, then uses data-testid."""
    if "Don't: use xpath selectors" in prompt:
        return {"output": "tested with data-testid", "strategy": "use data-testid selectors"}
    return {"output": "", "strategy": "use xpath selectors"}


def test_a_run_learns_and_the_next_prompt_contains_the_lesson(coding_alma: ALMA) -> None:
    harness = create_harness("coding", "helena", coding_alma, executor=selector_executor)
    first = harness.run(Context(task=TASK))
    assert not first.success and first.error == "empty output"
    assert "What you learned" not in first.prompt
    assert first.outcome is not None and first.outcome.task_type == "testing_strategies"
    harness.run(Context(task=TASK))  # second failure of the same strategy forms an anti-pattern
    third = harness.run(Context(task=TASK))
    assert "Don't: use xpath selectors" in third.prompt
    assert third.success and third.strategy == "use data-testid selectors"
    assert [m.pattern for m in third.memories.anti_patterns] == ["use xpath selectors"]
    harness.run(Context(task=TASK))
    fifth = harness.run(Context(task=TASK))
    assert "When testing strategies tasks: use data-testid selectors" in fifth.prompt  # min_occurrences 2
    assert coding_alma.stats("helena").outcomes == 5


def test_prompt_has_setting_tools_constraints_memories_and_task_inputs(coding_alma: ALMA) -> None:
    coding_alma.add_domain_knowledge("helena", "testing_strategies", "The login page locks after five failures")
    setting = Setting("web QA", "A staging site.", [Tool("browser", "drives Chrome"), "curl"], ["never touch prod"])
    harness = create_harness("coding", "helena", coding_alma, executor=lambda p: "done", setting=setting)
    result = harness.run(Context(task=TASK, inputs={"url": "https://staging.example"}))
    for part in (
        "## Setting: web QA",
        "- browser: drives Chrome",
        "- curl",
        "- never touch prod",
        "locks after five failures",
        "## Task\nTest the login form",
        "- url: https://staging.example",
    ):
        assert part in result.prompt
    assert result.prompt.index("locks after five") < result.prompt.index("## Task")
    assert result.memories.knowledge and result.success and result.text == "done"


def test_the_default_evaluator_fails_exceptions_and_empty_output(coding_alma: ALMA) -> None:
    def boom(prompt: str) -> str:
        raise RuntimeError("browser crashed")

    result = create_harness("coding", "helena", coding_alma, executor=boom).run(Context(task=TASK, strategy="click"))
    assert not result.success and result.error == "RuntimeError: browser crashed"
    assert result.outcome is not None and result.outcome.error_message == "RuntimeError: browser crashed"
    blank = create_harness("coding", "helena", coding_alma, executor=lambda p: "   ").run(Context(task=TASK))
    assert not blank.success and blank.error == "empty output"


@pytest.mark.parametrize(
    ("evaluator", "success", "error"),
    [
        (lambda ctx, out: "PASS" in out, False, "judged a failure by the evaluator"),
        (lambda ctx, out: (False, "3 assertions failed"), False, "3 assertions failed"),
        (lambda ctx, out: (True, None), True, None),
        (lambda ctx, out: ctx.inputs["expected"] in out, True, None),
    ],
)
def test_a_custom_evaluator_decides_success_and_the_error(
    coding_alma: ALMA, evaluator: Any, success: bool, error: str | None
) -> None:
    harness = create_harness("coding", "helena", coding_alma, executor=lambda p: "all green", evaluator=evaluator)
    result = harness.run(Context(task=TASK, inputs={"expected": "green"}))
    assert (result.success, result.error) == (success, error)
    assert result.outcome is not None and result.outcome.success is success


def test_a_langchain_fake_chat_model_is_an_executor(coding_alma: ALMA) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("Checked empty fields and a valid login")]))
    result = create_harness("coding", "helena", coding_alma, executor=model).run(Context(task=TASK, strategy="s1"))
    assert isinstance(result.output, AIMessage)
    assert result.text == "Checked empty fields and a valid login" and result.success


def test_a_runnable_and_a_tool_calling_chat_model_are_executors(coding_alma: ALMA, fake_model: Any) -> None:
    seen: list[str] = []
    runnable = RunnableLambda(lambda prompt: seen.append(prompt) or {"output": "ok", "strategy": "from runnable"})
    result = create_harness("coding", "helena", coding_alma, executor=runnable).run(Context(task=TASK))
    assert result.strategy == "from runnable" and result.success and seen == [result.prompt]
    model = fake_model(text="chat answer")
    assert create_harness("coding", "helena", coding_alma, executor=model).run(Context(task=TASK)).text == "chat answer"


async def test_arun_uses_ainvoke_and_learns(coding_alma: ALMA) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("async answer")]))
    result = await create_harness("coding", "helena", coding_alma, executor=model).arun(Context(task=TASK))
    assert result.text == "async answer" and result.success
    assert coding_alma.stats("helena").outcomes == 1


async def test_arun_with_plain_and_coroutine_callables(coding_alma: ALMA) -> None:
    async def coro(prompt: str, context: Context) -> str:
        await asyncio.sleep(0)
        return f"done {context.task}"

    first = await create_harness("coding", "helena", coding_alma, executor=coro).arun(Context(task=TASK))
    second = await create_harness("coding", "helena", coding_alma, executor=lambda p: "sync").arun(Context(task=TASK))
    assert first.text == "done Test the login form" and second.text == "sync"
    assert isinstance(second, RunResult) and coding_alma.stats("helena").outcomes == 2


def test_bad_harness_input_is_refused_before_anything_is_stored(coding_alma: ALMA) -> None:
    with pytest.raises(ValidationError, match=r"must have \.invoke or be callable"):
        create_harness("coding", "helena", coding_alma, executor=42)
    harness = create_harness("coding", "helena", coding_alma, executor=lambda p: "x")
    with pytest.raises(ValidationError, match="takes a Context"):
        harness.run(TASK)  # type: ignore[arg-type]
    assert coding_alma.stats().total == 0


def test_an_agent_object_with_its_own_executor_and_scopes(coding_alma: ALMA) -> None:
    agent = Agent("helena", scopes=["selector_patterns"], executor=lambda p: "ok", role="QA engineer")
    harness = Harness(Setting(), agent, coding_alma)
    result = harness.run(Context(task="Pick a stable locator", user="ana"))
    assert "## You are helena, QA engineer" in result.prompt
    assert result.outcome is not None and result.outcome.task_type == "selector_patterns"
    assert result.outcome.metadata["user_id"] == "ana"


def test_without_an_executor_run_returns_the_prepared_prompt_and_learns_nothing(coding_alma: ALMA) -> None:
    coding_alma.learn(agent="helena", task=TASK, outcome="failure", strategy_used="sleep(5000) before asserting",
                      task_type="testing_strategies", error_message="flaky")  # fmt: skip
    coding_alma.add_anti_pattern("helena", "sleep(5000) before asserting", "flaky", "wait for the selector",
                                 task_type="testing_strategies")  # fmt: skip
    harness = create_harness("coding", "helena", coding_alma)
    prepared = harness.run(Context(task=TASK))
    assert not prepared.executed and prepared.output is None and prepared.outcome is None
    assert TASK in prepared.prompt and "sleep(5000)" in prepared.prompt
    assert coding_alma.stats("helena").outcomes == 1  # nothing learned by preparing
    done = harness.complete(prepared, {"output": "all 3 cases pass", "strategy": "wait for the selector"})
    assert done.success and done.outcome is not None and done.outcome.strategy_used == "wait for the selector"
    assert coding_alma.stats("helena").outcomes == 2
    with pytest.raises(ValidationError, match="prepared run"):
        harness.complete(done, "again")


def test_a_context_of_another_project_runs_in_that_project_of_the_same_store(coding_alma: ALMA) -> None:
    harness = create_harness("coding", "helena", coding_alma, executor=lambda p: "ok")
    result = harness.run(Context(task=TASK, project_id="my-app"))
    assert result.outcome is not None and result.outcome.project_id == "my-app"
    assert coding_alma.stats().total == 0  # the ALMA's own project is untouched
    other = ALMA("my-app", storage=coding_alma.storage, embedder=coding_alma.embedder, config=coding_alma.config)
    assert other.stats("helena").outcomes == 1
