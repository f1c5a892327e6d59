"""The project's one timer: every candidate once per round, in a fresh random order each round,
so the drift of a shared machine falls on all candidates alike; per candidate it keeps every
sample and reports the minimum and the median (:class:`TimerSettings` says how)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import heapq
import math
import os
import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from latency_models.backends import Backend, Runner, Timing
from nas.errors import LatencyError

__all__ = ["TimerSettings", "measure_interleaved", "pinned"]


@dataclass(frozen=True)
class TimerSettings:
    """How :func:`measure_interleaved` times a set of runners.

    ``rounds`` is the most rounds a runner gets; with ``stop_k`` set, a runner leaves the
    rotation once it has had ``min_rounds`` rounds and its ``stop_k`` smallest samples agree
    within ``stop_tol`` (its minimum is then confirmed, not a lucky sample).
    ``pin``: with one thread, the measuring thread is bound to one core for the measurement
    (no migration between cores, no cold caches after one). ``clock``: ``"wall"``
    (``perf_counter``) or ``"thread"`` (the measuring thread's CPU time: time the thread spent
    descheduled by other processes is not counted; one thread only). ``warmup``: calls per
    runner before the rounds; with ``warm_until_stable``, more calls until three in a row
    bring no new minimum (at most 25).
    """

    rounds: int = 25
    warmup: int = 2
    min_sample_ms: float = 0.0
    # Pinned by default: the one-off comparison of issue 29 (docs/latency.md) found a pinned
    # timer far more repeatable than an unpinned one. The other options stay off until
    # bench/timer_variants.py ranks them on this machine.
    pin: bool = True
    clock: str = "wall"
    warm_until_stable: bool = False
    stop_k: int = 0
    stop_tol: float = 0.01
    min_rounds: int = 10


def _pick_core() -> int | None:
    """The allowed core the other processes use least right now (from /proc/stat over 50 ms)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))

    def busy() -> dict[int, int]:
        out = {}
        try:
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("cpu") and line[3].isdigit():
                        fields = line.split()
                        # user nice system irq softirq steal
                        out[int(fields[0][3:])] = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
        except (OSError, IndexError, ValueError):
            pass
        return out

    before = busy()
    time.sleep(0.05)
    after = busy()
    load = {c: after.get(c, 0) - before.get(c, 0) for c in allowed}
    return min(allowed, key=lambda c: (load[c], -c))


@contextlib.contextmanager
def pinned(threads: int, enabled: bool = True) -> Iterator[int | None]:
    """Bind the calling thread to one core while it measures with one thread; yields the core."""
    if not enabled or threads != 1 or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    previous = os.sched_getaffinity(0)
    core = _pick_core()
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        yield None
        return
    try:
        yield core
    finally:
        os.sched_setaffinity(0, previous)


def _converged(samples: list[float], k: int, tol: float) -> bool:
    if len(samples) < k:
        return False
    smallest = heapq.nsmallest(k, samples)
    return smallest[-1] <= smallest[0] * (1 + tol)


def measure_interleaved(
    runners: Mapping[Hashable, Runner],
    backend: Backend,
    *,
    rounds: int | None = None,
    warmup: int | None = None,
    min_sample_ms: float | None = None,
    seed: int = 0,
    on_round: Callable[[int], None] | None = None,
    timer: TimerSettings | None = None,
) -> dict[Hashable, Timing]:
    """Time every runner, round-robin in a random order each round (see :class:`TimerSettings`;
    ``rounds``, ``warmup`` and ``min_sample_ms`` override its fields).

    ``min_sample_ms``: a runner faster than this is called several times per sample (the
    sample is divided back), so the timer's own overhead stays small against the work.
    """
    timer = timer or TimerSettings()
    overrides = {k: v for k, v in (("rounds", rounds), ("warmup", warmup),
                                   ("min_sample_ms", min_sample_ms)) if v is not None}
    timer = dataclasses.replace(timer, **overrides)
    if timer.rounds < 1:
        raise LatencyError("rounds must be at least 1")
    if timer.clock not in ("wall", "thread"):
        raise LatencyError(f"unknown timer clock {timer.clock!r} (known: wall, thread)")
    keys = list(runners)
    rng = np.random.default_rng(seed)
    sync = backend.synchronize
    clock_ns = time.thread_time_ns if timer.clock == "thread" and backend.threads == 1 \
        else time.perf_counter_ns
    repeats: dict[Hashable, int] = {}
    samples: dict[Hashable, list[float]] = {k: [] for k in keys}
    active = list(range(len(keys)))
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection inside a sample would be charged to that candidate
    try:
        with backend.session(), pinned(backend.threads, timer.pin):
            for key in keys:
                run = runners[key]
                calls = []
                while True:
                    sync()
                    start = clock_ns()
                    run()
                    sync()
                    calls.append((clock_ns() - start) / 1e6)
                    if len(calls) < max(1, timer.warmup):
                        continue
                    if not timer.warm_until_stable or len(calls) >= 25 \
                            or min(calls[-3:]) > min(calls[:-3] or [math.inf]) * 0.99:
                        break
                per_call_ms = min(calls[-max(1, timer.warmup):])
                repeats[key] = max(1, math.ceil(timer.min_sample_ms / max(per_call_ms, 1e-3)))
            for round_index in range(timer.rounds):
                for index in rng.permutation(active):
                    key = keys[index]
                    run, count = runners[key], repeats[key]
                    sync()
                    start = clock_ns()
                    for _ in range(count):
                        run()
                    sync()
                    samples[key].append((clock_ns() - start) / 1e6 / count)
                if on_round is not None:
                    on_round(round_index)
                if timer.stop_k and round_index + 1 >= timer.min_rounds:
                    active = [i for i in active
                              if not _converged(samples[keys[i]], timer.stop_k, timer.stop_tol)]
                    if not active:
                        break
    finally:
        if gc_was_enabled:
            gc.enable()
    return {k: Timing(min(v), statistics.median(v), len(v), tuple(v)) for k, v in samples.items()}
