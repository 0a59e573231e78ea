"""all-MiniLM-L6-v2 without torch: the BERT forward pass in numpy over the model's safetensors weights.

The model is small (6 layers, 384-d, 12 heads), so a numpy forward pass is as fast as a runtime for one
query and needs no graph export: the weights are memory-mapped straight from `model.safetensors` (the
word-embedding table is only paged in for the tokens used), WordPiece comes from `tokenizers`
(`tokenizer.json`), and the output is sentence-transformers' (mean pooling over real tokens, then L2
normalisation). Vectors agree with sentence-transformers' to a cosine above 0.9999
(tests/core/test_core_embedder.py).
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}
# Abramowitz & Stegun 7.1.26: erf to 1.5e-7, enough for the exact (erf) GELU that BERT uses
_P, _A = 0.3275911, (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only array over one shared memory map (no copy)."""
    with path.open("rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    size = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8 : 8 + size])
    start, out = 8 + size, {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{path.name}: tensor {name} has unsupported dtype {meta['dtype']}")
        begin, end = meta["data_offsets"]
        count = (end - begin) // np.dtype(dtype).itemsize
        out[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=start + begin).reshape(meta["shape"])
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    z = np.abs(x) * np.float32(1 / np.sqrt(2))
    t = 1.0 / (1.0 + _P * z)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    erf = np.copysign(1.0 - poly * np.exp(-z * z), x)
    return (0.5 * x * (1.0 + erf)).astype(np.float32, copy=False)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """A BERT encoder with mean pooling, loaded from a sentence-transformers model directory."""

    def __init__(self, model_dir: Path, *, max_tokens: int | None = None) -> None:
        config = json.loads((model_dir / "config.json").read_text())
        st_config_path = model_dir / "sentence_bert_config.json"
        st_config = json.loads(st_config_path.read_text()) if st_config_path.exists() else {}
        self.max_tokens = max_tokens or int(st_config.get("max_seq_length", config["max_position_embeddings"]))
        self.layers, self.heads = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
        self.dim, self.eps = int(config["hidden_size"]), float(config["layer_norm_eps"])
        tensors = read_safetensors(model_dir / "model.safetensors")
        self.w = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self.tokenizer: Any = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]  # (out, in) weights: BLAS reads .T as is

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _layer(self, x: np.ndarray, bias: np.ndarray, i: int) -> np.ndarray:
        p, (batch, length, _) = f"encoder.layer.{i}", x.shape
        head = self.dim // self.heads

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

        q = split(self._linear(x, f"{p}.attention.self.query")) * np.float32(1 / np.sqrt(head))
        k = split(self._linear(x, f"{p}.attention.self.key"))
        v = split(self._linear(x, f"{p}.attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
        x = self._norm(x + self._linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        hidden = _gelu(self._linear(x, f"{p}.intermediate.dense"))
        return self._norm(x + self._linear(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")

    def encode_ids(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors of a padded (batch, length) id matrix."""
        length = ids.shape[1]
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
        x = self._norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        bias = np.where(mask[:, None, None, :], np.float32(0), np.float32(-1e9)).astype(np.float32)
        for i in range(self.layers):
            x = self._layer(x, bias, i)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Vectors of `texts` in order; batches group texts of similar length so little padding is computed."""
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            length = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=bool)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n], mask[row, :n] = encodings[i].ids, True
            out[chunk] = self.encode_ids(ids, mask)
        return out
