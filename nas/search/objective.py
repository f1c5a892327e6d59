"""The objective: latency from the predictor, accuracy from an estimator, the reward of both.

The same code scores a candidate in the search process, in a local worker process and in a Ray
worker. What a worker needs to rebuild the estimator is an ``AccuracyJob`` (small, picklable)
and the job's ``JobInputs`` (the data set and, for a supernet estimator, the supernet): a local
worker loads those from the files itself, a Ray worker takes the copy the search process put
in Ray's object store. Each process builds the estimator once and keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nas.accuracy.base import AccuracyEstimator, Estimate
from nas.accuracy.supernet import (
    DEFAULT_FINETUNE_STEPS,
    Supernet,
    SupernetEstimator,
    SupernetRecipe,
    cached_supernet,
    finetune_recipe,
    load_supernet,
    supernet_cache_path,
)
from nas.accuracy.train import Recipe, TrainEstimator, check_device
from nas.accuracy.zero_cost import ZeroCostEstimator
from nas.data import ImageData, load_data
from nas.errors import EstimatorError
from nas.search.reward import Reward
from nas.search.trial import TrialResult
from nas.spec import ArchSpec

__all__ = ["ESTIMATORS", "AccuracyJob", "JobInputs", "Objective", "estimate_accuracy",
           "job_inputs"]

ESTIMATORS = ("supernet", "train", "zero-cost:params", "zero-cost:synflow", "zero-cost:naswot",
              "supernet:PATH")


@dataclass(frozen=True)
class AccuracyJob:
    """Everything that decides an accuracy estimate; equal jobs give equal estimates.

    The default estimator is the weight-sharing supernet, trained here once per data set and
    resolution (``supernet_steps``, cached; ``nas.accuracy.supernet.cached_supernet``), each
    sub-network fine-tuned 60 steps before it is scored. How it ranks architectures against
    stand-alone training, against every other estimator, and why it is the default:
    docs/accuracy.md (figures from bench/estimator_ranking.py and bench/reference_lr.py). The
    zero-cost proxies' scores are not accuracies, so the soft reward's trade-off,
    ACC x (LAT/T)^-0.07, means nothing with them."""

    data: str = "digits-hard"
    resolution: int = 32            # the ranking benchmark's proxy task
    estimator: str = "supernet"     # one of ESTIMATORS
    epochs: int = 1                 # train only
    batch_size: int = 64
    lr: float = 0.1
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None      # torch threads per evaluation (None: all cores)
    # supernet only: train each inherited sub-network this many steps before scoring it (None:
    # 60 for a supernet, the benchmark's setting, docs/accuracy.md; 0 otherwise), at lr 0.05.
    finetune_steps: int | None = None
    finetune_lr: float = 0.05
    supernet_steps: int = 400       # supernet only: training steps of the cached supernet

    def __post_init__(self) -> None:
        kind, _, arg = self.estimator.partition(":")
        if not (self.estimator in ESTIMATORS[:5] or (kind == "supernet" and arg)):
            raise EstimatorError(f"unknown estimator {self.estimator!r}; choose supernet, "
                                 f"supernet:PATH, train or zero-cost:params|synflow|naswot")
        if self.finetune_steps is None:
            object.__setattr__(self, "finetune_steps",
                               DEFAULT_FINETUNE_STEPS if kind == "supernet" else 0)
        if self.finetune_steps < 0 or not 0 < self.finetune_lr < float("inf"):
            raise EstimatorError("finetune steps must be >= 0 and the fine-tuning lr > 0")
        if self.finetune_steps and kind != "supernet":
            raise EstimatorError("fine-tuning steps apply to a supernet estimator "
                                 "(--estimator supernet or supernet:PATH) only")
        if self.supernet_steps < 1:
            raise EstimatorError(f"the supernet needs at least 1 training step, got "
                                 f"{self.supernet_steps}")

    @property
    def supernet_recipe(self):
        """The recipe of the supernet that ``--estimator supernet`` trains and caches."""
        steps = self.supernet_steps
        return SupernetRecipe(steps=steps, sort_every=max(1, steps // 3), seed=self.seed)

    def _check(self):
        """Every setting checked before anything is loaded or trained, whichever estimator
        uses it: a bad --epochs or --device must not wait for a supernet's training. Returns
        the training recipe."""
        recipe = Recipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                        seed=self.seed)
        check_device(self.device)
        if self.estimator.startswith("supernet") and self.device != "cpu":
            raise EstimatorError("the supernet estimator runs on the CPU; on a GPU use "
                                 "--estimator train")
        return recipe

    @property
    def inputs_key(self) -> tuple:
        """The settings the ``JobInputs`` depend on (not threads, device or fine-tuning)."""
        return self.data, self.resolution, self.estimator, self.seed, self.supernet_steps

    def validate(self) -> None:
        """Check every setting and input without training anything: the recipe, the device,
        the data set (read once per process and kept), and a ``supernet:PATH`` checkpoint (read);
        the other estimators are built. Only ``--estimator supernet``'s own supernet is left to
        ``load_inputs``, which trains it when the cache has none."""
        if self.estimator == "supernet":
            self._check()
            self.data_set()
        else:
            Objective(self, predictor=None, reward=None).check()

    def data_set(self) -> ImageData:
        """The job's data set, read once per process."""
        key = (self.data, self.resolution, self.seed)
        if key not in _DATA:
            _DATA[key] = load_data(self.data, self.resolution, seed=self.seed)
        return _DATA[key]

    def load_inputs(self, on_step=None) -> JobInputs:
        """The data set and, for a supernet estimator, the supernet; ``--estimator supernet``
        trains its supernet first if the cache has none for this data (``on_step(step, total,
        loss)`` reports the progress)."""
        self._check()
        data = self.data_set()
        kind, _, arg = self.estimator.partition(":")
        if kind != "supernet":
            return JobInputs(data)
        if arg:
            return JobInputs(data, load_supernet(arg)[0])
        return JobInputs(data, cached_supernet(self.data, data, self.supernet_recipe,
                                               on_step=on_step))

    def build(self, on_step=None, inputs: JobInputs | None = None) -> AccuracyEstimator:
        """The estimator, from ``inputs`` (default: loaded here, see ``load_inputs``)."""
        recipe = self._check()
        if inputs is None:
            inputs = self.load_inputs(on_step)
        data = inputs.data
        kind, _, arg = self.estimator.partition(":")
        if kind == "train":
            return TrainEstimator(data, recipe, device=self.device, threads=self.threads)
        if kind == "zero-cost":
            return ZeroCostEstimator(data, arg, seed=self.seed)
        finetune = finetune_recipe(self.finetune_steps, lr=self.finetune_lr,
                                   batch_size=self.batch_size, seed=self.seed) \
            if self.finetune_steps else None
        return SupernetEstimator(inputs.supernet, data, finetune=finetune, threads=self.threads)

    def supernet_path(self):
        """The cache file of ``--estimator supernet``'s supernet (None for other estimators)."""
        if self.estimator != "supernet":
            return None
        return supernet_cache_path(self.data, self.resolution, self.supernet_recipe)

    @property
    def unit(self) -> str:
        """'%' for accuracy estimators (training, supernet); '' for zero-cost scores."""
        return "" if self.estimator.startswith("zero-cost") else "%"

    def describe(self) -> str:
        if self.estimator == "train":
            return f"{self.epochs}-epoch training on {self.data} at {self.resolution}px " \
                   f"(batch {self.batch_size}, lr {self.lr:g}, seed {self.seed})"
        tuned = (f", each fine-tuned {self.finetune_steps} steps at lr {self.finetune_lr:g}"
                 if self.finetune_steps else "")
        name = (f"supernet ({self.supernet_steps} steps, seed {self.seed})"
                if self.estimator == "supernet" else self.estimator)
        return f"{name}{tuned} on {self.data} at {self.resolution}px"


@dataclass(frozen=True)
class JobInputs:
    """What an estimator is built from besides its settings. Loaded once per process (and,
    for a Ray run, put in the object store once per run, so that a worker on another machine
    needs neither the data files nor the supernet cache)."""

    data: ImageData
    supernet: Supernet | None = None  # supernet estimators only


_DATA: dict[tuple, ImageData] = {}
_INPUTS: dict[tuple, JobInputs] = {}
_CACHE: dict[AccuracyJob, AccuracyEstimator] = {}


def job_inputs(job: AccuracyJob, on_step=None) -> JobInputs:
    """This process's ``JobInputs`` of ``job``, loaded on first use."""
    inputs = _INPUTS.get(job.inputs_key)
    if inputs is None:
        inputs = _INPUTS[job.inputs_key] = job.load_inputs(on_step)
    return inputs


def estimate_accuracy(job: AccuracyJob, spec_json: str,
                      inputs: Callable[[], JobInputs] | None = None) -> dict[str, Any]:
    """Score one architecture (given as JSON) in this process; never raises for a bad
    candidate. The entry point of worker processes. ``inputs`` gives the job's inputs when
    this process has no estimator for it yet (default: ``job_inputs``, from the files)."""
    estimator = _CACHE.get(job)
    if estimator is None:
        estimator = _CACHE[job] = job.build(inputs=inputs() if inputs else job_inputs(job))
    return {**_outcome(estimator.estimate(ArchSpec.from_json(spec_json))), "pid": os.getpid()}


def _outcome(estimate: Estimate) -> dict[str, Any]:
    """An Estimate as the plain dict that crosses process boundaries."""
    return {"score": estimate.score, "cost_seconds": estimate.cost_seconds,
            "failed": estimate.failed, "reason": estimate.reason, "details": estimate.details}


@dataclass
class Objective:
    """Reward of a candidate: ``reward(accuracy, predicted latency)``."""

    job: AccuracyJob
    predictor: Any                  # a LatencyPredictor
    reward: Reward
    estimator: AccuracyEstimator | None = field(default=None, repr=False)

    def check(self, on_step=None) -> None:
        """Build the job's estimator here, so that a bad data path or checkpoint stops the
        run before the first candidate instead of failing every one of them, and so that the
        supernet of ``--estimator supernet`` is trained (``on_step`` reports it) before any
        worker needs it."""
        if self.estimator is None and self.job not in _CACHE:
            _CACHE[self.job] = self.job.build(inputs=job_inputs(self.job, on_step))

    def latency_ms(self, spec: ArchSpec) -> float:
        return float(self.predictor.predict([spec])[0])

    def finish(self, spec: ArchSpec, index: int, latency_ms: float,
               outcome: dict[str, Any] | Estimate) -> TrialResult:
        """The trial result from an accuracy outcome (a worker's dict or an Estimate)."""
        if isinstance(outcome, Estimate):
            outcome = _outcome(outcome)
        if outcome["failed"]:
            return TrialResult(spec=spec, index=index, latency_ms=latency_ms,
                               cost_seconds=outcome["cost_seconds"], failed=True,
                               reason=outcome["reason"] or "failed")
        accuracy = float(outcome["score"])
        return TrialResult(spec=spec, index=index, latency_ms=latency_ms, accuracy=accuracy,
                           reward=self.reward(accuracy, latency_ms),
                           cost_seconds=outcome["cost_seconds"],
                           details={k: v for k, v in outcome["details"].items()
                                    if isinstance(v, int | float | str)})

    def __call__(self, spec: ArchSpec, index: int) -> TrialResult:
        """Score in this process: with the given estimator, else with the job's (built once
        per process, in the search process as in a worker)."""
        outcome = self.estimator.estimate(spec) if self.estimator is not None else \
            estimate_accuracy(self.job, spec.to_json())
        return self.finish(spec, index, self.latency_ms(spec), outcome)
