"""WAL checkpoints on a thread of their own, so that no write waits for them.

In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back into the database
file and, at `synchronous=NORMAL`, syncs both files (two `fsync` calls: 5-94 ms on this project's test
machine). SQLite's autocheckpoint runs inside the COMMIT that takes the WAL past 1,000 pages, so every
~58th `learn()` waited for one (0.2-0.3 ms a learn on average, and most of the swing between runs), and
so did every `learn_many` batch. Here the store's connection has autocheckpoint off, reads after each
commit how many pages the WAL holds (`mxFrame` in the wal-index header of the `-shm` file, a documented
part of SQLite's file format: https://sqlite.org/walformat.html) and, each `AUTOCHECKPOINT` pages, asks
this thread for a PASSIVE checkpoint on a connection of its own. Durability is SQLite's: checkpoints at
the pages SQLite's own autocheckpoint would take them, synced the same way, so a power loss can take what
it could before; a checkpoint never blocks a writer, and SQLite runs one at a time (another process's
included). Where the header cannot be read, SQLite's autocheckpoint stays on.

A checkpoint that runs beside a busy writer never copies what the writer appended meanwhile, and SQLite
starts the WAL again from its beginning only when a write finds it all copied: alone, the thread would
let the `-wal` file grow without end. So once the WAL passes `TAIL_FRAMES` pages, the next commit copies
the rest itself (the pages of the few writes since: 1-3 ms, once in ~4 checkpoints) and the write after
it restarts the WAL.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading

__all__ = ["AUTOCHECKPOINT", "TAIL_FRAMES", "Checkpointer", "wal_frames"]

AUTOCHECKPOINT = 1000  # WAL pages between two checkpoints: SQLite's default `wal_autocheckpoint`
TAIL_FRAMES = 4000  # the WAL's length (pages, 16 MB) past which the writer copies the tail and the WAL restarts


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on the store's file from a daemon thread, when asked."""

    def __init__(self, conn: sqlite3.Connection, path: str, timeout: float, shm: int) -> None:
        self.conn, self.path, self.timeout = conn, path, timeout  # `conn`: the store's, for `inline`
        self.inline = False  # no thread could run: checkpoint on the store's connection, as SQLite would
        self.tail = False  # the thread's checkpoint ran: the pages written meanwhile are the commit's to copy
        self._shm = shm  # the `-shm` file, open for reading
        self._mark = 0  # the WAL's pages when a checkpoint was last asked for
        self._cond = threading.Condition()
        self._asked = self._done = 0  # requests made / served
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()  # the process the thread runs in (a forked child starts its own)

    @classmethod
    def open(cls, conn: sqlite3.Connection, path: str, timeout: float) -> Checkpointer | None:
        """A checkpointer for the WAL-mode file at `path` whose store's connection is `conn`: it turns the
        connection's autocheckpoint off. None (autocheckpoint stays on) where the wal-index cannot be read."""
        try:
            shm = os.open(f"{path}-shm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        if wal_frames(shm) is None:
            os.close(shm)
            return None
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return cls(conn, path, timeout, shm)

    def committed(self) -> None:
        """A commit on the store's connection wrote to the WAL: ask for a checkpoint each `AUTOCHECKPOINT`
        pages; copy the WAL's tail when the thread found it long (see the module). Under the store's lock."""
        if self.tail:
            self.tail = False
            _checkpoint(self.conn)
        frames = wal_frames(self._shm) or 0
        if frames < self._mark:  # the WAL started again from its beginning
            self._mark = 0
        if frames - self._mark >= AUTOCHECKPOINT:
            self._mark = frames
            if not self.inline:
                self.request()
            if self.inline:  # (set by `request` when no thread could start)
                _checkpoint(self.conn)

    def request(self) -> int:
        """Ask for a checkpoint (started on the thread); the number to pass to `wait`."""
        with self._cond:
            if self._closed:
                return self._done
            self._asked += 1
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._thread, self._pid = None, os.getpid()
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="alma-sqlite-checkpoint", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # (no new threads, e.g. at interpreter shutdown)
                    self.inline = True
                    self._asked -= 1
                    return self._done
                self._thread = thread
            self._cond.notify()
            return self._asked

    def wait(self, asked: int, timeout: float | None = None) -> bool:
        """Wait until the checkpoint numbered `asked` (by `request`) has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= asked or self._thread is None, timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every checkpoint asked for so far has run (the thread idle, as far as the commits
        before this call are concerned); False on timeout. What a benchmark calls so that the time of a
        block of writes includes the checkpoints they caused, and a test to see the file written."""
        with self._cond:
            asked = self._asked
            return self._cond.wait_for(lambda: self._done >= asked or self._thread is None, timeout)

    def close(self) -> None:
        """Stop the thread after the checkpoint it is running (the store's last connection checkpoints
        what is left when it closes)."""
        with self._cond:
            if not self._closed:
                os.close(self._shm)
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._asked > self._done)
                    if self._closed:
                        return
                    asked = self._asked
                frames = _checkpoint(conn)
                self.tail = frames >= TAIL_FRAMES
                with self._cond:
                    self._done = asked
                    self._cond.notify_all()
        except sqlite3.Error:  # (cannot open the file: the store's connection checkpoints from now on)
            self.inline = True
        finally:
            if conn is not None:
                conn.close()
            with self._cond:
                self._thread = None
                self._done = self._asked
                self._cond.notify_all()


_WAL_INDEX_VERSION = 3007000  # the wal-index header's iVersion (https://sqlite.org/walformat.html)
_HEADER = struct.Struct("=I12xI")  # iVersion, ..., mxFrame: native byte order, at the file's start


def wal_frames(shm: int) -> int | None:
    """The pages in the WAL (`mxFrame`) from the wal-index header of an open `-shm` file; None when the
    header is not one this reads (another version, or not yet written)."""
    try:
        version, frames = _HEADER.unpack(os.pread(shm, _HEADER.size, 0))
    except (OSError, struct.error):
        return None
    return int(frames) if version == _WAL_INDEX_VERSION else None


def _checkpoint(conn: sqlite3.Connection) -> int:
    """A PASSIVE checkpoint: copies what no reader still needs, waits for no one; the WAL's length in
    pages (0 when busy: another checkpoint is running, here or in another process; the next one copies)."""
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error:
        return 0
    return max(0, int(row[1])) if row else 0
