"""``torch_threads(n)``: run a block with ``n`` torch threads, restoring the previous count;
``training_threads()``: how many threads training uses unless told; ``exit_with_parent``: a
worker process's watch on the process that started it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import torch


def training_threads() -> int:
    """``$OMP_NUM_THREADS`` when set (a shared machine's way to say "use fewer"), else the
    cores this process may run on."""
    try:
        wanted = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        wanted = 0
    return wanted if wanted >= 1 else usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; all logical cores elsewhere)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def exit_with_parent(parent: int) -> None:
    """In a worker (a process pool's initializer): leave when the process ``parent`` is gone
    (killed with SIGKILL, say), rather than linger as an orphan holding a core's worth of
    memory."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
