"""Run a search's trials on Ray Tune (``--executor ray --workers N [--ray-address ADDR]``).

Tune drives the loop: a ``Tuner`` runs the project's ``Objective`` as its trainable, one trial
per candidate, ``workers`` at a time, with actors reused between trials (a fresh Ray worker
costs seconds here). The Optuna-backed strategies (tpe, nsga2) run through
``ray.tune.search.optuna.OptunaSearch`` with the same sampler; the others through
``StrategySearcher``, an adapter from the ask/tell ``Strategy`` to Tune's ``Searcher`` that
keeps the local runner's batches (and so its reproducibility and resume-by-replay). Either way
every finished trial is written to the run's storage from the driver as soon as Tune reports
it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from typing import Any

from nas.search.runner import Runner
from nas.search.trial import TrialResult
from nas.spec import ArchSpec

__all__ = ["run_on_ray"]  # StrategySearcher too, built on first access (imports Ray)

_QUIET = {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}


def _trainable(config: dict[str, Any], objective=None, space=None) -> None:
    """One candidate: the same ``Objective`` as a local run, reported to Tune."""
    import torch
    from ray import tune

    torch.set_num_threads(objective.job.threads or 1)
    if "spec" in config:
        spec, index = ArchSpec.from_json(config["spec"]), config["index"]
    else:  # OptunaSearch hands out the decisions themselves
        spec, index = space.from_params(config), -1
    result = objective(spec, index)
    tune.report({"score": result.reward if result.ok else float("nan"),
                 "accuracy": result.accuracy if result.ok else float("nan"),
                 "latency_ms": result.latency_ms, "failed": result.failed,
                 "reason": result.reason, "cost_seconds": result.cost_seconds,
                 "spec": spec.to_json()})


def _result_from(metrics: dict[str, Any] | None, spec: ArchSpec, index: int,
                 objective) -> TrialResult:
    if not metrics or "failed" not in metrics:
        return TrialResult(spec=spec, index=index, latency_ms=objective.latency_ms(spec),
                           failed=True, reason="the Ray trial raised (see Tune's error file)")
    outcome = {"score": metrics["accuracy"], "cost_seconds": metrics["cost_seconds"],
               "failed": metrics["failed"], "reason": metrics["reason"], "details": {}}
    return objective.finish(spec, index, metrics["latency_ms"], outcome)


def _searcher_base():
    from ray.tune.search import Searcher

    class StrategySearcher(Searcher):
        """Tune ``Searcher`` over a ``Runner``: hands out its batches, records results."""

        def __init__(self, runner: Runner):
            super().__init__(metric="score", mode="max")
            self.runner = runner
            self.batch: list[tuple[int, ArchSpec]] = []
            self.queue: list[tuple[int, ArchSpec]] = []
            self.live: dict[str, tuple[int, ArchSpec]] = {}
            self.fresh: set[int] = set()

        def _refill(self) -> None:
            # Batches already in storage (a resumed run) are replayed without Tune.
            while not self.queue and not self.live and not self.runner.done:
                if self.batch:
                    self.runner.finish_batch(self.batch, self.fresh)
                self.batch, self.fresh = self.runner.next_batch(), set()
                self.queue = self.runner.pending(self.batch)
            if not self.queue and not self.live and self.batch:
                self.runner.finish_batch(self.batch, self.fresh)
                self.batch = []

        def suggest(self, trial_id: str):
            from ray.tune.search import Searcher

            self._refill()
            if self.queue:
                index, spec = self.queue.pop(0)
                self.live[trial_id] = (index, spec)
                return {"spec": spec.to_json(), "index": index}
            return Searcher.FINISHED if self.runner.done and not self.live else None

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            if trial_id not in self.live:
                return
            index, spec = self.live.pop(trial_id)
            self.runner.record(_result_from(None if error else result, spec, index,
                                            self.runner.objective))
            self.fresh.add(index)
            self._refill()

        def save(self, checkpoint_path: str) -> None:  # the run's storage is the checkpoint
            pass

        def restore(self, checkpoint_path: str) -> None:
            pass

    return StrategySearcher


def __getattr__(name: str):
    if name == "StrategySearcher":  # built lazily: importing Ray costs over a second
        return _searcher_base()
    raise AttributeError(name)


def _optuna_search(runner: Runner, settings) -> tuple[Any, int]:
    """OptunaSearch with the strategy's sampler, warm-started from the stored trials."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    strategy, reward, space = runner.strategy, runner.objective.reward, runner.strategy.space
    stored = [r for r in runner.history.values() if r.ok]
    points = [space.params(r.spec) for r in stored]
    rewards = [r.reward if not reward.multi_objective else [r.accuracy, r.latency_ms]
               for r in stored]
    if strategy.seed_arch is not None and not runner.history:
        points.append(space.params(strategy.seed_arch))
    sampler = type(strategy.study.sampler)(seed=settings.seed) \
        if settings.strategy == "nsga2" else optuna.samplers.TPESampler(
            seed=settings.seed, multivariate=True, constant_liar=True)
    metric: Any = ["accuracy", "latency_ms"] if reward.multi_objective else "score"
    mode: Any = ["max", "min"] if reward.multi_objective else "max"
    search = OptunaSearch(space=space.distributions(), metric=metric, mode=mode,
                          sampler=sampler, points_to_evaluate=points or None,
                          evaluated_rewards=rewards if stored else None)
    return search, max(0, runner.trials - len(runner.history))


def run_on_ray(runner: Runner, settings, *, address: str | None = None) -> list[TrialResult]:
    """Run ``runner``'s remaining trials on Ray (a local instance, or ``address``)."""
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    if not address:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local only: no token file
    import ray
    from ray import tune

    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    workers = runner.workers
    objective = runner.objective
    if workers > 1 and not objective.job.threads:
        objective = dataclasses.replace(objective, job=dataclasses.replace(objective.job,
                                                                           threads=1))
        runner.objective = objective
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address="local", num_cpus=workers, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
    try:
        if settings.strategy in ("tpe", "nsga2"):
            search, samples = _optuna_search(runner, settings)
            callbacks = [_recorder(runner)]
        else:
            search, samples, callbacks = _searcher_base()(runner), -1, []
        if samples:
            trainable = tune.with_parameters(_trainable, objective=objective,
                                             space=runner.strategy.space)
            with tempfile.TemporaryDirectory(prefix="nas-ray-") as scratch:
                tuner = tune.Tuner(
                    trainable,
                    tune_config=tune.TuneConfig(search_alg=search, num_samples=samples,
                                                max_concurrent_trials=workers,
                                                reuse_actors=True),
                    run_config=tune.RunConfig(name="search", storage_path=scratch, verbose=0,
                                              callbacks=callbacks))
                tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    if settings.strategy in ("tpe", "nsga2"):
        runner.results = list(runner.history.values())
    return runner.results


def _recorder(runner: Runner):
    """A driver-side Tune callback writing each OptunaSearch trial to the run's storage."""
    from ray import tune

    class Recorder(tune.Callback):
        def _save(self, trial, error: bool) -> None:
            metrics = None if error else trial.last_result
            config = dict(trial.config)
            spec = runner.strategy.space.from_params(config)
            index = len(runner.history)
            result = _result_from(metrics, dataclasses.replace(spec, name=f"trial-{index}"),
                                  index, runner.objective)
            runner.record(result)
            if runner.on_result is not None:
                runner.on_result(result, len(runner.history), runner.trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._save(trial, error=False)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._save(trial, error=True)

    return Recorder()
