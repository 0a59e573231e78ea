"""A two-agent research crew that gets better on its second kickoff, with ALMA as its memory.

    python examples/crewai_memory.py                                   # two kickoffs, one process
    python examples/crewai_memory.py --db crew.db --runs 1 --prompts p.json   # one kickoff per process

Runs offline: a scripted fake LLM plays both agents and records every prompt it gets. On the first
kickoff the writer forgets to cite a source and the task's guardrail fails it; ALMA learns that
failure (and the researcher's success) from CrewAI's task events. On the next kickoff the writer's
prompt carries the lesson, it cites its source, and the crew succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

for _key, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OTEL_SDK_DISABLED": "true",
}.items():
    os.environ.setdefault(_key, _value)

from crewai import Agent, Crew, Process, Task  # noqa: E402
from crewai.llms.base_llm import BaseLLM  # noqa: E402

from alma_core import ALMA  # noqa: E402
from alma_crewai import AlmaCrewMemory  # noqa: E402

SOURCE = "[source: sqlite.org/wal.html]"
AGENTS = {
    "researcher": {"can_learn": ["research"], "min_occurrences_for_heuristic": 1},
    "writer": {"can_learn": ["briefs"], "cannot_learn": ["research"], "min_occurrences_for_heuristic": 1},
}


class ScriptedLLM(BaseLLM):
    """Plays the agents (and CrewAI's memory analysis) from a script; records every prompt."""

    prompts: list[str] = []

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        text = messages if isinstance(messages, str) else "\n".join(str(m.get("content", "")) for m in messages)
        self.prompts.append(text)
        if "Current Task:" not in text:  # CrewAI's own memory analysis steps
            return self._analysis(text)
        if "You are Researcher" in text:
            answer = "WAL lets readers keep reading while one writer appends. Strategy: read the official SQLite docs."
        elif "must cite" in text:  # the lesson ALMA carried over from the failed kickoff
            answer = f"SQLite WAL mode lets readers and a writer work at once. {SOURCE}"
        else:
            answer = "SQLite WAL mode lets readers and a writer work at once."
        return f"Thought: I now know the final answer\nFinal Answer: {answer}"

    @staticmethod
    def _analysis(text: str) -> str:
        if "extract discrete" in text:
            agent, result = re.search(r"Agent: (\w+)", text), re.search(r"Final Answer: (.+)", text)
            found = agent and result
            return json.dumps({"memories": [f"{agent.group(1)} note: {result.group(1)[:200]}"] if found else []})
        if "suggested_scope" in text:  # free labels, as a real LLM picks them: ALMA files them by task
            return json.dumps({"suggested_scope": "/", "categories": ["sqlite", "concurrency"], "importance": 0.6})
        return "{}"


def cites_source(output: Any):  # type: ignore[no-untyped-def]  # CrewAI rejects a string annotation here
    """The writer's guardrail: a brief must cite where its claim comes from; returns (ok, result)."""
    if SOURCE in output.raw:
        return True, output.raw
    return False, "A brief must cite its source as [source: <url>]."


def build_crew(llm: ScriptedLLM) -> Crew:
    researcher = Agent(role="Researcher", goal="Find facts", backstory="A careful analyst.", llm=llm)
    writer = Agent(role="Writer", goal="Write short briefs", backstory="A technical writer.", llm=llm)
    research = Task(description="Research how SQLite WAL mode affects readers", expected_output="key findings",
                    agent=researcher)  # fmt: skip
    brief = Task(description="Write a brief on SQLite WAL mode for engineers", expected_output="two sentences",
                 agent=writer, guardrail=cites_source, guardrail_max_retries=0)  # fmt: skip
    return Crew(name="research", agents=[researcher, writer], tasks=[research, brief], process=Process.sequential)


def kickoff(alma: ALMA, llm: ScriptedLLM) -> bool:
    """One kickoff with ALMA attached; True when the crew's brief passed its guardrail."""
    memory = AlmaCrewMemory(alma, llm=llm)
    crew = memory.attach(build_crew(llm))
    try:
        result = crew.kickoff()
        print(f"  brief: {result.raw}")
        return True
    except Exception as exc:
        print(f"  failed: {exc}".splitlines()[0])
        return False
    finally:
        memory.detach()  # waits for the task events, so the outcomes are learned before we go on
        for error in memory.errors:
            print(f"  learning error: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="ALMA SQLite file (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=2, help="kickoffs in this process")
    parser.add_argument("--prompts", help="write the prompts the fake LLM received here (JSON)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "alma.db"
        llm = ScriptedLLM(model="scripted")
        with ALMA(project_id="research-crew", agents=AGENTS, storage=db, embedder="mock") as alma:
            passed = []
            for run in range(1, args.runs + 1):
                print(f"kickoff {run} (ALMA holds {alma.stats().total} memories)")
                passed.append(kickoff(alma, llm))
            stats = alma.stats()
            print(f"ALMA now holds {stats.total} memories: {stats.outcomes} outcomes, {stats.heuristics} heuristics, "
                  f"{stats.anti_patterns} anti-patterns, {stats.knowledge} facts")  # fmt: skip
        if args.prompts:
            Path(args.prompts).write_text(json.dumps({"prompts": llm.prompts, "passed": passed}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
