"""all-MiniLM-L6-v2 on onnxruntime, from a graph built here (no torch, no `onnx` package).

numpy multiplies by each weight matrix through BLAS, which repacks the whole matrix on every call: for a short
query (a few rows) the repacking costs about as much as the arithmetic. onnxruntime packs constant weights once,
when the session starts. The graph is the same computation as `_minilm.MiniLM._layer`, over the weights as the
file stores them (memory-mapped, handed to the session without a copy; only query/key/value are fused into one
copy), written straight as ONNX protobuf bytes (the few message types it needs are encoded below). The graph
runs everything after the word-embedding lookup (position embeddings, LayerNorm, the layers, mean pooling, L2
normalisation): for a lone query the dozen small numpy calls around the session cost ~0.2 ms once the session
has evicted them from the caches. The tokenizer and the word rows' lookup stay those of `MiniLM`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from . import _minilm_cache
from ._minilm import MiniLM, release
from ._minilm_threads import WIDE, WIDE_AFTER, running_tasks, threads_for, usable_cores

_FLOAT, _INT8, _INT64 = 1, 3, 7  # TensorProto.DataType
_TYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.int8): _INT8, np.dtype(np.int64): _INT64}
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    """One protobuf field: a varint for an int, length-delimited for bytes and strings."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray, external: bool) -> bytes:
    """A TensorProto: small ones carry their bytes; `external` ones only say they come from the session."""
    dtype = _TYPES[array.dtype]
    head = b"".join(_field(1, d) for d in array.shape) + _field(2, dtype) + _field(8, name)
    if not external:
        return head + _field(9, np.ascontiguousarray(array).tobytes())
    where = _field(13, _field(1, "location") + _field(2, "session")) + _field(
        13, _field(1, "length") + _field(2, str(array.nbytes))
    )
    return head + where + _field(14, 1)  # data_location = EXTERNAL


def _attr(name: str, value: float | int | list[int]) -> bytes:
    if isinstance(value, list):
        return _field(1, name) + b"".join(_field(8, v) for v in value) + _field(20, _ATTR_INTS)
    if isinstance(value, float):
        return _field(1, name) + _varint(2 << 3 | 5) + struct.pack("<f", value) + _field(20, _ATTR_FLOAT)
    return _field(1, name) + _field(3, value) + _field(20, _ATTR_INT)


def _value_info(name: str, elem_type: int, dims: list[str | int]) -> bytes:
    """A tensor's type; a str dimension is symbolic (dim_param), an int fixed (dim_value)."""
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, elem_type) + _field(2, shape)))


class _Graph:
    """Nodes and initializers of one ONNX graph, serialised as a ModelProto."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.external: dict[str, np.ndarray] = {}  # weights handed to the session as they are (no copy)
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        if array.dtype not in (np.int64, np.int8):
            array = array.astype(np.float32, copy=False)  # the graph computes in float32 (a float16 file too)
        external = array.size >= 1024 and array.dtype != np.int64 and array.flags.c_contiguous
        self.inits.append(_tensor(name, array, external))
        if external:
            self.external[name] = array
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs: float | int | list[int]) -> str:
        return self.ops(op_type, 1, *inputs, domain=domain, **attrs)[0]

    def ops(
        self, op_type: str, outputs: int | list[str], *inputs: str, domain: str = "", **attrs: float | int | list[int]
    ) -> list[str]:
        """A node with `outputs` outputs (a count, or their names); "" skips an optional input."""
        self._n += 1
        outs = outputs if isinstance(outputs, list) else [f"t{self._n}_{j}" for j in range(outputs)]
        node = b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outs)
        node += _field(3, f"n{self._n}") + _field(4, op_type)
        node += b"".join(_field(5, _attr(k, v)) for k, v in attrs.items()) + (_field(7, domain) if domain else b"")
        self.nodes.append(node)
        return outs

    def model(self, inputs: list[bytes], outputs: list[bytes]) -> bytes:
        graph = b"".join(_field(1, n) for n in self.nodes) + _field(2, "minilm")
        graph += b"".join(_field(5, t) for t in self.inits)
        graph += b"".join(_field(11, i) for i in inputs) + b"".join(_field(12, o) for o in outputs)
        opsets = _field(8, _field(1, "") + _field(2, 17)) + _field(8, _field(1, "com.microsoft") + _field(2, 1))
        return _field(1, 8) + _field(2, "alma_core") + opsets + _field(7, graph)


class Int8(Protocol):
    """Which products run in int8, and how (`_minilm_int8.Int8Plan`)."""

    def linear(self, g: _Graph, x: str, w: dict[str, np.ndarray], name: str) -> str | None: ...


def _linear(g: _Graph, x: str, w: dict[str, np.ndarray], name: str, int8: Int8 | None = None) -> str:
    """x @ W.T + b with the (out, in) weight as the file stores it: onnxruntime packs it once either way; in int8
    where `int8` says so."""
    out = int8.linear(g, x, w, name) if int8 is not None else None
    if out is not None:
        return out
    return g.op("Gemm", x, g.const(f"{name}.weight", w[f"{name}.weight"]), g.const(f"{name}.bias", w[f"{name}.bias"]),
                transB=1)  # fmt: skip


def _norm(g: _Graph, x: str, w: dict[str, np.ndarray], name: str, eps: float) -> str:
    weight, bias = g.const(f"{name}.weight", w[f"{name}.weight"]), g.const(f"{name}.bias", w[f"{name}.bias"])
    return g.op("LayerNormalization", x, weight, bias, epsilon=eps)


def _layer(
    g: _Graph, x: str, w: dict[str, np.ndarray], p: str, eps: float, int8: Int8 | None, taps: dict[str, str]
) -> str:
    """One BERT layer over x (tokens, dim); `taps` gets the inputs of its products by weight name (int8
    calibration reads them)."""
    taps[f"{p}.attention.self.qkv"] = x
    qkv = g.op("Reshape", _linear(g, x, w, f"{p}.attention.self.qkv", int8), "shape5")
    qkv = g.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # (3, batch, heads, length, head)
    q, k, v = g.ops("Split", 3, qkv, axis=0)  # each (1, batch, heads, length, head)
    scores = g.op("Add", g.op("FusedMatMul", q, k, domain="com.microsoft", transB=1), "bias")
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    context = taps[f"{p}.attention.output.dense"] = g.op("Reshape", g.op("Transpose", context, perm=[1, 3, 0, 2, 4]),
                                                          "shape2")  # fmt: skip
    x = _norm(g, g.op("Add", _linear(g, context, w, f"{p}.attention.output.dense", int8), x), w,
              f"{p}.attention.output.LayerNorm", eps)  # fmt: skip
    taps[f"{p}.intermediate.dense"] = x
    h = taps[f"{p}.output.dense"] = g.op("Gelu", _linear(g, x, w, f"{p}.intermediate.dense", int8),
                                         domain="com.microsoft")  # fmt: skip
    return _norm(g, g.op("Add", _linear(g, h, w, f"{p}.output.dense", int8), x), w, f"{p}.output.LayerNorm", eps)


def _embed(g: _Graph, w: dict[str, np.ndarray], position: np.ndarray, eps: float) -> str:
    """The first layer's input (tokens, dim): the tokens' word rows (`words`, gathered by the caller from the
    memory-mapped table: as an initializer, onnxruntime would copy all 47 MB of it) plus the position and token
    type 0 embeddings (`position`, summed once), normalised."""
    length = g.op("Shape", "words", start=1, end=2)
    positions = g.op("Slice", g.const("position", position), "zero1", length, "zero1")
    x = g.op("Reshape", g.op("Add", "words", positions), "shape2")
    return _norm(g, x, w, "embeddings.LayerNorm", eps)


def _masks(g: _Graph, heads: int) -> str:
    """From words and mask (batch, length; 1 for a real token, 0 for padding): the attention's `bias` (batch, 1, 1,
    length), 0 or -1e9, the shapes the layers reshape to (`shape5`, `shape3`), and the pooling weights (batch, 1,
    length): 1 / real tokens, or 0."""
    mask4 = g.op("Unsqueeze", "mask", g.const("axes12", np.array([1, 2], dtype=np.int64)))
    g.ops("Mul", ["bias"], g.op("Sub", mask4, g.const("one", np.array(1, np.float32))),
          g.const("big", np.array(1e9, np.float32)))  # fmt: skip
    shape = g.op("Shape", "words", start=0, end=2)
    g.ops("Concat", ["shape5"], shape, g.const("qkv_dims", np.array([3, heads, -1], dtype=np.int64)), axis=0)
    g.ops("Concat", ["shape3"], shape, g.const("minus1", np.array([-1], dtype=np.int64)), axis=0)
    weights = g.op("Div", "mask", g.op("ReduceSum", "mask", g.const("one1", np.array([1], np.int64)), keepdims=1))
    return g.op("Unsqueeze", weights, g.const("axis1", np.array([1], dtype=np.int64)))


def fuse_qkv(w: dict[str, np.ndarray], p: str, scale: float) -> dict[str, np.ndarray]:
    """Query, key and value of layer `p` as one (3 dim, dim) weight and bias, the attention scale folded in."""
    att = f"{p}.attention.self"
    weights = [w[f"{att}.{n}.weight"] for n in ("query", "key", "value")]
    biases = [w[f"{att}.{n}.bias"] for n in ("query", "key", "value")]
    weight, bias = np.concatenate(weights).astype(np.float32), np.concatenate(biases).astype(np.float32)
    dim = weights[0].shape[0]
    weight[:dim] *= np.float32(scale)
    bias[:dim] *= np.float32(scale)
    return {f"{att}.qkv.weight": weight, f"{att}.qkv.bias": bias}


def build_model(
    w: dict[str, np.ndarray],
    config: tuple[int, int, int, float],
    position: np.ndarray,
    *,
    int8: Int8 | None = None,
    taps: bool = False,
) -> tuple[bytes, dict[str, np.ndarray]]:
    """ONNX bytes of the whole model over the weights `w` (names as in the safetensors file, plus each layer's
    `fuse_qkv`), and the large weights they name, for `add_external_initializers`. `config`: layers, heads, dim,
    LayerNorm epsilon; `position`: the position plus token-type embeddings.

    Inputs words (batch, length, dim), the tokens' rows of the word-embedding table, and mask (batch, length), 1
    for a real token and 0 for padding; output y (batch, dim), the mean-pooled, L2-normalised vectors, and with
    `taps` the input of each product (tokens, in), named by its weight."""
    layers, heads, dim, eps = config
    g, tapped = _Graph(), dict[str, str]()
    g.const("shape2", np.array([-1, dim], dtype=np.int64))
    g.const("zero1", np.array([0], dtype=np.int64))
    pool = _masks(g, heads)
    x = _embed(g, w, position, eps)
    for i in range(layers):
        x = _layer(g, x, w, f"encoder.layer.{i}", eps, int8, tapped)
    pooled = g.op("Reshape", g.op("MatMul", pool, g.op("Reshape", x, "shape3")), "shape2")
    g.ops("LpNormalization", ["y"], pooled, axis=-1, p=2)
    outputs = [_value_info("y", _FLOAT, ["batch", dim])]
    for name, tensor in tapped.items() if taps else ():
        g.nodes.append(_field(1, tensor) + _field(2, name) + _field(4, "Identity"))
        outputs.append(_value_info(name, _FLOAT, ["tokens", w[f"{name}.weight"].shape[1]]))
    inputs = [_value_info("words", _FLOAT, ["batch", "length", dim]), _value_info("mask", _FLOAT, ["batch", "length"])]
    return g.model(inputs, outputs), g.external


class OnnxMiniLM(MiniLM):
    """`MiniLM` whose transformer layers run on onnxruntime (one intra-op thread unless `threads` says more);
    `precision="int8"` runs most products in int8 (`_minilm_int8.py`), built once per machine and then read from
    the user's cache directory (`_minilm_cache.py`). `threads="auto"`: each run picks a one-thread or a `WIDE`-thread
    session over the same weights from the machine's load at that instant (`_minilm_threads.py`); the wide one is
    built on a thread of its own once runs have asked for it (`WIDE_AFTER`), never at load."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int | Literal["auto"] | None = 1,
        max_tokens: int | None = None,
        precision: Literal["float32", "int8"] = "float32",
    ) -> None:
        import onnxruntime  # first: without it, fail before reading any weights

        self._ort, self._threads, self.precision = onnxruntime, threads, precision
        self.wide: Any = None  # threads="auto": the session with `WIDE` threads, once built (until then: `session`)
        self._wide_lock, self._wide_done, self._wanted = threading.Lock(), threading.Event(), 0
        self._weights_of: dict[str, np.ndarray] | None = None
        self.cached = False  # whether the int8 model was read from the cache (not built at this load)
        self.cache_key: str | None = None  # int8: its key in the cache (`_minilm_cache.int8_key`)
        self._digest: _Digest | None = None
        self._cores = 1  # threads="auto": the usable cores, once loaded (until then, calibration: one thread)
        super().__init__(model_dir, max_tokens=max_tokens)

    def _load_layers(self, w: dict[str, np.ndarray], count: int) -> None:
        """An onnxruntime session over the file's weights, read in place (memory-mapped) and packed once by the
        session for its kernels; only query/key/value are copied (fused). int8: the built model from the cache if
        it holds one for these weights and this code, else built (calibrated, quantized) and then kept there."""
        self.layers, self.session = [], None
        config = (count, self.heads, self.dim, self.eps)
        self._ones = np.ones((1, self.max_tokens), dtype=np.float32)  # a lone text's mask: a view of its row
        threads = 1 if self._threads == "auto" else self._threads
        key = None
        if (weights := self._digest.result() if self._digest is not None else None) is not None:
            from ._minilm_int8 import calibration_ids

            ids = calibration_ids(self.tokenizer)[0]
            key = self.cache_key = _minilm_cache.int8_key(weights, ids, self.word[ids], (*config, self.max_tokens))
            if (cached := _minilm_cache.load(key)) is not None:
                with contextlib.suppress(Exception):  # a session that will not start from it: build afresh
                    self.session = self._session(cached[0], cached[1], threads=threads)
                    self._built, self.cached = cached[:2], True
                release(cached[2])
        if not self.cached:
            self._built = self._build(w, config)
            self.session = self._session(*self._built, threads=threads)
            if key is not None:
                _minilm_cache.store(key, *self._built)
        self._cores, self._pid = usable_cores() if self._threads == "auto" else 1, os.getpid()

    def _mapped(self, buf: mmap.mmap) -> None:
        """int8 with a cache directory: the weights' digest, the cache key's part, starts on a thread now (hashing
        lets go of the GIL) and runs beside the tokenizer's load."""
        if self.precision == "int8" and _minilm_cache.cache_dir() is not None:
            self._digest = _Digest(buf)

    def _build(self, w: dict[str, np.ndarray], config: tuple[int, int, int, float]) -> tuple[bytes, dict[str, Any]]:
        """The graph's bytes and the arrays it names; int8: calibrated on a float32 session, then quantized."""
        scale = 1 / np.sqrt(self.dim // self.heads)
        w, int8 = dict(w), None
        for i in range(config[0]):
            w.update(fuse_qkv(w, f"encoder.layer.{i}", scale))
        if self.precision == "int8":
            from ._minilm_int8 import Int8Plan

            self.session = self._session(*build_model(w, config, self.position, taps=True), packed=False)
            int8 = Int8Plan.calibrate(self, w)
            w = int8.fold(w)
        return build_model(w, config, self.position, int8=int8)

    def _session(
        self, model: bytes, weights: dict[str, np.ndarray], packed: bool = True, threads: int | None = 1
    ) -> Any:
        """A session over `model` with `threads` intra-op threads (None: onnxruntime's default); `packed=False`
        for one that runs a few times only (int8 calibration): no weight packing and no graph optimisation, which
        would take longer than its runs. int8 is not optimised either: its graph is written as it should run (the
        optimiser changed no vector, bit for bit, nor a run's time, and took ~10 ms of the session's start). A pool's
        threads spin only while a run lasts (`force_spinning_stop`): between calls they sleep and take no CPU."""
        ort = self._ort
        options = ort.SessionOptions()
        if not packed:
            options.add_session_config_entry("session.disable_prepacking", "1")
        if not packed or self.precision == "int8":
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        if threads != 1:
            options.add_session_config_entry("session.force_spinning_stop", "1")
        options.log_severity_level = 3
        if weights is not self._weights_of:  # kept alive: the sessions read them in place
            self._weights = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in weights.items()}
            self._weights_of = weights
        options.add_external_initializers(list(self._weights), list(self._weights.values()))
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def encode_ids(self, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors of a (batch, length) id matrix, all in the session (the
        embeddings and pooling too: a lone query's few microseconds of numpy calls add up once the session has
        run); `mask` marks real tokens (None: no padding)."""
        return self.run(ids, mask, ["y"])[0]  # type: ignore[no-any-return]

    def pick(self, tokens: int) -> Any:
        """The session for a run of `tokens` tokens: the wide one while a core stands idle (threads="auto"), once it
        is built. Not in a forked child: a pool's thread stays in the parent (a run of one there hung)."""
        if self._cores < WIDE or os.getpid() != self._pid:
            return self.session
        if threads_for(tokens, running_tasks(), self._cores) == 1:
            return self.session
        return self.wide or self._widen()

    def _widen(self) -> Any:
        """The one-thread session for this run; the `WIDE_AFTER`th run that asked for the wide session starts its
        build on a thread (the idle core), so no run waits for it and a process that embeds once never builds it."""
        with self._wide_lock:
            self._wanted += 1
            if self._wanted == WIDE_AFTER:  # not a daemon: an exit waits for it rather than tear onnxruntime down
                threading.Thread(target=self._build_wide, name="alma-minilm-wide").start()
        return self.session

    def _build_wide(self) -> None:
        with contextlib.suppress(Exception):  # on failure every run stays on the one-thread session
            self.wide = self._session(*self._built, threads=WIDE)
        self._wide_done.set()

    def wait_wide(self, timeout: float | None = None) -> bool:
        """Wait until the wide session's build (once started) has ended; whether there is one."""
        return self._wide_done.wait(timeout) and self.wide is not None

    def run(self, ids: np.ndarray, mask: np.ndarray | None, outputs: list[str]) -> list[Any]:
        """The session's `outputs` for a (batch, length) id matrix and its mask of real tokens (None: none padded)."""
        if mask is None:
            mask = self._ones[:, : ids.shape[1]] if len(ids) == 1 else np.ones(ids.shape, dtype=np.float32)
        words = self.word[ids].astype(np.float32, copy=False)  # a float16 file's rows too
        feeds = {"words": words, "mask": mask.astype(np.float32, copy=False)}
        return self.pick(ids.size).run(outputs, feeds)  # type: ignore[no-any-return]


class _Digest(threading.Thread):
    """`_minilm_cache.weights_digest` of a mapped weights file, computed on a thread of its own; None on error."""

    def __init__(self, buf: mmap.mmap) -> None:
        super().__init__(name="alma-minilm-digest")
        self._buf = buf
        self._value: bytes | None = None
        self.start()

    def run(self) -> None:
        with contextlib.suppress(Exception):
            self._value = _minilm_cache.weights_digest(self._buf)

    def result(self) -> bytes | None:
        self.join()
        return self._value
