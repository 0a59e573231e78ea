"""How `saver-format2.db` was made: a small AlmaSaver store in format 2 (checkpoint records and blob
records), written by the code of main at f7a15e0 (before format 3), from the checkout of that commit:

    PYTHONPATH=.:integrations:checkpointers python tests/langgraph/data/make_saver_format2.py OUT.db
"""

import sys
from pathlib import Path

sys.path[:0] = ["tests/langgraph", "tests"]

from langchain_core.messages import HumanMessage  # noqa: E402
from test_channel_blobs import _cfg, _chat, _graph  # noqa: E402

from alma_langgraph import AlmaSaver  # noqa: E402

with AlmaSaver.from_conn_string(Path(sys.argv[1])) as saver:
    _chat(saver, range(8))
    graph = _graph(saver)
    for turn in range(4):
        run_id = "keep" if turn < 2 else "drop"
        message = HumanMessage(f"r{turn} " + "q" * 300, id=f"r-{turn}")
        graph.invoke({"messages": [message]}, {**_cfg("runs"), "metadata": {"run_id": run_id}})
    conn = saver.storage._conn  # type: ignore[attr-defined]
    for pragma in ("PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode=DELETE", "PRAGMA page_size=1024"):
        conn.execute(pragma)
    conn.execute("VACUUM")  # small pages: a small file
