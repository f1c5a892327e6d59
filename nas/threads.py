"""``torch_threads(n)``: run a block with ``n`` torch threads, restoring the previous count;
``training_threads()``: how many threads training uses unless told."""

from __future__ import annotations

import contextlib
import os
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
