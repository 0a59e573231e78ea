"""all-MiniLM-L6-v2's transformer layers on onnxruntime, from a graph built here (no torch, no `onnx` package).

numpy multiplies by each weight matrix through BLAS, which repacks the whole matrix on every call: for a short
query (a few rows) the repacking costs about as much as the arithmetic. onnxruntime packs constant weights once,
when the session starts. The graph is the same computation as `_minilm.MiniLM._layer`, over the weights as the
file stores them (memory-mapped, handed to the session without a copy; only query/key/value are fused into one
copy), written straight as ONNX protobuf bytes (the few message types it needs are encoded below); the
embeddings, the pooling and the tokenizer stay those of `MiniLM`.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ._minilm import MiniLM

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
        self._n += 1
        out = f"t{self._n}"
        node = b"".join(_field(1, i) for i in inputs) + _field(2, out) + _field(3, f"n{self._n}") + _field(4, op_type)
        node += b"".join(_field(5, _attr(k, v)) for k, v in attrs.items()) + (_field(7, domain) if domain else b"")
        self.nodes.append(node)
        return out

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
    """One BERT layer; `taps` gets the inputs of its products by weight name (int8 calibration reads them)."""
    taps[f"{p}.attention.self.qkv"] = x
    qkv = g.op("Reshape", _linear(g, x, w, f"{p}.attention.self.qkv", int8), "shape5")
    qkv = g.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # (3, batch, heads, length, head)
    q, k, v = (g.op("Gather", qkv, f"idx{j}", axis=0) for j in range(3))
    scores = g.op("Add", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])), "bias")
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    context = taps[f"{p}.attention.output.dense"] = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]),
                                                          "shape2")  # fmt: skip
    x = _norm(g, g.op("Add", _linear(g, context, w, f"{p}.attention.output.dense", int8), x), w,
              f"{p}.attention.output.LayerNorm", eps)  # fmt: skip
    taps[f"{p}.intermediate.dense"] = x
    h = taps[f"{p}.output.dense"] = g.op("Gelu", _linear(g, x, w, f"{p}.intermediate.dense", int8),
                                         domain="com.microsoft")  # fmt: skip
    return _norm(g, g.op("Add", _linear(g, h, w, f"{p}.output.dense", int8), x), w, f"{p}.output.LayerNorm", eps)


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
    w: dict[str, np.ndarray], layers: int, eps: float, dim: int, *, int8: Int8 | None = None, taps: bool = False
) -> tuple[bytes, dict[str, np.ndarray]]:
    """ONNX bytes of the transformer layers over the weights `w` (names as in the safetensors file, plus each
    layer's `fuse_qkv`), and the large weights they name, for `add_external_initializers`.

    Inputs x (tokens, dim), bias (batch, 1, 1, length), shape5 (batch, length, 3, heads, head); output y, and
    with `taps` the input of each product, named by its weight (int8 calibration)."""
    g, tapped = _Graph(), dict[str, str]()
    for j in range(3):
        g.const(f"idx{j}", np.array(j, dtype=np.int64))
    g.const("shape2", np.array([-1, dim], dtype=np.int64))
    x = "x"
    for i in range(layers):
        x = _layer(g, x, w, f"encoder.layer.{i}", eps, int8, tapped)
    g.nodes.append(_field(1, x) + _field(2, "y") + _field(4, "Identity"))
    outputs = [_value_info("y", _FLOAT, ["tokens", dim])]
    for name, tensor in tapped.items() if taps else ():
        g.nodes.append(_field(1, tensor) + _field(2, name) + _field(4, "Identity"))
        outputs.append(_value_info(name, _FLOAT, ["tokens", w[f"{name}.weight"].shape[1]]))
    inputs = [
        _value_info("x", _FLOAT, ["tokens", dim]),
        _value_info("bias", _FLOAT, ["batch", 1, 1, "length"]),
        _value_info("shape5", _INT64, [5]),
    ]
    return g.model(inputs, outputs), g.external


class OnnxMiniLM(MiniLM):
    """`MiniLM` whose transformer layers run on onnxruntime (one intra-op thread unless `threads` says more);
    `precision="int8"` runs most products in int8 (`_minilm_int8.py`)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int | None = 1,
        max_tokens: int | None = None,
        precision: Literal["float32", "int8"] = "float32",
    ) -> None:
        import onnxruntime  # first: without it, fail before reading any weights

        self._ort, self._threads, self.precision = onnxruntime, threads, precision
        super().__init__(model_dir, max_tokens=max_tokens)

    def _load_layers(self, w: dict[str, np.ndarray], count: int) -> None:
        """An onnxruntime session over the file's weights, read in place (memory-mapped) and packed once by the
        session for its kernels; only query/key/value are copied (fused)."""
        scale = 1 / np.sqrt(self.dim // self.heads)
        w = dict(w)
        for i in range(count):
            w.update(fuse_qkv(w, f"encoder.layer.{i}", scale))
        self.layers, int8 = [], None
        self.session: Any = None
        if self.precision == "int8":
            from ._minilm_int8 import Int8Plan

            self.session = self._session(*build_model(w, count, self.eps, self.dim, taps=True), packed=False)
            int8 = Int8Plan.calibrate(self, w)
        self.session = self._session(*build_model(w, count, self.eps, self.dim, int8=int8))

    def _session(self, model: bytes, weights: dict[str, np.ndarray], packed: bool = True) -> Any:
        """A session over `model`; `packed=False` for one that runs a few times only (int8 calibration): no
        weight packing and no graph optimisation, which would take longer than its runs."""
        ort = self._ort
        options = ort.SessionOptions()
        if not packed:
            options.add_session_config_entry("session.disable_prepacking", "1")
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if self._threads:
            options.intra_op_num_threads, options.inter_op_num_threads = self._threads, 1
        options.log_severity_level = 3
        self._weights = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in weights.items()}  # kept alive
        options.add_external_initializers(list(self._weights), list(self._weights.values()))
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _encoder(self, x: np.ndarray, shape: tuple[int, int], bias: np.ndarray | None) -> np.ndarray:
        return self.run(x, shape, bias, ["y"])[0]

    def run(self, x: np.ndarray, shape: tuple[int, int], bias: np.ndarray | None, outputs: list[str]) -> list[Any]:
        """The session's `outputs` for embedded tokens `x` (batch x length, dim)."""
        batch, length = shape
        if bias is None:
            bias = np.zeros((batch, 1, 1, length), dtype=np.float32)
        head = self.dim // self.heads
        shape5 = np.array([batch, length, 3, self.heads, head], dtype=np.int64)
        return self.session.run(outputs, {"x": x, "bias": bias, "shape5": shape5})  # type: ignore[no-any-return]
