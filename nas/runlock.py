"""One writer per run directory (or latency table): an advisory lock that dies with its process.

``RunLock(path).acquire()`` takes an exclusive ``flock`` on ``path/.lock`` (for a directory) or
``path.lock`` (for a file). A second process asking for the same lock is refused at once with
who holds it; nothing is interleaved. The kernel drops the lock when its holder exits, even on
SIGKILL, so a crash never leaves a stale lock behind.

Within one process the lock is re-entrant (the CLI locks a NetAdapt directory before profiling
into it, and the ``NetAdapt`` object locks it again). On release the lock file is removed, and
so is the directory if acquiring created it and nothing else was written: a run refused after
locking leaves no trace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

from nas.errors import RunLocked

__all__ = ["LockedRunDir", "RunLock", "RunLocked", "in_use", "timestamp"]


# lock file -> [file descriptor, holders in this process, directory created by acquiring]
_HELD: dict[Path, list] = {}


class RunLock:
    """An exclusive, process-wide, re-entrant lock on a run directory or a file."""

    def __init__(self, path: str | os.PathLike, *, file: bool = False):
        """Lock the directory ``path`` or, with ``file=True``, the file ``path``."""
        path = Path(path)
        self.target = path
        self.lock_file = (path.with_name(path.name + ".lock") if file else
                          path / ".lock").absolute()
        self.held = False

    # ------------------------------------------------------------------ acquiring
    def acquire(self) -> RunLock:
        if self.held:
            return self
        entry = _HELD.get(self.lock_file)
        if entry is not None:  # this process holds it already
            entry[1] += 1
            self.held = True
            return self
        directory = self.lock_file.parent
        created = None
        if not directory.exists():
            created = _first_missing(directory)
            directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLocked(f"{self.target} is in use by another process{holder}; wait for "
                                f"it to finish, or use another run name / path") from None
            # the holder before us may have removed the file between our open and our lock
            try:
                same = os.stat(self.lock_file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        with contextlib.suppress(OSError):  # who holds it: informative only (a full disk)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%H:%M:%S"),
                                     "command": " ".join(Path(sys.argv[0]).name.split() +
                                                         sys.argv[1:])[:200]}).encode())
        _HELD[self.lock_file] = [fd, 1, created]
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        entry = _HELD[self.lock_file]
        entry[1] -= 1
        if entry[1]:
            return
        del _HELD[self.lock_file]
        fd, _, created = entry
        self.lock_file.unlink(missing_ok=True)  # while still locked: see acquire's inode check
        os.close(fd)
        if created is not None:
            _remove_empty(self.lock_file.parent, stop=created.parent)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the kernel drops the lock
            pass


class LockedRunDir:
    """Base of the objects that own a run directory while they live (a search, a NetAdapt run).

    Set up inside ``with self._setting_up(directory):``; the lock is released again if the
    set-up fails. ``close()`` (or leaving a ``with`` block) lets other processes in.
    """

    lock: RunLock

    @contextlib.contextmanager
    def _setting_up(self, directory: str | os.PathLike):
        self.lock = RunLock(directory).acquire()
        try:
            yield
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        """Let another process write to this run directory."""
        self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def in_use(directory: str | os.PathLike) -> bool:
    """Whether some process holds the lock of the run directory ``directory`` now."""
    lock_file = Path(directory) / ".lock"
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (pid {holder['pid']}, `{holder['command']}`, since {holder['since']})"
    except (ValueError, KeyError, OSError):
        return ""


def _first_missing(directory: Path) -> Path:
    """The outermost directory of ``directory``'s ancestors that does not exist yet."""
    first = directory
    while not first.parent.exists():
        first = first.parent
    return first


def _remove_empty(directory: Path, *, stop: Path) -> None:
    """Remove ``directory`` and its parents up to ``stop`` while they are empty."""
    while directory != stop:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def timestamp() -> str:
    """Local time with its UTC offset (``2026-12-05T14:03:11+0100``), as the records of a run
    directory store it (created, finished, measured)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
