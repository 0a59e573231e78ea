"""The `alma` command line: `alma demo`, `init`, `stats`, `retrieve`, `learn`, `export`, `import`, `forget`,
`reindex`.

Startup stays fast: only argparse is imported here; each command imports what it needs. Errors print one
line (`alma: error: ...`) to stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from ._alma import ALMA
    from ._config import AlmaConfig

__all__ = ["ProgressBar", "cli_config", "main", "open_alma"]

DEFAULT_CONFIG = ".alma/config.yaml"
MEMORY_TYPES = ("outcome", "heuristic", "anti_pattern", "preference", "knowledge")
_TYPES_HELP = ", ".join(MEMORY_TYPES)


class CliError(Exception):
    """A usage problem found after parsing (printed as one line, exit 2)."""


class ProgressBar:
    """A one-line progress bar on stderr (redrawn in place on a terminal, printed once when done otherwise)."""

    def __init__(self, total: int, label: str = "", width: int = 28, stream: TextIO | None = None) -> None:
        self.total, self.label, self.width = max(total, 0), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.done, self._start, self._drawn = 0, time.perf_counter(), 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s"

    def update(self, done: int | None = None, total: int | None = None) -> None:
        """Set (or advance by one) the count; redraws at most every 50 ms on a terminal."""
        if total is not None:
            self.total = total
        self.done = self.done + 1 if done is None else done
        now = time.perf_counter()
        if self._tty and (now - self._drawn >= 0.05 or self.done >= self.total):
            self._drawn = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self) -> None:
        self.stream.write(("\r" if self._tty else "") + self._line() + "\n")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"alma: error: {message} (see `{self.prog} --help`)\n")


# ---- helpers --------------------------------------------------------------------------------------


def cli_config(config_path: str | Path | None) -> AlmaConfig:
    """The config of `--config`: None (or the default path) means the built-in defaults when no file is
    there; any other path must exist (`ConfigError` otherwise, and nothing is created)."""
    from ._config import AlmaConfig, load_config

    if config_path is None or str(config_path) == DEFAULT_CONFIG:
        path = Path(DEFAULT_CONFIG)
        return load_config(path) if path.exists() else AlmaConfig()
    return load_config(config_path)


def open_alma(config_path: str | Path | None, reindex: bool | Callable[[int, int], Any] = False) -> ALMA:
    """The ALMA of a config file (`alma`, `alma mcp`, `alma serve`); see `cli_config`."""
    from ._alma import ALMA
    from .embeddings import make_embedder

    config = cli_config(config_path)
    embedder = make_embedder(config.embedding_provider, config.embedding_dim)
    if hasattr(embedder, "on_load"):  # the model loads on first use: only commands that embed say so
        embedder.on_load = lambda: print(f"alma: loading {embedder.name} (offline)...", file=sys.stderr, flush=True)
    return ALMA(config=config, embedder=embedder, reindex=reindex)


def _open(args: argparse.Namespace, reindex: bool | Callable[[int, int], Any] = False) -> ALMA:
    """The ALMA of `--config`."""
    return open_alma(args.config, reindex)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# ---- commands -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    run_demo(embedder=args.embedder, tasks=args.tasks, seed=args.seed, directory=args.dir)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from ._config import STARTER_CONFIG

    path = Path(args.config or DEFAULT_CONFIG)
    if path.exists() and not args.force:
        raise CliError(f"{path} already exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    print(f"wrote {path}; edit its agents, then try `alma learn` and `alma retrieve`")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as alma:
        stats = alma.stats(agent=args.agent)
    if args.json:
        _print_json(stats.model_dump())
        return 0
    print(f"project {alma.project_id}: {stats.total} memories")
    for name in ("outcomes", "heuristics", "anti_patterns", "preferences", "knowledge"):
        print(f"  {name:<14}{getattr(stats, name):>8}")
    for agent, n in sorted(stats.by_agent.items()):
        print(f"  agent {agent:<20}{n:>8}")
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    with _open(args) as alma:
        found = alma.retrieve(
            args.task, agent=args.agent, top_k=args.top_k, user_id=args.user_id,
            include_shared=not args.no_shared, memory_types=args.types,
        )  # fmt: skip
    if args.json:
        _print_json([{**m.to_dict(), "score": m.score} for m in found])
        return 0
    print(found.to_prompt(max_tokens=args.max_tokens) or "(no memories for this task)")
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    with _open(args) as alma:
        outcome = alma.learn(
            agent=args.agent, task=args.task, outcome=args.outcome, strategy_used=args.strategy,
            task_type=args.task_type, duration_ms=args.duration_ms, error_message=args.error,
            feedback=args.feedback,
        )  # fmt: skip
    verdict = "success" if outcome.success else "failure"
    print(f"learned {verdict} for {outcome.agent} ({outcome.task_type}): {outcome.id}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _open(args) as alma:
        n = alma.export(args.path, with_embeddings=args.with_embeddings)
    print(f"exported {n} memories to {args.path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _open(args) as alma:
        n = alma.import_(args.path)
    print(f"imported {n} memories from {args.path}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    with _open(args) as alma:
        report = alma.repair()
    if args.json:
        _print_json(report)
        return 0
    n = len(report["quarantined"])
    print(f"project {report['project_id']}: moved {n} unreadable memories to records {report['namespace']!r}")
    if "integrity" in report:
        print(f"store integrity check: {report['integrity']}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    if args.older_than_days is None and args.below_confidence is None and args.max_per_agent is None:
        raise CliError("forget needs --older-than-days, --below-confidence or --max-per-agent")
    with _open(args) as alma:
        gone = alma.forget(
            agent=args.agent, older_than_days=args.older_than_days, below_confidence=args.below_confidence,
            max_per_agent=args.max_per_agent, dry_run=args.dry_run, memory_types=args.types,
        )  # fmt: skip
    print(f"{'would forget' if args.dry_run else 'forgot'} {len(gone)} memories")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    with ProgressBar(0, "reindex") as bar:
        alma = _open(args, reindex=bar.update)  # re-embeds while opening when the store's embedder differs
        with alma:
            n = alma.reindexed if alma.reindexed is not None else alma.reindex(bar.update, batch_size=args.batch_size)
    print(f"re-embedded {n} memories with {alma.embedder.name}")
    return 0


# ---- parser ---------------------------------------------------------------------------------------


def _at_least(cast: Callable[[str], float], minimum: float, expected: str) -> Callable[[str], Any]:
    """An argparse `type`: `cast(value)`, refused as "expected <expected>" when it fails or is below `minimum`."""

    def parse(value: str) -> Any:
        try:
            number = cast(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number

    return parse


_positive = _at_least(int, 1, "a positive integer")
_non_negative = _at_least(float, 0, "a number >= 0")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", default=None, metavar="PATH",
        help=f"config file (default {DEFAULT_CONFIG}, with built-in defaults when that does not exist; a path "
        "given here must exist)",
    )  # fmt: skip
    parser = _Parser(
        prog="alma", description="ALMA: persistent, scoped, learning memory for AI agents.",
        epilog="Start with `alma demo`; then `alma init`, `alma learn` and `alma retrieve`. Docs: docs/cli.md",
    )  # fmt: skip
    from . import __version__

    parser.add_argument("--version", action="version", version=f"alma {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("demo", cmd_demo, "Run a scripted multi-agent scenario offline in a temp directory.")
    p.add_argument(
        "--embedder",
        choices=["local", "mock"],
        default="local",
        help="local = all-MiniLM-L6-v2 (default); mock = hash embeddings (fast, for tests)",
    )
    p.add_argument("--tasks", type=_positive, default=50, help="how many simulated tasks (default 50)")
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated task stream (default 7)")
    p.add_argument("--dir", metavar="DIR", help="run in DIR and keep the store (default: a temp dir, removed)")

    p = add("init", cmd_init, "Write a commented starter config to --config.")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = add("stats", cmd_stats, "Count memories per type and per agent.")
    p.add_argument("--agent", help="only this agent's memories")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("retrieve", cmd_retrieve, "Print the memories relevant to a task, as a prompt block.")
    p.add_argument("task", help="the task description")
    p.add_argument("--agent", required=True, help="the agent asking")
    p.add_argument("--top-k", type=_positive, default=5, help="at most this many per memory type (default 5)")
    p.add_argument("--user-id", help="include this user's preferences")
    p.add_argument("--no-shared", action="store_true", help="only the agent's own memories")
    p.add_argument("--types", nargs="+", choices=MEMORY_TYPES, metavar="TYPE", help=f"only these ({_TYPES_HELP})")
    p.add_argument("--max-tokens", type=_positive, help="token budget of the prompt block")
    p.add_argument("--json", action="store_true", help="print the memories as JSON, with scores")

    p = add("learn", cmd_learn, "Record a task outcome (and update heuristics and anti-patterns).")
    p.add_argument("--agent", required=True, help="the agent that did the task")
    p.add_argument("--task", required=True, help="what the task was")
    p.add_argument("--outcome", required=True, choices=["success", "failure"], help="how it went")
    p.add_argument("--strategy", default="", help="the strategy used")
    p.add_argument("--task-type", help="the category (default: inferred from the agent's can_learn)")
    p.add_argument("--duration-ms", type=int, help="how long it took")
    p.add_argument("--error", help="the error message, on failure")
    p.add_argument("--feedback", help="feedback from a user or reviewer")

    p = add("export", cmd_export, "Write every memory of the project to a JSONL file.")
    p.add_argument("path", help="the JSONL file to write")
    p.add_argument("--with-embeddings", action="store_true", help="include the vectors")

    p = add("import", cmd_import, "Load a JSONL export into the project (all lines or none).")
    p.add_argument("path", help="the JSONL file to read")

    p = add("forget", cmd_forget, "Delete old, weak or surplus memories.")
    p.add_argument("--agent", help="only this agent's memories")
    p.add_argument("--older-than-days", type=_non_negative, metavar="DAYS", help="created more than DAYS ago")
    p.add_argument("--below-confidence", type=float, metavar="X", help="confidence below X (0..1)")
    p.add_argument("--max-per-agent", type=_positive, metavar="N", help="keep each agent's newest N per type")
    p.add_argument("--types", nargs="+", choices=MEMORY_TYPES, metavar="TYPE",
                   help=f"only these ({_TYPES_HELP}); preferences go only if named")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="show how many would go; delete nothing")

    sub.add_parser(  # parsed by alma_core.mcp (see main); listed here for `alma --help`
        "mcp", help="Serve ALMA's 16 memory and workflow tools over MCP (stdio or HTTP); see `alma mcp --help`.",
        add_help=False,
    )  # fmt: skip

    sub.add_parser(  # parsed by alma_core.server (see main); listed here for `alma --help`
        "serve", help="Serve ALMA's memory as an HTTP JSON API (bearer tokens, loopback); see `alma serve --help`.",
        add_help=False,
    )  # fmt: skip

    p = add("repair", cmd_repair, "Move memories that cannot be read back to quarantine records; check the store.")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("reindex", cmd_reindex, "Re-embed every memory with the configured embedder (after changing it).")
    p.add_argument("--batch-size", type=_positive, default=256, help="memories per embedding batch (default 256)")

    from ._webhooks_cli import register as register_webhooks

    register_webhooks(sub, common)

    from ._checkpoints_cli import register as register_checkpoints

    register_checkpoints(sub, common)
    return parser


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at devnull so the interpreter's final flush prints nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `alma` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mcp"]:
        from .mcp import run_server

        return run_server(argv[1:])
    if argv[:1] == ["serve"]:
        from .server import run_server as run_http

        return run_http(argv[1:])
    args = build_parser().parse_args(argv)
    from ._errors import AlmaError

    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"alma: error: {exc}", file=sys.stderr)
        return 2
    except (AlmaError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            _silence_stdout()
            return 0
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"alma: error: {message.encode('utf-8', 'backslashreplace').decode('utf-8')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("alma: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `alma ... | head`: the reader left; exit quietly
        _silence_stdout()
        return 0


if __name__ == "__main__":
    sys.exit(main())
