"""The int8 model built at load, kept in the user's cache directory (`alma_core/_minilm_cache.py`): read back by
later loads with the same vectors, keyed by the weights and the code, written atomically, validated on read, and
never an error: any failure builds the model as without a cache."""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from alma_core import LocalEmbedder, _minilm_cache

TEXTS = ["how do I test a login form?", "Le déploiement a échoué à cause d'une variable manquante.", "!!!"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache directory, empty."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("ALMA_CACHE_DIR", str(directory))
    return directory


def _load() -> tuple[LocalEmbedder, np.ndarray]:
    embedder = LocalEmbedder(threads=1)
    return embedder, embedder.embed_documents(TEXTS)


@pytest.fixture(scope="module")
def built() -> np.ndarray:
    """The vectors of the model built at load, no cache involved."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALMA_CACHE_DIR", "off")
        embedder, vectors = _load()
        assert not embedder._model.cached
    return vectors


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("minilm-int8-*.safetensors"))


def test_the_cache_lives_in_the_users_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALMA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert _minilm_cache.cache_dir() == tmp_path / "xdg" / "alma"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored, as the XDG spec says
        assert _minilm_cache.cache_dir() == Path.home() / ".cache" / "alma"
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path / "mine"))
    assert _minilm_cache.cache_dir() == tmp_path / "mine"
    for off in ("off", ""):
        monkeypatch.setenv("ALMA_CACHE_DIR", off)
        assert _minilm_cache.cache_dir() is None


def test_a_second_load_reads_the_built_model_and_gives_the_same_vectors(cache: Path, built: np.ndarray) -> None:
    first, vectors = _load()
    assert not first._model.cached and len(_entries(cache)) == 1
    second, again = _load()
    assert second._model.cached and len(_entries(cache)) == 1
    np.testing.assert_array_equal(vectors, built)
    np.testing.assert_array_equal(again, built)  # bit for bit: the same graph and arrays reach the session
    assert sum(name.endswith(".int8") for name in second._model._weights) == 24
    assert not list(cache.glob("*.tmp"))  # the temporary file was renamed, none left behind


def _safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A safetensors file of float32 `tensors`, in their order."""
    header, data = {}, b""
    for name, array in tensors.items():
        offsets = [len(data), len(data) + array.size * 4]
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": offsets}
        data += array.astype(np.float32).tobytes()
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + data)
    return path


def _digest(path: Path) -> bytes:
    with path.open("rb") as fh:
        return _minilm_cache.weights_digest(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


def test_the_weights_digest_is_every_byte_but_the_word_tables(tmp_path: Path) -> None:
    """The build reads every tensor but the word table (of which only the calibration tokens' rows: the key holds
    those); one ulp of any other tensor, or the file's layout, changes the digest."""
    rng = np.random.default_rng(5)
    word, dense = f"bert.{_minilm_cache.WORD}", "bert.encoder.layer.0.output.dense.weight"
    tensors = {"bert.embeddings.LayerNorm.weight": rng.standard_normal(8), word: rng.standard_normal((16, 8)),
               dense: rng.standard_normal((8, 8))}  # fmt: skip
    digest = _digest(_safetensors(tmp_path / "a.safetensors", tensors))
    assert digest == _digest(_safetensors(tmp_path / "same.safetensors", tensors))
    for name in tensors:
        changed = {**tensors, name: tensors[name].astype(np.float32).copy()}
        changed[name].flat[3] = np.nextafter(changed[name].flat[3], np.float32(9))  # one ulp
        assert (_digest(_safetensors(tmp_path / "b.safetensors", changed)) != digest) is (name != word), name
    reshaped = {**tensors, dense: tensors[dense].reshape(4, 16)}
    assert _digest(_safetensors(tmp_path / "c.safetensors", reshaped)) != digest


def test_the_key_is_the_weights_the_calibration_rows_and_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = np.array([[101, 2129, 102], [101, 7592, 102]])
    rows = np.random.default_rng(1).standard_normal((6, 384)).astype(np.float32)
    config = (6, 12, 384, 1e-12, 256)
    key = _minilm_cache.int8_key(b"weights", ids, rows, config)
    assert key == _minilm_cache.int8_key(b"weights", ids.copy(), rows.copy(), config)
    moved = rows.copy()
    moved[4, 0] = np.nextafter(moved[4, 0], np.float32(9))
    for other in (
        _minilm_cache.int8_key(b"weight5", ids, rows, config),
        _minilm_cache.int8_key(b"weights", ids[:, :2], rows[:4], config),
        _minilm_cache.int8_key(b"weights", ids, moved, config),
        _minilm_cache.int8_key(b"weights", ids, rows, (*config[:4], 128)),
    ):
        assert other != key
    monkeypatch.setattr(_minilm_cache, "_code", lambda: b"another version")
    assert _minilm_cache.int8_key(b"weights", ids, rows, config) != key


def _corrupt_data(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit of the last array
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-64])


def _foreign(path: Path) -> None:
    path.write_bytes(b"not a cache entry at all")


@pytest.mark.parametrize("damage", [_corrupt_data, _truncate, _foreign, Path.unlink])
def test_a_damaged_entry_is_not_read_and_the_model_is_built_again(
    cache: Path, built: np.ndarray, damage: object
) -> None:
    _load()
    (entry,) = _entries(cache)
    damage(entry)  # type: ignore[operator]
    embedder, vectors = _load()
    assert not embedder._model.cached
    np.testing.assert_array_equal(vectors, built)
    again, _ = _load()  # the rebuilt model replaced the damaged entry
    assert again._model.cached and len(_entries(cache)) == 1


def test_an_entry_for_other_weights_or_code_is_not_read(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are named by the key's start and hold all of it: one whose full key differs is not read."""
    _load()
    (entry,) = _entries(cache)
    assert _minilm_cache.load(entry.name.removeprefix("minilm-int8-").split(".")[0]) is None  # a key's first digits
    ids, rows = np.array([[101, 102]]), np.zeros((2, 384), np.float32)
    key = _minilm_cache.int8_key(b"weights", ids, rows, ())
    _minilm_cache.store(key, b"graph", {"x": np.arange(4, dtype=np.float32)})
    loaded = _minilm_cache.load(key)
    assert loaded is not None and loaded[0] == b"graph"
    monkeypatch.setattr(_minilm_cache, "_code", lambda: b"another version")
    assert _minilm_cache.load(_minilm_cache.int8_key(b"weights", ids, rows, ())) is None


def test_a_valid_entry_whose_model_will_not_start_is_replaced(cache: Path, built: np.ndarray) -> None:
    first, _ = _load()
    key = first._model.cache_key
    assert key is not None and len(_entries(cache)) == 1
    _minilm_cache.store(key, b"not an onnx graph", {"x": np.zeros(4, dtype=np.float32)})
    embedder, vectors = _load()
    assert not embedder._model.cached
    np.testing.assert_array_equal(vectors, built)
    assert _load()[0]._model.cached


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="a read-only directory (root writes anyway)")
def test_a_read_only_cache_directory_is_not_an_error(cache: Path, built: np.ndarray) -> None:
    cache.mkdir()
    cache.chmod(0o500)
    try:
        _, vectors = _load()
    finally:
        cache.chmod(0o700)
    np.testing.assert_array_equal(vectors, built)
    assert not _entries(cache)


def test_a_cache_path_that_cannot_be_a_directory_is_not_an_error(cache: Path, built: np.ndarray) -> None:
    cache.write_text("a file where the directory would be")
    embedder, vectors = _load()
    np.testing.assert_array_equal(vectors, built)
    assert not embedder._model.cached and cache.read_text() == "a file where the directory would be"


def test_a_failed_write_leaves_no_entry_and_no_temporary_file(
    cache: Path, built: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry appears whole by a rename, or not at all."""
    renamed: list[tuple[str, str]] = []

    def fail(src: str, dst: str) -> None:
        renamed.append((src, dst))
        raise OSError("disk full")

    monkeypatch.setattr(_minilm_cache.os, "replace", fail)
    _, vectors = _load()
    np.testing.assert_array_equal(vectors, built)
    ((src, dst),) = renamed
    assert Path(src).parent == Path(dst).parent == cache  # written beside the entry, then renamed over it
    assert not list(cache.iterdir())


def test_a_directory_that_refuses_files_is_not_an_error(
    cache: Path, built: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no file can be created (a read-only disk, another user's directory: root writes anyway, so refused
    here at the call), the model loads as without a cache."""

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(_minilm_cache.tempfile, "mkstemp", refuse)
    embedder, vectors = _load()
    np.testing.assert_array_equal(vectors, built)
    assert not embedder._model.cached and not _entries(cache)


def test_the_directory_keeps_the_newest_entries_only(cache: Path) -> None:
    for i in range(_minilm_cache.KEEP + 2):
        _minilm_cache.store(f"{i:032x}" + "0" * 32, b"graph", {"x": np.zeros(1, dtype=np.float32)})
        entry = cache / f"minilm-int8-{i:032x}.safetensors"
        os.utime(entry, (1_000_000 + i, 1_000_000 + i))
    kept = _entries(cache)
    assert len(kept) == _minilm_cache.KEEP
    assert kept[0].name == f"minilm-int8-{2:032x}.safetensors"  # the two oldest went
