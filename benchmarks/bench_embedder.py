"""Local embedder benchmark: cold load, RSS, query latency and batch throughput, one fresh process per runtime.

    .venv/bin/python benchmarks/bench_embedder.py            # numpy, onnxruntime and sentence-transformers
    .venv/bin/python benchmarks/bench_embedder.py --quick    # fewer queries, one round
    .venv/bin/python benchmarks/bench_embedder.py --no-torch # skip sentence-transformers (its import is slow)
    .venv/bin/python benchmarks/bench_embedder.py --threads 2 --only onnxruntime   # two compute threads
    .venv/bin/python benchmarks/bench_embedder.py --threads auto --only onnxruntime-int8   # the default policy
    .venv/bin/python benchmarks/bench_embedder.py --breakdown    # where a query's CPU time goes (onnxruntime)

Every runtime runs all-MiniLM-L6-v2 through `LocalEmbedder(runtime=..., threads=1)`, so at the same settings:
one compute thread (one BLAS thread; onnxruntime intra_op_num_threads=1; torch.set_num_threads(1); `--threads`
sets another count for all, or `auto`, `LocalEmbedder`'s default: on onnxruntime two threads for each call made
while a core stands idle, one otherwise; the share of wide calls is printed), the same
texts (tests/data/minilm_sentences.json: its sentences up to 100 characters are the queries, all 200 the batch),
each query embedded without the query cache. Runtimes that are not installed are skipped, with a line saying so.
Rounds alternate the runtimes (numpy, onnxruntime, torch, numpy, ...) so that a change of load hits them alike;
the load average is printed at the start and the end.

- cold load: from a process that has imported nothing to the first vector (imports, weights, tokenizer); also
  without numpy's import (an ALMA process has numpy already), and in CPU time (the fair figure on a busy machine).
  int8 reads the model built by an earlier load from the user's cache directory when there is one (the line says
  which: `model read from the cache` or `model built`); `--no-cache` builds it at every load.
- RSS: resident memory after the first vector, and the peak after the batch (VmRSS / VmHWM).
- query p50 / p95: one short text per call, `embed_documents([text])` (what a cache miss of `embed_query` costs);
  also the process's CPU time per query (every thread's: with more than one compute thread, the pool's too).
- onnxruntime-int8: `LocalEmbedder(precision="int8")`, what the default `local` runs on onnxruntime;
  onnxruntime: `precision="float32"` (the exact model). Each with its cosine to sentence-transformers' vectors
  (tests/data/minilm_reference.npy) on the 200 sentences, min / median (every runtime prints it).
- 11-tok p50: one short query ("how do I test a login form?", 11 tokens) embedded as many times as there are
  queries, wall p50.
- batch texts/s: the 200 sentences in one `embed_documents` call (how `learn_many` and `reindex` embed), and
  the short queries in one call (a `learn_many` of short outcomes).

`--breakdown`: one process, int8 and float32 on onnxruntime, one thread (`threads=1`), each query's parts timed
in turn (CPU time of the calling thread, p50 over the queries and rounds): the tokenizer, the word rows' lookup,
the session's run (the rest of the model), a whole `embed_documents([text])`, and a graph of the model's 24
matrix products alone at the query's length (random weights of the same shapes and kinds, chained by a
`Slice`: what the products cost without anything else).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "tests" / "data" / "minilm_sentences.json"
SHORT_QUERY = "how do I test a login form?"
AIMS = {"cold load": "<= 1 s", "RSS after load": "<= 250 MB", "query p50": "<= 3 ms"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WIDE_RUNS = [0, 0]  # threads="auto": session runs on one thread, on the wide session


def _status() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM") if k in fields}


def _threads(value: str) -> int | str:
    return value if value == "auto" else int(value)


def _make(runtime: str, threads: int | str) -> tuple[Any, str]:
    """(embed_documents, thread setting) for one runtime, built after the clock started."""
    from alma_core import LocalEmbedder
    from alma_core._minilm_threads import WIDE

    if runtime.startswith("onnxruntime"):
        precision: Literal["int8", "float32"] = "int8" if runtime == "onnxruntime-int8" else "float32"
        emb = LocalEmbedder(runtime="onnxruntime", threads=threads, precision=precision)  # type: ignore[arg-type]
    else:
        emb = LocalEmbedder(runtime=runtime, threads=threads)  # type: ignore[arg-type]
    if runtime == "numpy":
        from threadpoolctl import threadpool_info

        blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads outside ALMA's calls)"
                for i in threadpool_info() if i["user_api"] == "blas"]  # fmt: skip
        return emb.embed_documents, f"{threads} BLAS thread(s) per call; {', '.join(blas) or 'no threadpoolctl'}"
    if runtime.startswith("onnxruntime"):
        import onnxruntime

        version = onnxruntime.__version__
        setting = f"onnxruntime {version}, intra_op_num_threads={threads}, {precision}"
        model = emb._load()
        if precision == "int8":
            setting += ", model read from the cache" if getattr(model, "cached", False) else ", model built"
        if threads == "auto":
            pick = model.pick

            def counted(tokens: int) -> Any:  # counts the runs that went to the wide session
                session = pick(tokens)
                WIDE_RUNS[session is model.wide] += 1
                return session

            model.pick = counted
            setting = setting.replace(f"intra_op_num_threads={threads}", f"threads=auto (1 or {WIDE} per run)")
        return emb.embed_documents, setting
    return emb.embed_documents, f"torch.set_num_threads({threads})"


def worker(runtime: str, n_queries: int, threads: int | str) -> dict[str, Any]:
    """Runs in a fresh process: measures one runtime and returns its figures."""
    start, start_cpu = time.perf_counter(), time.process_time()
    import numpy as np  # an ALMA process has it already (its store); the model's own part is timed apart

    model_start = time.perf_counter()
    embed, setting = _make(runtime, threads)
    embed(["warm up"])
    end = time.perf_counter()
    cold, cold_model, cold_cpu = end - start, end - model_start, time.process_time() - start_cpu
    rss_load = _status()["VmRSS"]

    sentences = json.loads(SENTENCES.read_text(encoding="utf-8"))
    queries = [s for s in sentences if len(s) <= 100][:n_queries]
    times, cpu, wide = [], [], list(WIDE_RUNS)
    for query in queries:
        t, c = time.perf_counter(), time.process_time()
        embed([query])
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    wide_18 = WIDE_RUNS[1] - wide[1]
    short_times, wide = [], list(WIDE_RUNS)
    for _ in queries:
        t = time.perf_counter()
        embed([SHORT_QUERY])
        short_times.append((time.perf_counter() - t) * 1000)
    if threads == "auto":
        setting += f"; wide runs: queries {wide_18}/{len(queries)}, 11-tok {WIDE_RUNS[1] - wide[1]}/{len(queries)}"
    t, c = time.perf_counter(), time.process_time()
    vectors = embed(sentences)
    batch_s, batch_cpu = time.perf_counter() - t, time.process_time() - c
    c = time.process_time()
    embed(queries)  # learn_many's kind of batch: many short texts
    short_cpu = time.process_time() - c
    assert vectors.shape == (len(sentences), 384)
    reference = np.load(ROOT / "tests" / "data" / "minilm_reference.npy").astype(np.float32)
    cosine = (vectors * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    from tokenizers import Tokenizer

    from alma_core.embeddings import minilm_path

    tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tok.no_padding()
    tokens = float(np.mean([len(tok.encode(q).ids) for q in queries]))
    return {
        "runtime": runtime, "threads": setting, "cold_s": cold, "cold_model_s": cold_model, "cold_cpu_s": cold_cpu,
        "rss_load": rss_load, "rss_peak": _status()["VmHWM"], "p50": float(np.percentile(times, 50)),
        "p95": float(np.percentile(times, 95)), "cpu_p50": float(np.percentile(cpu, 50)), "queries": len(queries),
        "p50_11": float(np.percentile(short_times, 50)),
        "tokens": tokens, "batch_per_s": len(sentences) / batch_s, "batch_cpu_per_s": len(sentences) / batch_cpu,
        "short_cpu_per_s": len(queries) / short_cpu,
        "batch": len(sentences), "cos_min": float(cosine.min()), "cos_median": float(np.median(cosine)),
    }  # fmt: skip


def run(runtime: str, n_queries: int, threads: int | str, env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The figures of one runtime, measured in a fresh process (`env`: extra environment variables)."""
    cmd = [sys.executable, __file__, "--worker", runtime, "--queries", str(n_queries), "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        print(f"  {runtime}: failed\n{result.stderr[-1500:]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _products_only(precision: str, dim: int = 384, layers: int = 6) -> Any:
    """A session of the model's matrix products alone: per layer query/key/value, attention output, up and down,
    int8 (`DynamicQuantizeMatMul`) or float32 (`Gemm`), random weights, one intra-op thread."""
    import numpy as np
    import onnxruntime as ort

    from alma_core._minilm_onnx import _FLOAT, _field, _Graph, _value_info

    rng, g = np.random.default_rng(0), _Graph()
    g.const("zero", np.array([0], np.int64)), g.const("dim", np.array([dim], np.int64))
    g.const("axis", np.array([1], np.int64))

    def product(x: str, k: int, n: int, name: str) -> str:
        bias = g.const(f"{name}.b", np.zeros(n, np.float32))
        if precision == "float32":
            return g.op("Gemm", x, g.const(f"{name}.w", rng.standard_normal((n, k)).astype(np.float32)), bias, transB=1)
        weight = g.const(f"{name}.w", rng.integers(-63, 64, (k, n)).astype(np.int8))
        scale = g.const(f"{name}.s", np.full(n, 0.01, np.float32))
        return g.op("DynamicQuantizeMatMul", x, weight, scale, "", bias, domain="com.microsoft")

    x = "x"
    for i in range(layers):
        context = g.op("Slice", product(x, dim, 3 * dim, f"{i}.qkv"), "zero", "dim", "axis")
        x = product(product(product(context, dim, dim, f"{i}.out"), dim, 4 * dim, f"{i}.up"), 4 * dim, dim, f"{i}.dn")
    g.nodes.append(_field(1, x) + _field(2, "y") + _field(4, "Identity"))
    model = g.model([_value_info("x", _FLOAT, ["tokens", dim])], [_value_info("y", _FLOAT, ["tokens", dim])])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    weights = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in g.external.items()}
    options.add_external_initializers(list(weights), list(weights.values()))
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return session, weights  # the weights must outlive the session


def _parts(precision: str, queries: list[str], rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """CPU microseconds of each part of each query (long queries, then `SHORT_QUERY`), parts in turn."""
    import numpy as np

    from alma_core import LocalEmbedder

    emb = LocalEmbedder(runtime="onnxruntime", precision=precision, threads=1)  # type: ignore[arg-type]
    emb.embed_documents(["warm up"])
    model, (products, _weights) = emb._model, _products_only(precision)
    ids = [np.asarray(model.tokenizer.encode(q).ids, dtype=np.intp)[None, :] for q in queries]
    rows = [np.zeros((i.shape[1], model.dim), np.float32) for i in ids]
    parts: dict[str, Any] = {
        "tokenizer": lambda q, i, r: model.tokenizer.encode(q),
        "word rows": lambda q, i, r: model.word[i],
        "session run": lambda q, i, r: model.encode_ids(i),
        "embed_documents": lambda q, i, r: emb.embed_documents([q]),
        "products alone": lambda q, i, r: products.run(["y"], {"x": r}),
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in parts}
    for _ in range(rounds):
        for query, i, r in zip(queries, ids, rows, strict=True):
            for name, part in parts.items():
                start = time.thread_time()
                part(query, i, r)
                times[name][query == SHORT_QUERY].append((time.thread_time() - start) * 1e6)
    return times


def breakdown(n_queries: int, rounds: int) -> None:
    """Where one query's CPU time goes, int8 and float32 on onnxruntime (see the module docstring)."""
    import numpy as np
    from tokenizers import Tokenizer

    from alma_core.embeddings import minilm_path

    sentences = json.loads(SENTENCES.read_text(encoding="utf-8"))
    queries = [s for s in sentences if len(s) <= 100][:n_queries]
    tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tok.no_padding()
    tokens = float(np.mean([len(tok.encode(q).ids) for q in queries]))
    queries += [SHORT_QUERY] * (len(queries) // 2)
    print(f"load average at start: {os.getloadavg()}; {n_queries} queries, {len(queries) - n_queries} times "
          f"{SHORT_QUERY!r}, {rounds} rounds; CPU time p50 of each part")  # fmt: skip
    for precision in ("int8", "float32"):
        times = _parts(precision, queries, rounds)
        whole = [float(np.median(times["embed_documents"][k])) for k in (0, 1)]
        print(f"  {precision:<8} {'part':<16}{f'{tokens:.1f} tokens':>16}{'share':>8}{'11 tokens':>12}{'share':>8}")
        for name, (long, short) in times.items():
            p_long, p_short = float(np.median(long)), float(np.median(short))
            print(f"  {'':<8} {name:<16}{p_long:>13.0f} us{p_long / whole[0]:>8.0%}{p_short:>9.0f} us"
                  f"{p_short / whole[1]:>8.0%}")  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 queries, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of all runtimes (default 2, quick 1)")
    parser.add_argument("--queries", type=int, default=None, help="queries per process (default 100, quick 40)")
    parser.add_argument("--no-torch", action="store_true", help="skip sentence-transformers")
    parser.add_argument(
        "--threads", type=_threads, default=1, help="compute threads of every runtime (default 1) or auto"
    )
    parser.add_argument("--only", help="comma-separated runtimes to run (numpy, onnxruntime, onnxruntime-int8, ...)")
    parser.add_argument("--breakdown", action="store_true", help="where a query's CPU time goes (one process)")
    parser.add_argument("--no-cache", action="store_true", help="build int8 at each load (ALMA_CACHE_DIR=off)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n_queries = args.queries or (40 if args.quick else 100)
    if args.breakdown:
        breakdown(n_queries, args.rounds or (1 if args.quick else 3))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, n_queries, args.threads)))
        return
    runtimes = ["numpy"]
    if _available("onnxruntime"):
        runtimes += ["onnxruntime", "onnxruntime-int8"]
    else:
        print("onnxruntime is not installed: no onnxruntime figures (pip install onnxruntime to compare)")
    if not args.no_torch:
        if _available("sentence_transformers"):
            runtimes.append("sentence-transformers")
        else:
            print("sentence-transformers is not installed: numpy only (pip install sentence-transformers to compare)")
    if args.only:
        runtimes = [r for r in runtimes if r in args.only.split(",")]
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs")
    print("env: " + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARS))
    print(f"aims: {', '.join(f'{k} {v}' for k, v in AIMS.items())}")
    columns = (
        "cold",
        "(model)",
        "(CPU)",
        "RSS load",
        "RSS peak",
        "query p50",
        "p95",
        "(CPU)",
        "11-tok",
        "batch",
        "(CPU)",
        "short",
        "cos min",
        "median",
    )
    print(f"  {'runtime':<22}" + "".join(f"{c:>10}" for c in columns))
    rounds, last = args.rounds or (1 if args.quick else 2), None
    for _ in range(rounds):
        for runtime in runtimes:
            env = {"ALMA_CACHE_DIR": "off"} if args.no_cache else None
            r = last = run(runtime, n_queries, args.threads, env) or last
            if r is None or r["runtime"] != runtime:
                continue
            print(f"  {r['runtime']:<22}{r['cold_s']:>8.2f} s{r['cold_model_s']:>8.2f} s{r['cold_cpu_s']:>8.2f} s"
                  f"{r['rss_load']:>7.0f} MB{r['rss_peak']:>7.0f} MB{r['p50']:>7.2f} ms{r['p95']:>7.1f} ms"
                  f"{r['cpu_p50']:>7.2f} ms{r['p50_11']:>7.2f} ms{r['batch_per_s']:>8.0f}/s"
                  f"{r['batch_cpu_per_s']:>8.0f}/s{r['short_cpu_per_s']:>8.0f}/s{r['cos_min']:>10.5f}"
                  f"{r['cos_median']:>10.5f}  [{r['threads']}]",
                  flush=True)  # fmt: skip
    print("cold: wall time to the first vector from a bare process; (model): the same after `import numpy`; "
          "(CPU): process CPU time; query and batch (CPU): the process's CPU time (all threads); 11-tok: wall p50 "
          f"of {SHORT_QUERY!r} (11 tokens); short: the "
          "queries in one call, texts per CPU second; cos: the batch's vectors against sentence-transformers' "
          "(committed reference)")  # fmt: skip
    if last is not None:
        print(f"queries: {last['queries']} texts of <= 100 characters ({last['tokens']:.1f} tokens on average, "
              f"[CLS] and [SEP] included); batch: {last['batch']} sentences in one call")  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
