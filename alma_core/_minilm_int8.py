"""int8 products for the onnxruntime MiniLM: the default `LocalEmbedder()` there (`precision="auto"` or "int8").

Built at load from the model's own float32 weights (nothing fetched, nothing shipped): each chosen product
becomes onnxruntime's `DynamicQuantizeMatMul`, weights int8 per output column (symmetric), activations
quantized per call to uint8 over the whole tensor. Quantizing every product ran queries ~1.7x faster but
moved vectors to a cosine of 0.970 from sentence-transformers' (200 sentences); what keeps this option above
0.99 (docs/performance.md has the figures):

- **Smoothing** (SmoothQuant, alpha 0.5) for the products whose input is a LayerNorm output or the attention
  context: a few channels of those inputs are 10-20x larger than the rest, so one uint8 range over the
  tensor leaves the others a few levels. Each input channel is divided by s = sqrt(max|x| / max|w|) (a `Mul`;
  for the attention output, folded into the value columns: `Int8Plan.fold`) and the weight's row multiplied by
  it, which the per-column weight scales absorb. max|x| is measured at load over `CALIBRATION` (the float32
  graph's inputs of each product, the texts in one padded batch whose padding rows are left out).
- Smoothed weights keep 7 bits (+-63): on AVX2 without VNNI, onnxruntime multiplies uint8 by int8 with
  `vpmaddubsw`, which saturates a pair of 8-bit products summed in 16 bits (255 x 127 x 2 > 32767).
- **Split** for the feed-forward output products (input: the GELU output): smoothing made them worse, but
  their large inputs sit in 1-2 channels (up to 25 against <= 6 elsewhere): the channels that pass `OUTLIER`
  on `CALIBRATION` are multiplied in float32 (a `Gather` and a small `MatMul`), the rest in int8.
- **`INT8_PRODUCTS`** run in int8: all 24. On a dev set (2,054 turns and questions of the dev split of
  `benchmarks/gen_conversations.py`, against our float32 vectors) the minimum cosine is 0.9968 and the median
  0.9984 (22 products, session 5: 0.9958 and 0.9986), and retrieval on the dev split moved no more than float
  rounding alone moves it; the 200 committed sentences report it (`docs/performance.md` has the figures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._minilm import pad

if TYPE_CHECKING:
    from ._minilm_onnx import OnnxMiniLM, _Graph

INT8_PRODUCTS = frozenset(f"{layer}.{kind}" for layer in range(6) for kind in ("qkv", "out", "up", "down"))
"""Products in int8, as layer.kind (qkv: query/key/value; out: attention output; up, down: feed-forward): all
24 (until session 6, 22: layer 0's feed-forward output and layer 5's query/key/value stayed float32, for 0.5 ms
more per 18-token query and the same retrieval quality; docs/performance.md)."""

_KINDS = {"attention.self.qkv": "qkv", "attention.output.dense": "out", "intermediate.dense": "up",
          "output.dense": "down"}  # fmt: skip
_SMOOTHED = frozenset({"qkv", "out", "up"})
OUTLIER = 6.0
"""A feed-forward output product's input channels that reached this on `CALIBRATION` stay float32 (split)."""

CALIBRATION = (
    "My sister moved to Lisbon last spring and works as a nurse at the hospital there.",
    "Remind me to renew the car insurance before the end of March.",
    "The order #48213 from Gearbarn arrived damaged; a replacement ships on Tuesday.",
    "Summarise the meeting: budget approved, hiring paused, launch moved to Q3.",
    "Der Kunde möchte die Rechnung per E-Mail erhalten, nicht per Post.",
    "Le déploiement a échoué à cause d'une variable d'environnement manquante.",
    "El cliente prefiere reuniones cortas por la mañana.",
    "ユーザーは日本語での回答を好みます。",
)
"""Texts whose activations set the smoothing scales (none is in the parity set, tests/data/): the largest
inputs sit in the same few channels whatever the text, so 4, 8, 16 or 32 texts gave the same dev-set cosines
(min 0.9977-0.9979 with 17 int8 products); these 8 (160 tokens) cost ~0.09 s of CPU at load (an unpacked
session), 32 texts ~0.3 s (packed)."""


def calibration_ids(tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
    """`CALIBRATION`'s token ids as one padded (texts, longest) matrix, and its mask of real tokens."""
    return pad([e.ids for e in tokenizer.encode_batch(list(CALIBRATION))])


def _key(name: str) -> str | None:
    """'encoder.layer.3.intermediate.dense' -> '3.up' (None for a name that is not a layer's product)."""
    parts = name.split(".", 3)
    if len(parts) < 4 or parts[0] != "encoder" or parts[1] != "layer":
        return None
    kind = _KINDS.get(parts[3])
    return f"{parts[2]}.{kind}" if kind else None


def quantize_columns(weight: np.ndarray, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """(out, in) float32 weights, as the file stores them -> (in, out) int8 weights in [-qmax, qmax] and one float32
    scale per output column (in place on `weight`, whose rows are contiguous: a few fast passes at load)."""
    peak = np.abs(weight).max(axis=1)
    scale = np.where(peak > 0, peak / qmax, 1).astype(np.float32)
    weight /= scale[:, None]
    np.rint(weight, out=weight)
    np.clip(weight, -qmax, qmax, out=weight)
    return np.ascontiguousarray(weight.astype(np.int8).T), scale


class Int8Plan:
    """The int8 products of one model, the smoothing scale of each smoothed one and the float32 channels of each
    split one (by weight name)."""

    def __init__(
        self,
        smooth: dict[str, np.ndarray],
        products: frozenset[str] = INT8_PRODUCTS,
        split: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.smooth, self.products, self.split = smooth, products, split or {}

    @classmethod
    def calibrate(
        cls, model: OnnxMiniLM, w: dict[str, np.ndarray], products: frozenset[str] = INT8_PRODUCTS
    ) -> Int8Plan:
        """Smoothing scales and split channels from the inputs of `products` that `model`'s float32 session (built
        with taps) sees on `CALIBRATION`, in one padded batch (the padding rows left out of the peaks)."""
        names = [f"encoder.layer.{k.split('.')[0]}.{n}" for k in sorted(products) for n, kind in _KINDS.items()
                 if kind == k.split(".")[1]]  # fmt: skip
        peak = {n: np.zeros(w[f"{n}.weight"].shape[1], dtype=np.float32) for n in names}
        if names:
            ids, mask = calibration_ids(model.tokenizer)
            tensors = model.run(ids, mask, names)
            for name, tensor in zip(names, tensors, strict=True):
                peak[name] = np.abs(tensor[mask.reshape(-1)]).max(axis=0)
        smooth, split = {}, {}
        for name in names:
            if _KINDS[name.split(".", 3)[3]] not in _SMOOTHED:
                if (channels := np.flatnonzero(peak[name] > OUTLIER)).size:
                    split[name] = channels
                continue
            rows = np.abs(np.asarray(w[f"{name}.weight"], dtype=np.float32)).max(axis=0)  # per input channel
            smooth[name] = np.sqrt(np.maximum(peak[name], 1e-5) / np.maximum(rows, 1e-5)).astype(np.float32)
        return cls(smooth, products, split)

    def fold(self, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`w` with each smoothed attention output's scale folded into its layer's value columns: the context is
        a mix of value rows, so dividing those columns by the scale divides the context's channels as the `Mul`
        before the product would, for nothing at run time (an int8 value product's column scales absorb it)."""
        w = dict(w)
        for name, s in self.smooth.items():
            if not name.endswith(".attention.output.dense"):
                continue
            qkv, dim = name.replace("output.dense", "self.qkv"), len(s)
            weight, bias = np.array(w[f"{qkv}.weight"], dtype=np.float32), np.array(w[f"{qkv}.bias"], np.float32)
            weight[2 * dim :] /= s[:, None]  # (3 dim, dim): the value rows are the last dim
            bias[2 * dim :] /= s
            w[f"{qkv}.weight"], w[f"{qkv}.bias"] = weight, bias
        return w

    def linear(self, g: _Graph, x: str, w: dict[str, np.ndarray], name: str) -> str | None:
        """x @ W.T + b as an int8 product if `name` is one of ours, else None (float32)."""
        if _key(name) not in self.products:
            return None
        weight = np.array(w[f"{name}.weight"], dtype=np.float32)  # (out, in): a copy, quantized in place
        qmax, s, channels, side = 127, self.smooth.get(name), self.split.get(name), None
        if s is not None:
            if not name.endswith(".attention.output.dense"):  # that one is folded into the values (`fold`)
                x = g.op("Mul", x, g.const(f"{name}.unsmooth", (1 / s).astype(np.float32)))
            weight *= s
            qmax = 63
        elif channels is not None:  # those input channels in float32, the others in int8
            outliers = g.op("Gather", x, g.const(f"{name}.outliers", channels.astype(np.int64)), axis=1)
            rows = np.ascontiguousarray(weight[:, channels].T)  # (channels, out)
            side = g.op("MatMul", outliers, g.const(f"{name}.outlier_rows", rows))
            keep = np.ones(weight.shape[1], dtype=np.float32)
            keep[channels] = 0
            x = g.op("Mul", x, g.const(f"{name}.keep", keep))
            weight[:, channels] = 0
        q, scale = quantize_columns(weight, qmax)
        out = g.op("DynamicQuantizeMatMul", x, g.const(f"{name}.int8", np.ascontiguousarray(q)),
                   g.const(f"{name}.scale", scale), "", g.const(f"{name}.bias", w[f"{name}.bias"]),
                   domain="com.microsoft")  # fmt: skip
        return out if side is None else g.op("Add", out, side)
