"""The search loop: ask the strategy, score the candidates, persist, tell.

Candidates are asked in batches of ``workers`` and told back in ask order once the batch is
finished, so a run is reproducible whichever candidate finishes first: same seed, latency
table, estimator and number of workers give the same history. Each result is
written to the run's storage the moment it finishes.

Resuming replays the stored history through the same loop: the strategy is asked again (it is
deterministic), every candidate already in storage is checked to be the same architecture and
told its stored result without being evaluated again, and the loop carries on from the first
candidate that is missing. Nothing finished is lost and nothing is evaluated twice.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from nas.errors import ResumeMismatch, RunError
from nas.search.objective import Objective, estimate_accuracy
from nas.search.storage import RunStore
from nas.search.strategies import Strategy, spec_key
from nas.search.trial import TrialResult
from nas.spec import ArchSpec
from nas.threads import exit_with_parent

__all__ = ["Evaluator", "ProcessPool", "ResumeMismatch", "Runner", "failed_outcome"]

# Called with (result, finished count, total) after every trial, replayed ones included.
OnResult = Callable[[TrialResult, int, int], None]


class Evaluator(Protocol):
    """Scores a batch somewhere else than in this process (worker processes, a Ray cluster)."""

    def evaluate(self, todo: list[tuple[int, ArchSpec]]) -> Iterator[TrialResult]:
        """The results of ``todo`` ((index, candidate) pairs), each as soon as it finishes;
        a candidate that cannot be scored comes back failed, with the reason."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


class Runner:
    """Drives one search; the executor-independent part (batches, replay, persistence)."""

    def __init__(self, strategy: Strategy, objective: Objective, store: RunStore, trials: int,
                 *, workers: int = 1, on_result: OnResult | None = None):
        if trials < 1 or workers < 1:
            raise RunError("--trials and --workers must be at least 1")
        self.strategy, self.objective, self.store = strategy, objective, store
        self.trials, self.workers, self.on_result = trials, workers, on_result
        self.history = store.history()
        self.results: list[TrialResult] = []
        self.next_index = 0
        self.replayed = 0

    # ------------------------------------------------------------------ batches
    def next_batch(self) -> list[tuple[int, ArchSpec]]:
        """Ask the next batch: (index, candidate) pairs, each named ``trial-<index>``."""
        batch = []
        for _ in range(min(self.workers, self.trials - self.next_index)):
            spec = self.strategy.ask()
            index = self.next_index
            spec = dataclasses.replace(spec, name=f"trial-{index}")
            stored = self.history.get(index)
            if stored is not None and spec_key(stored.spec) != spec_key(spec):
                raise ResumeMismatch(
                    f"trial {index} of the stored run was another architecture than the "
                    f"strategy proposes now: the run was made with other settings (strategy, "
                    f"seed, latency table or space); start a new run with --name")
            batch.append((index, spec))
            self.next_index += 1
        return batch

    def pending(self, batch: list[tuple[int, ArchSpec]]) -> list[tuple[int, ArchSpec]]:
        """Members of ``batch`` without a stored result."""
        return [(index, spec) for index, spec in batch if index not in self.history]

    def record(self, result: TrialResult) -> None:
        """Persist a newly finished trial (before anything else happens)."""
        self.store.write(result)
        self.history[result.index] = result

    def finish_batch(self, batch: list[tuple[int, ArchSpec]], fresh: set[int]) -> None:
        """Tell the strategy the batch's results in ask order."""
        for index, spec in batch:
            result = self.history[index]
            if index not in fresh:
                result = dataclasses.replace(result, spec=spec)
                self.replayed += 1
            self.strategy.tell(spec, result)
            self.results.append(result)
            if self.on_result is not None:
                self.on_result(result, len(self.results), self.trials)

    @property
    def done(self) -> bool:
        return self.next_index >= self.trials

    # ------------------------------------------------------------------ execution
    def run(self, pool: Evaluator | None = None) -> list[TrialResult]:
        """Run to ``trials`` on ``pool`` (which the caller closes); without one, in this
        process (workers=1) or in a pool of local worker processes."""
        own = pool is None and self.workers > 1
        if own:
            pool = ProcessPool(self.objective, self.workers)
        try:
            while not self.done:
                batch = self.next_batch()
                todo = self.pending(batch)
                fresh = set()
                results = pool.evaluate(todo) if pool else \
                    (self.objective(spec, index) for index, spec in todo)
                for result in results:
                    self.record(result)
                    fresh.add(result.index)
                self.finish_batch(batch, fresh)
        finally:
            if own:
                pool.close()
        return self.results


class ProcessPool:
    """Worker processes (spawned, one torch thread each) that estimate accuracy; the latency
    and reward are computed here. A worker that dies fails only its candidate."""

    def __init__(self, objective: Objective, workers: int,
                 function: Callable[..., dict] = estimate_accuracy):
        self.objective, self.workers, self.function = objective, workers, function
        job = objective.job
        self.job = job if job.threads else dataclasses.replace(job, threads=1)
        self._start()

    def _start(self) -> None:
        self.executor = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"),
                                            initializer=exit_with_parent,
                                            initargs=(os.getpid(),))

    def evaluate(self, todo: list[tuple[int, ArchSpec]]) -> Iterator[TrialResult]:
        """Results as they finish. When a worker dies, every candidate in flight sees a broken
        pool; those are run again one at a time in a fresh pool, so that only the candidate
        that kills its worker on its own is failed."""
        broken = yield from self._evaluate(todo, alone=False)
        for item in broken:
            yield from self._evaluate([item], alone=True)

    def _evaluate(self, todo, alone: bool):
        futures = {self.executor.submit(self.function, self.job, spec.to_json()):
                   (index, spec) for index, spec in todo}
        remaining, broken, dead = set(futures), [], False
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in finished:
                index, spec = futures[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    dead = True
                    if not alone:
                        broken.append((index, spec))
                        continue
                    outcome = failed_outcome("the worker process died on this candidate "
                                             "(killed, out of memory or crashed)")
                except Exception as exc:  # noqa: BLE001 - e.g. the spec could not be sent
                    outcome = failed_outcome(f"{type(exc).__name__}: {exc}")
                yield self.objective.finish(spec, index, self.objective.latency_ms(spec),
                                            outcome)
        if dead:
            self.executor.shutdown(cancel_futures=True)
            self._start()
        return sorted(broken)

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)


def failed_outcome(reason: str) -> dict:
    """The outcome of a candidate that could not be scored, as a worker would return it."""
    return {"score": None, "cost_seconds": 0.0, "failed": True, "reason": reason, "details": {}}
