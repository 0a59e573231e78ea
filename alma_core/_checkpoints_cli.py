"""`alma checkpoints list|show|diff|import|sweep|rekey`: LangGraph threads in the project's store, from the shell.

Registered by `cli.build_parser`; `alma_langgraph` (extra `langgraph`) is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `alma checkpoints ...` to the `alma` parser's subcommands."""
    desc = "LangGraph threads saved by AlmaSaver in the project's store."
    group = sub.add_parser("checkpoints", parents=[common], help=desc, description=desc)
    commands = group.add_subparsers(dest="checkpoints_command", metavar="COMMAND", required=True)
    # `--config` before or after the subcommand: after it, it must not reset what came before
    here = argparse.ArgumentParser(add_help=False)
    here.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file (as `alma --help`)")
    common = here

    p = commands.add_parser("list", parents=[common], help="Thread ids, or one thread's checkpoints.")
    p.add_argument("thread", nargs="?", help="a thread id: list its checkpoints, newest first")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(func=_list)

    p = commands.add_parser("show", parents=[common], help="A checkpoint's state values and metadata (JSON).")
    p.add_argument("thread", help="the thread id")
    p.add_argument("--checkpoint", help="a checkpoint id (default: the latest)")
    p.set_defaults(func=_show)

    p = commands.add_parser("diff", parents=[common], help="What changed between two checkpoints of a thread.")
    p.add_argument("thread", help="the thread id")
    p.add_argument("a", nargs="?", help="a checkpoint id (alone: what it changed from its parent; default: the latest)")
    p.add_argument("b", nargs="?", help="a later checkpoint id: what changed from A to B")
    p.add_argument("--json", action="store_true", help="print the changes as JSON, values in full")
    p.set_defaults(func=_diff)

    p = commands.add_parser(
        "import", parents=[common], help="Copy a SqliteSaver file's (or a PostgresSaver URI's) threads in."
    )
    p.add_argument("path", help="a SqliteSaver SQLite file, or a postgresql:// URI of a PostgresSaver")
    p.set_defaults(func=_import)

    p = commands.add_parser(
        "sweep", parents=[common], help="Delete threads whose TTL has passed; with --keep-last, cut long threads."
    )
    p.add_argument("--keep-last", type=int, metavar="N", help="also keep only each thread's last N checkpoints")
    p.set_defaults(func=_sweep)

    p = commands.add_parser(
        "rekey", parents=[common], help="Re-encrypt every checkpoint blob under the newest key of ALMA_CHECKPOINT_KEYS."
    )
    p.set_defaults(func=_rekey)


def _saver(args: argparse.Namespace) -> Any:
    """A saver on the config's store and project; no embedder is loaded."""
    from .cli import cli_config
    from .storage import open_storage

    try:
        from alma_langgraph import AlmaSaver
    except ImportError as exc:
        from ._errors import MissingDependency

        raise MissingDependency("langgraph", "langgraph") from exc
    config = cli_config(getattr(args, "config", None))
    return AlmaSaver(open_storage(config), project_id=config.project_id)


def _list(args: argparse.Namespace) -> int:
    saver = _saver(args)
    if args.thread is None:
        for thread in saver.thread_ids()[: args.limit]:
            print(thread)
        return 0
    config = {"configurable": {"thread_id": args.thread}}
    for t in saver.list(config, limit=args.limit):
        meta = t.metadata or {}
        conf = t.config["configurable"]
        ns = conf.get("checkpoint_ns") or "-"
        print(f"{conf['checkpoint_id']}  ns={ns}  step={meta.get('step')}  source={meta.get('source')}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from alma_langgraph import state_values

    config = {"configurable": {"thread_id": args.thread, "checkpoint_ns": ""}}
    if args.checkpoint:
        config["configurable"]["checkpoint_id"] = args.checkpoint
    found = _saver(args).get_tuple(config)
    if found is None:
        from ._errors import NotFound

        raise NotFound(f"no checkpoint of thread {args.thread!r}")
    out = {
        "checkpoint_id": found.config["configurable"]["checkpoint_id"],
        "metadata": found.metadata,
        "values": state_values(found.checkpoint.get("channel_values") or {}),
    }
    print(json.dumps(out, indent=2, ensure_ascii=False, default=_plain))
    return 0


def _state(saver: Any, thread: str, checkpoint_id: str | None) -> tuple[str | None, dict[str, Any], str | None]:
    """(checkpoint id, state values, parent id) of a root-namespace checkpoint; `NotFound` when absent."""
    from alma_langgraph import state_values

    from ._errors import NotFound

    config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
    found = saver.get_tuple(config)
    if found is None:
        raise NotFound(f"no checkpoint {checkpoint_id or '(latest)'} in thread {thread!r}")
    parent = (found.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    values = state_values(found.checkpoint.get("channel_values") or {})
    return found.config["configurable"]["checkpoint_id"], values, parent


def _diff(args: argparse.Namespace) -> int:
    saver = _saver(args)
    if args.b is not None:
        old_id, old, _ = _state(saver, args.thread, args.a)
        new_id, new, _ = _state(saver, args.thread, args.b)
    else:
        new_id, new, parent = _state(saver, args.thread, args.a)
        old_id, old, _ = _state(saver, args.thread, parent) if parent else (None, {}, None)
    added = {k: new[k] for k in new if k not in old}
    removed = {k: old[k] for k in old if k not in new}
    changed = {k: (old[k], new[k]) for k in new if k in old and _jsonable(old[k]) != _jsonable(new[k])}
    if args.json:
        out = {"from": old_id, "to": new_id, "added": added, "changed": changed, "removed": removed}
        print(json.dumps(out, indent=2, ensure_ascii=False, default=_plain))
        return 0
    print(f"{old_id or '(empty)'} -> {new_id}")
    for k, v in added.items():
        print(f"+ {k}: {_short(v)}")
    for k, (a, b) in changed.items():
        if isinstance(a, list) and isinstance(b, list) and b[: len(a)] == a:
            print(f"~ {k}: +{len(b) - len(a)} items: {_short(b[len(a) :])}")
        else:
            print(f"~ {k}: {_short(a)} -> {_short(b)}")
    for k, v in removed.items():
        print(f"- {k}: {_short(v)}")
    if not (added or changed or removed):
        print("(no change in state values)")
    return 0


def _jsonable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_plain)


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=_plain)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plain(obj: Any) -> Any:
    """JSON for typed state: an Enum's value, a model's or dataclass's fields, else its str."""
    import dataclasses
    import enum

    if isinstance(obj, enum.Enum):
        return obj.value
    if callable(getattr(obj, "model_dump", None)):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def _import(args: argparse.Namespace) -> int:
    from alma_langgraph import import_checkpoints

    counts = import_checkpoints(_saver(args), args.path)
    print(f"imported {counts['threads']} threads ({counts['checkpoints']} checkpoints, {counts['writes']} writes)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    saver = _saver(args)
    if args.keep_last is not None:
        from ._errors import ValidationError

        if args.keep_last < 1:
            raise ValidationError(f"--keep-last must be at least 1, got {args.keep_last}")
        saver.retention.keep_last = args.keep_last
    counts = saver.sweep()
    print(f"swept {counts['threads']} expired threads, {counts['checkpoints']} checkpoints beyond --keep-last")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    saver = _saver(args)
    count = saver.rotate_keys()
    print(f"re-encrypted {count} blobs under key {saver.packer.cipher.current!r}")
    return 0
