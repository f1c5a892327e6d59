"""Scoring a sub-network with the supernet's weights: a short fine-tune, BatchNorm
recalibration, validation top-1."""

from __future__ import annotations

from typing import Any

import torch

from nas.accuracy.base import AccuracyEstimator, adapt_spec
from nas.accuracy.supernet.elastic import Supernet
from nas.accuracy.train import Recipe, evaluate, recalibrate_bn, train_model
from nas.data import ImageData
from nas.spec import ArchSpec
from nas.threads import torch_threads, training_threads

__all__ = ["DEFAULT_FINETUNE_STEPS", "FINETUNE_LR", "SupernetEstimator", "finetune_recipe"]

# Fine-tuning of inherited sub-networks: the setting bench/estimator_ranking.py scores, chosen
# as docs/accuracy.md tells (how it ranks: that page's figures, rendered from bench/results).
FINETUNE_LR = 0.05
DEFAULT_FINETUNE_STEPS = 60


def finetune_recipe(steps: int, *, lr: float = FINETUNE_LR, batch_size: int = 64,
                    seed: int = 0) -> Recipe:
    """The short training given to an inherited sub-network before it is scored: ``steps``
    with the rate decaying from ``lr`` on a cosine, without warm-up (the weights are trained
    already)."""
    return Recipe(steps=steps, batch_size=batch_size, lr=lr, warmup_epochs=0.0, seed=seed)


class SupernetEstimator(AccuracyEstimator):
    """Validation top-1 (%) of a sub-network with inherited weights, after its BatchNorm
    statistics are recalibrated on a few training batches.

    ``finetune``: optionally, a short training recipe (``Recipe(steps=N, ...)``) run on the
    inherited weights first; the sub-network starts from the supernet, not from scratch.
    ``threads``: torch threads while scoring (default: as ``TrainEstimator``).
    """

    name = "supernet"

    def __init__(self, supernet: Supernet, data: ImageData, *, bn_batches: int = 10,
                 finetune: Recipe | None = None, threads: int | None = None):
        self.supernet, self.data, self.bn_batches = supernet, data, bn_batches
        self.finetune = finetune
        self.threads = threads or training_threads()

    def _score(self, spec: ArchSpec) -> tuple[float, dict[str, Any]]:
        with torch_threads(self.threads):
            return self._score_here(spec)

    def _score_here(self, spec: ArchSpec) -> tuple[float, dict[str, Any]]:
        space = self.supernet.space
        spec = adapt_spec(spec, space.num_classes, space.input_size)
        model = self.supernet.extract(spec)
        details: dict[str, Any] = {}
        if self.finetune is not None:
            # Dropout draws from the global generator: seed it, so that a candidate's score
            # does not depend on which candidates were scored before it in this process.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.finetune.seed)
                details["finetune"] = train_model(model, self.data, self.finetune)
        channels_last = self.finetune is not None and self.finetune.channels_last
        recalibrate_bn(model, self.data, batches=self.bn_batches, channels_last=channels_last)
        top1 = evaluate(model, self.data, channels_last=channels_last)
        return top1, {"top1": top1, **details}
