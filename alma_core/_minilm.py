"""all-MiniLM-L6-v2 without torch: the BERT forward pass in numpy over the model's safetensors weights.

The model is small (6 layers, 384-d, 12 heads), so a numpy forward pass needs no runtime and no graph
export. At load, each layer's weights are packed once into contiguous float32 matrices in the layout the
forward pass multiplies by (query, key and value in one (384, 1152) matrix with the attention scale folded
in; the others transposed to (in, out)); the word-embedding table stays memory-mapped from
`model.safetensors`, paged in only for the tokens used, and the file pages read while packing are released.
WordPiece comes from `tokenizers` (`tokenizer.json`); the output is sentence-transformers' (mean pooling
over real tokens, then L2 normalisation). Vectors agree with sentence-transformers' to a cosine above
0.9999 (tests/core/test_core_embedder.py).

Each linear layer is one 2-D matrix product over every token of the batch; a lone text is never padded;
batches are texts of similar length under a token budget, so padding and the attention matrices stay small.
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tokenizers import Tokenizer

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64, "I8": np.int8, "U8": np.uint8}
# Abramowitz & Stegun 7.1.26: erf to 1.5e-7, enough for the exact (erf) GELU that BERT uses
_P, _A = 0.3275911, (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
TOKEN_BUDGET = 1024
"""Tokens (padding included) per forward pass of a batch: bounds its activations and attention scores (texts x
12 heads x length^2 floats). 200 sentences peaked at 140 MB RSS with 1,024 against 210 MB with 2,048 and 4,096,
at the same or better texts/s (smaller passes stay in cache)."""


def safetensors_header(buf: mmap.mmap) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header (tensors by name, and "__metadata__") and where its data starts."""
    size = int.from_bytes(buf[:8], "little")
    return json.loads(buf[8 : 8 + size]), 8 + size


def _map_safetensors(path: Path) -> tuple[mmap.mmap, dict[str, np.ndarray]]:
    with path.open("rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    header, start = safetensors_header(buf)
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{path.name}: tensor {name} has unsupported dtype {meta['dtype']}")
        begin, end = meta["data_offsets"]
        count = (end - begin) // np.dtype(dtype).itemsize
        out[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=start + begin).reshape(meta["shape"])
    return buf, out


def release(buf: mmap.mmap) -> None:
    """Drop a mapped file's pages from this process's memory once what was read from them is packed elsewhere
    (they page back in if read again)."""
    if hasattr(buf, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        buf.madvise(mmap.MADV_DONTNEED)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only array over one shared memory map (no copy)."""
    return _map_safetensors(path)[1]


def pad(encodings: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of several texts as one (texts, longest) id matrix, zero-padded, and the mask of real tokens."""
    ids = np.zeros((len(encodings), max(map(len, encodings))), dtype=np.intp)
    mask = np.zeros(ids.shape, dtype=bool)
    for row, e in enumerate(encodings):
        ids[row, : len(e)], mask[row, : len(e)] = e, True
    return ids, mask


def attention_bias(mask: np.ndarray) -> np.ndarray:
    """The (batch, 1, 1, length) scores added before the softmax: 0 for a real token, -1e9 for padding."""
    return np.where(mask[:, None, None, :], np.float32(0), np.float32(-1e9)).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU, 0.5 x (1 + erf(x / sqrt 2)), in few passes over `x`."""
    z = np.abs(x)
    z *= np.float32(1 / np.sqrt(2))
    t = z * np.float32(_P)
    t += 1
    np.reciprocal(t, out=t)
    poly = t * np.float32(_A[4])
    for a in reversed(_A[:4]):
        poly += np.float32(a)
        poly *= t
    z *= z
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x| / sqrt 2)
    np.subtract(np.float32(1), poly, out=poly)
    np.copysign(poly, x, out=poly)  # erf(x / sqrt 2)
    poly += 1
    poly *= x
    poly *= np.float32(0.5)
    return poly


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis of a 2-D `x`, in place."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)
    var *= np.float32(1 / x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    np.reciprocal(var, out=var)
    x *= var[:, None]
    x *= weight
    x += bias
    return x


class _Layer(NamedTuple):
    qkv_w: np.ndarray  # (dim, 3 dim): query (scaled by 1/sqrt(head)), key, value
    qkv_b: np.ndarray
    out_w: np.ndarray  # (dim, dim)
    out_b: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up_w: np.ndarray  # (dim, 4 dim)
    up_b: np.ndarray
    down_w: np.ndarray  # (4 dim, dim)
    down_b: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


def _f32(a: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy, owned (not a view of the memory map)."""
    return np.array(a, dtype=np.float32, order="C", copy=True)


def _pack_layer(w: dict[str, np.ndarray], p: str, scale: float) -> _Layer:
    att = f"{p}.attention"
    q, k, v = (w[f"{att}.self.{n}.weight"] for n in ("query", "key", "value"))
    dim = q.shape[1]
    qkv_w = np.empty((dim, 3 * dim), dtype=np.float32)
    np.multiply(q.T, np.float32(scale), out=qkv_w[:, :dim])
    qkv_w[:, dim : 2 * dim], qkv_w[:, 2 * dim :] = k.T, v.T
    qkv_b = np.concatenate([w[f"{att}.self.query.bias"] * np.float32(scale), w[f"{att}.self.key.bias"],
                            w[f"{att}.self.value.bias"]]).astype(np.float32)  # fmt: skip

    def norm(name: str) -> tuple[np.ndarray, np.ndarray]:
        return _f32(w[f"{name}.weight"]), _f32(w[f"{name}.bias"])

    return _Layer(
        qkv_w, qkv_b,
        _f32(w[f"{att}.output.dense.weight"].T), _f32(w[f"{att}.output.dense.bias"]), norm(f"{att}.output.LayerNorm"),
        _f32(w[f"{p}.intermediate.dense.weight"].T), _f32(w[f"{p}.intermediate.dense.bias"]),
        _f32(w[f"{p}.output.dense.weight"].T), _f32(w[f"{p}.output.dense.bias"]), norm(f"{p}.output.LayerNorm"),
    )  # fmt: skip


class MiniLM:
    """A BERT encoder with mean pooling, loaded from a sentence-transformers model directory."""

    def __init__(self, model_dir: Path, *, max_tokens: int | None = None) -> None:
        config = json.loads((model_dir / "config.json").read_text())
        st_config_path = model_dir / "sentence_bert_config.json"
        st_config = json.loads(st_config_path.read_text()) if st_config_path.exists() else {}
        self.max_tokens = max_tokens or int(st_config.get("max_seq_length", config["max_position_embeddings"]))
        self.heads, self.dim = int(config["num_attention_heads"]), int(config["hidden_size"])
        self.eps = float(config["layer_norm_eps"])
        buf, tensors = _map_safetensors(model_dir / "model.safetensors")
        self._mapped(buf)
        w = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self.word = w["embeddings.word_embeddings.weight"]  # stays mapped: only the rows of used tokens page in
        # position + token-type 0 (every text is one segment), summed once
        self.position = _f32(w["embeddings.position_embeddings.weight"][: self.max_tokens])
        self.position += w["embeddings.token_type_embeddings.weight"][0]
        self.norm0 = _f32(w["embeddings.LayerNorm.weight"]), _f32(w["embeddings.LayerNorm.bias"])
        self.tokenizer: Any = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()
        self._load_layers(w, int(config["num_hidden_layers"]))  # last: a runtime may embed texts to calibrate
        release(buf)  # drop the file pages read while packing

    def _mapped(self, buf: mmap.mmap) -> None:
        """Called once the weights file is mapped, before the tokenizer loads (a runtime may start work beside it)."""

    def _load_layers(self, w: dict[str, np.ndarray], count: int) -> None:
        scale = 1 / np.sqrt(self.dim // self.heads)
        self.layers = [_pack_layer(w, f"encoder.layer.{i}", scale) for i in range(count)]

    def _layer(self, x: np.ndarray, shape: tuple[int, int], bias: np.ndarray | None, lw: _Layer) -> np.ndarray:
        (batch, length), heads = shape, self.heads
        qkv = x @ lw.qkv_w
        qkv += lw.qkv_b
        qkv = qkv.reshape(batch, length, 3, heads, self.dim // heads)
        q, k, v = qkv[:, :, 0].transpose(0, 2, 1, 3), qkv[:, :, 1].transpose(0, 2, 3, 1), qkv[:, :, 2]
        scores = q @ k  # (batch, heads, length, length)
        if bias is not None:
            scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3).reshape(batch * length, self.dim)
        h = context @ lw.out_w
        h += lw.out_b
        h += x
        x = _layer_norm(h, *lw.norm1, self.eps)
        h = x @ lw.up_w
        h += lw.up_b
        h = _gelu(h) @ lw.down_w
        h += lw.down_b
        h += x
        return _layer_norm(h, *lw.norm2, self.eps)

    def _encoder(self, x: np.ndarray, shape: tuple[int, int], bias: np.ndarray | None) -> np.ndarray:
        """The transformer layers over the embedded tokens (batch x length, dim)."""
        for layer in self.layers:
            x = self._layer(x, shape, bias, layer)
        return x

    def embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        """The (batch x length, dim) input of the first layer for a (batch, length) id matrix."""
        batch, length = ids.shape
        x = self.word[ids.reshape(-1)].reshape(batch, length, self.dim)
        x += self.position[:length]
        return _layer_norm(x.reshape(batch * length, self.dim), *self.norm0, self.eps)

    def encode_ids(self, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors of a (batch, length) id matrix; `mask` marks real
        tokens (None: no padding)."""
        batch, length = ids.shape
        x = self.embed_tokens(ids)
        bias = None
        if mask is not None and not mask.all():
            bias = attention_bias(mask)
        x = self._encoder(x, (batch, length), bias).reshape(batch, length, self.dim)
        if bias is None:
            pooled = x.mean(axis=1)
        else:
            weights = mask[:, :, None].astype(np.float32)  # type: ignore[index]
            pooled = np.einsum("bld,bl->bd", x, weights[:, :, 0]) / weights.sum(axis=1)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled.astype(np.float32, copy=False)

    def _batches(self, lengths: list[int], batch_size: int) -> list[list[int]]:
        """Indices of texts grouped shortest first, each group at most `batch_size` texts and `TOKEN_BUDGET`
        tokens once padded to its longest."""
        groups: list[list[int]] = []
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            group = groups[-1] if groups else None
            if group is None or len(group) >= batch_size or (len(group) + 1) * lengths[i] > TOKEN_BUDGET:
                groups.append([i])
            else:
                group.append(i)
        return groups

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Vectors of `texts` in order; batches group texts of similar length so little padding is computed."""
        if len(texts) == 1:
            ids = np.asarray(self.tokenizer.encode(texts[0]).ids, dtype=np.intp)
            return self.encode_ids(ids[None, :])
        encodings = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for group in self._batches([len(e) for e in encodings], batch_size):
            out[group] = self.encode_ids(*pad([encodings[i] for i in group]))
        return out
