"""The objective: latency from the predictor, accuracy from an estimator, the reward of both.

The same code scores a candidate in the search process, in a local worker process and in a Ray
worker. What a worker needs to rebuild the estimator is an ``AccuracyJob`` (small, picklable);
each process builds the data set and estimator once and keeps them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from nas.accuracy.base import AccuracyEstimator, Estimate
from nas.search.reward import Reward
from nas.search.trial import TrialResult
from nas.spec import ArchSpec

__all__ = ["ESTIMATORS", "AccuracyJob", "Objective", "estimate_accuracy"]

ESTIMATORS = ("train", "zero-cost:params", "zero-cost:synflow", "zero-cost:naswot",
              "supernet:PATH")


@dataclass(frozen=True)
class AccuracyJob:
    """Everything that decides an accuracy estimate; equal jobs give equal estimates."""

    data: str = "digits"
    resolution: int = 16            # digits are 8x8: 16 px keeps every detail, and 200
                                    # candidates fit in 10 minutes on 2 cores
    estimator: str = "train"        # one of ESTIMATORS
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.1
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None      # torch threads per evaluation (None: all cores)
    # supernet only: train each inherited sub-network this many steps before scoring it. 60
    # steps at lr 0.05 (``nas.accuracy.supernet.FINETUNE_LR``) ranked best in
    # bench/estimator_ranking.py (docs/accuracy.md).
    finetune_steps: int = 0
    finetune_lr: float = 0.05

    def __post_init__(self) -> None:
        kind, _, arg = self.estimator.partition(":")
        if not (self.estimator == "train" or self.estimator in ESTIMATORS[:4]
                or (kind == "supernet" and arg)):
            raise ValueError(f"unknown estimator {self.estimator!r}; choose train, "
                             f"zero-cost:params|synflow|naswot or supernet:PATH")
        if self.finetune_steps < 0 or not 0 < self.finetune_lr < float("inf"):
            raise ValueError("finetune steps must be >= 0 and the fine-tuning lr > 0")
        if self.finetune_steps and kind != "supernet":
            raise ValueError("fine-tuning steps apply to a supernet estimator "
                             "(--estimator supernet:PATH) only")

    def build(self) -> AccuracyEstimator:
        from nas.data import load_data

        data = load_data(self.data, self.resolution, seed=self.seed)
        kind, _, arg = self.estimator.partition(":")
        if kind == "train":
            from nas.accuracy.train import Recipe, TrainEstimator

            recipe = Recipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                            seed=self.seed)
            return TrainEstimator(data, recipe, device=self.device, threads=self.threads)
        if kind == "zero-cost":
            from nas.accuracy.zero_cost import ZeroCostEstimator

            return ZeroCostEstimator(data, arg, seed=self.seed)
        from nas.accuracy.supernet import SupernetEstimator, finetune_recipe, load_supernet

        supernet, _ = load_supernet(arg)
        finetune = finetune_recipe(self.finetune_steps, lr=self.finetune_lr,
                                   batch_size=self.batch_size, seed=self.seed) \
            if self.finetune_steps else None
        return SupernetEstimator(supernet, data, finetune=finetune)

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
        return f"{self.estimator}{tuned} on {self.data} at {self.resolution}px"


_CACHE: dict[AccuracyJob, AccuracyEstimator] = {}


def estimate_accuracy(job: AccuracyJob, spec_json: str) -> dict[str, Any]:
    """Score one architecture (given as JSON) in this process; never raises for a bad
    candidate. The entry point of local worker processes."""
    estimator = _CACHE.get(job)
    if estimator is None:
        estimator = _CACHE[job] = job.build()
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

    def check(self) -> None:
        """Build the job's estimator here, so that a bad data path or checkpoint stops the
        run before the first candidate instead of failing every one of them."""
        if self.estimator is None and self.job not in _CACHE:
            _CACHE[self.job] = self.job.build()

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

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Ray workers without an injected estimator (the job's is built there).
        return {**self.__dict__, "estimator": None}
