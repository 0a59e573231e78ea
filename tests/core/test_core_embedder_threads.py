"""`LocalEmbedder(threads="auto")`, the default: each onnxruntime run picks a one-thread or a two-thread session
from how many tasks are runnable at that instant (`alma_core/_minilm_threads.py`)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from alma_core import LocalEmbedder
from alma_core._minilm_threads import WIDE, WIDE_AFTER, quota_cores, running_tasks, threads_for, usable_cores

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(
    ("tokens", "running", "cores", "threads"),
    [
        (18, 1, 2, 2),  # only the caller runs: the other core is idle
        (3, 1, 2, 2),  # the shortest text gains too (docs/performance.md)
        (8_000, 1, 2, 2),  # so does a batch, while a core is idle
        (18, 2, 2, 1),  # one other task: both cores busy
        (8_000, 3, 2, 1),  # never a batch on a busy machine
        (18, 3, 4, 2),
        (18, 4, 4, 1),
        (18, 1, 1, 1),  # one core: nothing to gain
        (18, None, 2, 1),  # no signal (no /proc): today's one thread
        (0, 1, 2, 1),
    ],
)
def test_two_threads_only_while_a_core_stands_idle(tokens: int, running: int | None, cores: int, threads: int) -> None:
    assert threads_for(tokens, running, cores) == threads


@pytest.mark.parametrize(
    ("quota", "period", "cores"),
    [
        ("max 100000\n", None, None),  # cgroup v2, no quota
        ("200000 100000\n", None, 2),
        ("150000 100000\n", None, 1),  # 1.5 cores: one whole core to count on
        ("50000 100000\n", None, 1),
        ("-1\n", "100000\n", None),  # cgroup v1, no quota
        ("400000\n", "100000\n", 4),
        ("", None, None),
        ("garbage here\n", None, None),
    ],
)
def test_a_container_quota_caps_the_cores(quota: str, period: str | None, cores: int | None) -> None:
    assert quota_cores(quota, period) == cores


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="reads /proc/loadavg")
def test_the_signal_counts_the_caller() -> None:
    running = running_tasks()
    assert isinstance(running, int) and running >= 1  # this thread is running while it reads
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


@pytest.fixture(scope="module")
def auto() -> LocalEmbedder:
    """The default embedder (int8, threads="auto") with its wide session built."""
    pytest.importorskip("onnxruntime")
    if usable_cores() < WIDE:
        pytest.skip("one usable core: no wide session")
    embedder = LocalEmbedder()
    with pytest.MonkeyPatch.context() as patch:
        from alma_core import _minilm_onnx

        patch.setattr(_minilm_onnx, "running_tasks", lambda: 1)  # an idle machine: runs ask for the wide session
        for _ in range(WIDE_AFTER):
            embedder.embed_documents(["load"])
        assert embedder._model.wait_wide(60)
    return embedder


def test_the_wide_session_is_built_off_the_runs_once_they_ask_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not at load, not while the machine is busy, not for a process's first run that would use it (a CLI call
    embeds once): the `WIDE_AFTER`th such run starts its build on a thread and itself runs on one thread; later runs
    use it once built."""
    pytest.importorskip("onnxruntime")
    if usable_cores() < WIDE:
        pytest.skip("one usable core: no wide session")
    from alma_core import _minilm_onnx

    monkeypatch.setattr(_minilm_onnx, "running_tasks", lambda: 2)  # busy: never wide, never built
    embedder = LocalEmbedder()
    embedder.embed_query("load")
    model, used = embedder._model, []
    assert model.wide is None
    monkeypatch.setattr(model, "session", _Spy(model.session, "session", used))
    built = threading.Event()
    build = model._build_wide

    def build_when_told() -> None:  # holds the build until the run that started it has returned
        assert built.wait(60)
        build()

    monkeypatch.setattr(model, "_build_wide", build_when_told)
    for _ in range(WIDE_AFTER + 1):
        embedder.embed_documents(["a busy machine"])
    assert model.wide is None and not any(t.name == "alma-minilm-wide" for t in threading.enumerate())
    monkeypatch.setattr(_minilm_onnx, "running_tasks", lambda: 1)  # a core stands idle
    for _ in range(WIDE_AFTER):
        embedder.embed_documents(["an idle core"])
    assert used == ["session"] * (WIDE_AFTER * 2 + 1) and model.wide is None  # none waited for the build
    assert [t.name for t in threading.enumerate()].count("alma-minilm-wide") == 1
    built.set()
    assert model.wait_wide(60)
    monkeypatch.setattr(model, "wide", _Spy(model.wide, "wide", used))
    embedder.embed_documents(["an idle core"])
    assert used[-1] == "wide"


def test_each_run_follows_the_signal_and_both_sessions_give_the_same_vectors(
    auto: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alma_core import _minilm_onnx

    model, used = auto._model, []
    for name in ("session", "wide"):
        session = getattr(model, name)
        monkeypatch.setattr(model, name, _Spy(session, name, used))
    sentences = json.loads((DATA / "minilm_sentences.json").read_text(encoding="utf-8"))
    texts = [*sentences[:12], max(sentences, key=len)]
    vectors = {}
    for running, name in ((1, "wide"), (2, "session")):
        monkeypatch.setattr(_minilm_onnx, "running_tasks", lambda r=running: r)
        used.clear()
        singles = np.stack([auto.embed_documents([t])[0] for t in texts])
        batch = auto.embed_documents(texts)
        assert used and set(used) == {name}, used
        vectors[name] = singles, batch  # int8: a batch shares one activation range per product, so not singles'
    for wide, one in zip(vectors["wide"], vectors["session"], strict=True):
        np.testing.assert_allclose(wide, one, atol=1e-6)


class _Spy:
    """A session that records its name in `used` on each run."""

    def __init__(self, session: object, name: str, used: list[str]) -> None:
        self._session, self._name, self._used = session, name, used

    def run(self, *args: object) -> object:
        self._used.append(self._name)
        return self._session.run(*args)  # type: ignore[attr-defined]


def _forked(embedder: LocalEmbedder, text: str, expected: np.ndarray) -> str:
    """What a forked child reports after embedding `text` twice (vectors' distance to `expected`, whether it picks
    the one-thread session, whether it started a build); the child dies by the alarm if a run hangs."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        signal.alarm(60)
        distance = max(float(np.abs(embedder.embed_documents([text])[0] - expected).max()) for _ in range(WIDE_AFTER))
        model = embedder._model
        builds = sum(t.name == "alma-minilm-wide" for t in threading.enumerate())
        os.write(write, f"{distance} {model.pick(18) is model.session} {builds}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, (status, answer)
    return answer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_embeds_on_one_thread(auto: LocalEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wide session's pool thread stays in the parent: a run of it in a forked child hung once in ~10 tries
    here, so a child runs every call on the one-thread session (no pool) and builds none."""
    from alma_core import _minilm_onnx

    monkeypatch.setattr(_minilm_onnx, "running_tasks", lambda: 1)  # an idle machine: the parent runs wide
    text = "a forked worker embeds a query"
    expected = auto.embed_documents([text])[0]  # right before the fork, as its pool's thread winds down
    distance, one, builds = _forked(auto, text, expected).split()
    assert float(distance) <= 1e-6 and one == "True" and builds == "0"
    assert auto._model.pick(18) is auto._model.wide  # the parent still runs wide


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_child_forked_while_the_wide_session_builds_embeds_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork can land while the parent's thread builds the wide session (inside onnxruntime): the child still
    embeds, on one thread, and starts no build of its own."""
    pytest.importorskip("onnxruntime")
    if usable_cores() < WIDE:
        pytest.skip("one usable core: no wide session")
    from alma_core import _minilm_onnx

    monkeypatch.setattr(_minilm_onnx, "running_tasks", lambda: 1)
    embedder, text = LocalEmbedder(), "a worker forked mid-build"
    expected = embedder.embed_documents([text])[0]
    for _ in range(WIDE_AFTER - 1):
        embedder.embed_documents([text])  # the last of these starts the build
    distance, one, builds = _forked(embedder, text, expected).split()
    assert float(distance) <= 1e-6 and one == "True" and builds == "0"
    assert embedder._model.wait_wide(60)


def test_threads_1_keeps_one_session_on_one_thread() -> None:
    pytest.importorskip("onnxruntime")
    embedder = LocalEmbedder(threads=1)
    embedder.embed_query("load")
    assert embedder._model.wide is None
    assert embedder._model.session.get_session_options().intra_op_num_threads == 1
