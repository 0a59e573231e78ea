"""MiniLM vectors of real English sentences, for bench_quantised.py --vectors (offline).

    .venv/bin/python benchmarks/gen_minilm_vectors.py OUT.npy              # 110,000 sentences (~30 min CPU)
    .venv/bin/python benchmarks/gen_minilm_vectors.py OUT.npy --n 12000    # fewer

The sentences come from docstrings of the Python files installed beside numpy (site-packages), files in a
fixed shuffled order: 40-200 characters, starting with a capital, six words or more, no code-like
characters, each once. They are embedded with `LocalEmbedder` (all-MiniLM-L6-v2, unit vectors) in
batches and written to an .npy of float32 rows as they come, so a long run can be watched.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alma_core import LocalEmbedder  # noqa: E402

_SPLIT = re.compile(r"(?<=[.!?])\s+")
_CODE_LIKE = re.compile(r"[{}<>=_`|\\]|::|>>>")


def sentences(root: Path) -> Iterator[str]:
    """Distinct docstring sentences of the .py files under `root`."""
    seen: set[str] = set()
    files = sorted(root.rglob("*.py"))
    random.Random(0).shuffle(files)
    for path in files:
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
                for s in _SPLIT.split(re.sub(r"\s+", " ", ast.get_docstring(node) or "")):
                    s = s.strip()
                    if _fits(s) and s not in seen:
                        seen.add(s)
                        yield s


def _fits(s: str) -> bool:
    return 40 <= len(s) <= 200 and s[0].isupper() and s.count(" ") >= 5 and not _CODE_LIKE.search(s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the .npy to write")
    parser.add_argument("--n", type=int, default=110_000, help="sentences (default 110,000)")
    args = parser.parse_args()
    texts = []
    for text in sentences(Path(np.__file__).resolve().parents[1]):
        texts.append(text)
        if len(texts) == args.n:
            break
    print(f"{len(texts):,} sentences", flush=True)
    embedder = LocalEmbedder(batch_size=64)
    out = np.lib.format.open_memmap(args.out, mode="w+", dtype=np.float32, shape=(len(texts), embedder.dim))
    start = time.time()
    for i in range(0, len(texts), 1024):
        out[i : i + 1024] = np.asarray(embedder.embed_documents(texts[i : i + 1024]), dtype=np.float32)
        print(f"{min(i + 1024, len(texts)):,} embedded, {time.time() - start:.0f} s", flush=True)
    out.flush()


if __name__ == "__main__":
    main()
