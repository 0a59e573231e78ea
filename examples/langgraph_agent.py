"""A LangGraph agent with ALMA memory that crashes mid-run and resumes from its checkpoint.
Run: `python examples/langgraph_agent.py` (offline; mock embeddings, no model).

The graph is recall -> plan -> act -> learn, checkpointed by `AlmaSaver` into the same SQLite file that
holds the agent's memories. A child process runs it and is killed inside `act` (`os._exit`, no cleanup).
A fresh process then opens the file, finds the thread paused before `act`, and resumes it: recall and
plan are not re-run, and the finished run's outcome is learned, so the next task's memory includes it.
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from alma_core import ALMA
from alma_langgraph import AlmaSaver, alma_learn_node, alma_retrieve_node

AGENTS = {"helena": {"domain": "coding", "can_learn": ["testing_strategies"], "min_occurrences_for_heuristic": 2}}
CONFIG: Any = {"configurable": {"thread_id": "ticket-42"}}
TASK = "Test the checkout form"


class State(TypedDict, total=False):
    task: str
    memories: str
    strategy: str
    outcome: str
    steps: Annotated[list[str], operator.add]


def build_graph(alma: ALMA, crash_in_act: bool) -> Any:
    retrieve = alma_retrieve_node(alma, "helena")

    def recall(state: State) -> dict[str, Any]:
        return {**retrieve(state), "steps": ["recall"]}

    def plan(state: State) -> dict[str, Any]:
        known = "data-testid" in state.get("memories", "")
        return {"strategy": "use data-testid selectors" if known else "explore the page", "steps": ["plan"]}

    def act(state: State) -> dict[str, Any]:
        if crash_in_act:
            print("act: the process dies here (os._exit, like a kill -9)", flush=True)
            os._exit(3)
        return {"outcome": "success", "steps": ["act"]}

    builder = StateGraph(State)
    builder.add_node("recall", recall)
    builder.add_node("plan", plan)
    builder.add_node("act", act)
    builder.add_node("learn", alma_learn_node(alma, "helena", task_type="testing_strategies"))
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", "learn")
    builder.add_edge("learn", END)
    return builder.compile(checkpointer=AlmaSaver(alma))


def open_alma(db: Path) -> ALMA:
    return ALMA("langgraph-demo", AGENTS, db, "mock")


def crashing_run(db: Path) -> None:
    """The child process: seed two lessons, start the run, die inside `act`."""
    alma = open_alma(db)
    for _ in range(2):
        alma.learn("helena", "Test the login form", "success", "use data-testid selectors")
    build_graph(alma, crash_in_act=True).invoke({"task": TASK}, CONFIG, durability="sync")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "alma.db"
        child = subprocess.run([sys.executable, __file__, "--crash", str(db)], capture_output=True, text=True)
        print(child.stdout.strip())
        print(f"child process exited with code {child.returncode}")

        with open_alma(db) as alma:  # a fresh process's view of the same file
            graph = build_graph(alma, crash_in_act=False)
            state = graph.get_state(CONFIG)
            print(f"checkpoint found: steps so far {state.values['steps']}, next {list(state.next)}")
            print(f"strategy chosen before the crash: {state.values['strategy']!r}")
            final = graph.invoke(None, CONFIG)  # resume from the checkpoint
            print(f"resumed: steps {final['steps']}, outcome {final['outcome']!r}")
            print(f"outcomes learned for helena: {alma.stats('helena').outcomes}")
            print("memory for the next task:")
            print(alma.retrieve("Test the checkout form again", "helena").to_prompt(max_tokens=300))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--crash":
        crashing_run(Path(sys.argv[2]))
    else:
        main()
