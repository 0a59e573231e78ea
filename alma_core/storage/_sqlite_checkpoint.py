"""WAL checkpoints on a thread of their own, so that no write waits for them.

In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back into the database
file and, at `synchronous=NORMAL`, syncs both files (two `fsync` calls: 5-94 ms on this project's test
machine). SQLite's autocheckpoint runs inside the COMMIT that takes the WAL past 1,000 pages, so every
~58th `learn()` waited for one (0.2-0.3 ms a learn on average, and most of the swing between runs), and
so did every `learn_many` batch. Here the store's connection has autocheckpoint off, counts the rows its
commits change (`sqlite3.Connection.total_changes`, a proxy for pages: a learn changes ~8 rows and writes
~17 pages) and, past `CHANGES_PER_CHECKPOINT`, asks this thread for a PASSIVE checkpoint on a connection
of its own. Durability is SQLite's: the same checkpoints, as often, synced the same way; a checkpoint
never blocks a writer, and SQLite runs one at a time (another process's included).

A checkpoint that runs beside a busy writer never copies what the writer appended meanwhile, and SQLite
starts the WAL again from its beginning only when a write finds it all copied: alone, the thread would
let the `-wal` file grow without end. So once the WAL passes `TAIL_FRAMES` pages, the next commit copies
the rest itself (the pages of the few writes since: 1-3 ms, once in ~4 checkpoints) and the write after
it restarts the WAL.
"""

from __future__ import annotations

import os
import sqlite3
import threading

__all__ = ["CHANGES_PER_CHECKPOINT", "TAIL_FRAMES", "Checkpointer"]

CHANGES_PER_CHECKPOINT = 500  # rows changed between two checkpoints (~1,000 WAL pages: SQLite's default)
TAIL_FRAMES = 4000  # the WAL's length (pages, 16 MB) past which the writer copies the tail and the WAL restarts


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on the store's file from a daemon thread, when asked."""

    def __init__(self, conn: sqlite3.Connection, path: str, timeout: float) -> None:
        self.conn, self.path, self.timeout = conn, path, timeout  # `conn`: the store's, for `inline`
        self.inline = False  # no thread could run: checkpoint on the store's connection, as SQLite would
        self.tail = False  # the thread's checkpoint ran: the pages written meanwhile are the commit's to copy
        self._changes = 0  # rows changed since the last request
        self._cond = threading.Condition()
        self._asked = self._done = 0  # requests made / served
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()  # the process the thread runs in (a forked child starts its own)

    def committed(self, changes: int) -> None:
        """A commit on the store's connection changed `changes` rows: ask for a checkpoint once enough
        have; copy the WAL's tail when the thread found it long (see the module). Under the store's lock."""
        if self.tail:
            self.tail = False
            _checkpoint(self.conn)
        self._changes += changes
        if self._changes >= CHANGES_PER_CHECKPOINT:
            self._changes = 0
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

    def close(self) -> None:
        """Stop the thread after the checkpoint it is running (the store's last connection checkpoints
        what is left when it closes)."""
        with self._cond:
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


def _checkpoint(conn: sqlite3.Connection) -> int:
    """A PASSIVE checkpoint: copies what no reader still needs, waits for no one; the WAL's length in
    pages (0 when busy: another checkpoint is running, here or in another process; the next one copies)."""
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error:
        return 0
    return max(0, int(row[1])) if row else 0
