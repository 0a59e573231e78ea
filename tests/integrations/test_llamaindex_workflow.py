"""A LlamaIndex workflow's Context saved into ALMA checkpoints and continued in another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step

from alma_core import ALMA, NotFound, SerializationError
from alma_llamaindex import alearn_from_run, arestore_context, asave_context, restore_context, save_context

# One script, two processes: `start` runs until the workflow asks for approval and saves its Context;
# `resume` restores the Context from ALMA and answers.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from llama_index.core.workflow import (
        Context, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent, Workflow, step,
    )
    from alma_core import ALMA
    from alma_llamaindex import restore_context, save_context

    class Review(Workflow):
        @step
        async def draft(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent:
            await ctx.store.set("draft", ev.text.upper())
            await ctx.store.set("pid", PID)
            return InputRequiredEvent(prefix="approve?")

        @step
        async def decide(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
            draft, pid = await ctx.store.get("draft"), await ctx.store.get("pid")
            return StopEvent(result=f"{draft} {ev.response} (drafted by {pid}, finished by {PID})")

    PID = __import__("os").getpid()

    async def start(alma):
        handler = Review(timeout=120).run(text="release notes")
        async for event in handler.stream_events():
            if isinstance(event, InputRequiredEvent):
                print("checkpoint", save_context(alma, "review-1", handler.ctx, metadata={"step": "approval"}).id)
                break
        await handler.cancel_run()

    async def resume(alma):
        workflow = Review(timeout=120)
        handler = workflow.run(ctx=restore_context(alma, "review-1", workflow))
        handler.ctx.send_event(HumanResponseEvent(response="approved"))
        print("result", await handler)

    with ALMA("wf", storage=sys.argv[1], embedder="mock") as alma:
        asyncio.run(start(alma) if sys.argv[2] == "start" else resume(alma))
    """
)


def run(script: Path, db: Path, mode: str) -> str:
    result = subprocess.run([sys.executable, str(script), str(db), mode], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_workflow_stopped_in_one_process_continues_in_another(tmp_path: Path) -> None:
    script, db = tmp_path / "review.py", tmp_path / "alma.db"
    script.write_text(SCRIPT)
    started = run(script, db, "start")
    finished = run(script, db, "resume")
    line = finished.strip().splitlines()[-1]
    assert line.startswith("result RELEASE NOTES approved (drafted by ")
    drafted_by, finished_by = (
        line.removeprefix("result RELEASE NOTES approved (drafted by ").rstrip(")").split(", finished by ")
    )
    assert drafted_by != finished_by  # two processes
    with ALMA("wf", storage=db, embedder="mock") as alma:
        [checkpoint] = alma.list_checkpoints("review-1")
        assert f"checkpoint {checkpoint.id}" in started
        assert checkpoint.metadata == {"source": "llamaindex", "step": "approval"}


class Counter(Workflow):
    @step
    async def count(self, ctx: Context, ev: StartEvent) -> StopEvent:
        total = await ctx.store.get("total", default=0) + 1
        await ctx.store.set("total", total)
        return StopEvent(result=total)


async def test_state_carries_across_runs_through_checkpoints(alma: ALMA) -> None:
    workflow = Counter()
    ctx = Context(workflow)
    assert await workflow.run(ctx=ctx) == 1
    await asave_context(alma, "counter", ctx, agent="helena")
    restored = await arestore_context(alma, "counter", Counter())
    assert await Counter().run(ctx=restored) == 2
    save_context(alma, "counter", restored)
    assert await Counter().run(ctx=restore_context(alma, "counter", Counter())) == 3
    assert [c.agent for c in alma.list_checkpoints("counter")] == [None, "helena"]


def test_missing_or_foreign_checkpoint_is_a_clear_error(alma: ALMA) -> None:
    with pytest.raises(NotFound):
        restore_context(alma, "never-saved", Counter())
    alma.checkpoint("plain", {"step": 3})
    with pytest.raises(SerializationError, match="no LlamaIndex Context"):
        restore_context(alma, "plain", Counter())
    alma.checkpoint("broken", {"llamaindex_context": {"version": 99}})
    with pytest.raises(SerializationError, match="cannot restore"):
        restore_context(alma, "broken", Counter())


class Answer(Workflow):
    @step
    async def answer(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await ctx.store.set("question", ev.question)
        if ev.question.startswith("fail"):
            raise ValueError("no index loaded")
        return StopEvent(result=f"Read the docs about {ev.question}")


async def test_a_finished_or_failed_workflow_run_becomes_a_lesson_citing_its_checkpoint(open_alma: ALMA) -> None:
    result = await alearn_from_run(open_alma, "helena", "wf-1", Answer().run(question="login tests"))
    assert result == "Read the docs about login tests"
    [lesson] = open_alma.list_memories(agent="helena", memory_types=["outcome"])
    assert (lesson.task, lesson.success, lesson.strategy_used) == ("login tests", True, result)
    checkpoint_id = lesson.metadata["run"]["checkpoint_id"]
    assert lesson.metadata["run"] == {"source": "llamaindex_workflow", "workflow_id": "wf-1",
                                      "checkpoint_id": checkpoint_id}  # fmt: skip
    ctx = await arestore_context(open_alma, "wf-1", Answer(), checkpoint_id=checkpoint_id)  # the run, opened
    assert await ctx.store.get("question") == "login tests"
    with pytest.raises(ValueError):
        await alearn_from_run(open_alma, "helena", "wf-2", Answer().run(question="fail fast"))
    failed = [o for o in open_alma.list_memories(agent="helena", memory_types=["outcome"]) if not o.success]
    assert [(o.task, o.error_message) for o in failed] == [("fail fast", "ValueError: no index loaded")]
