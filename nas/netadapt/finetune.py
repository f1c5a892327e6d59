"""Training for NetAdapt: the first training, the short fine-tune of a proposal, the long
fine-tune of the result."""

from __future__ import annotations

import torch

from nas.accuracy.train import Recipe, evaluate, recalibrate_bn, train_model
from nas.netadapt.settings import NetAdaptSettings
from nas.threads import torch_threads, training_threads

__all__ = ["FineTuner"]


class FineTuner:
    """Training for NetAdapt: proposals are scored on a holdout of the training images; the
    final network on the real validation images."""

    def __init__(self, data, settings: NetAdaptSettings):
        self.full = data
        self.split = data.holdout(settings.holdout, settings.seed)
        self.settings = settings
        self.threads = settings.threads or training_threads()

    def _recipe(self, **kw):
        kw.setdefault("seed", self.settings.seed)
        return Recipe(batch_size=self.settings.batch_size, **kw)

    def _train_and_score(self, model, data, recipe, on_step=None) -> float:
        device = self.settings.device
        with torch_threads(self.threads):
            torch.manual_seed(recipe.seed)
            train_model(model, data, recipe, device=device, on_step=on_step)
            recalibrate_bn(model, data, device=device, seed=recipe.seed)
            return evaluate(model, data, device=device)

    def initial(self, model, on_step=None) -> float:
        """Train a network given without weights; holdout accuracy."""
        recipe = self._recipe(epochs=self.settings.init_epochs, lr=self.settings.lr)
        return self._train_and_score(model, self.split, recipe, on_step)

    def score(self, model) -> float:
        with torch_threads(self.threads):
            torch.manual_seed(self.settings.seed)
            recalibrate_bn(model, self.split, device=self.settings.device,
                           seed=self.settings.seed)
            return evaluate(model, self.split, device=self.settings.device)

    def short(self, model, iteration: int) -> float:
        """``short_steps`` of fine-tuning; holdout accuracy. Every proposal of an iteration
        sees the same batches."""
        recipe = self._recipe(steps=self.settings.short_steps, lr=self.settings.short_lr,
                              warmup_epochs=0.0, seed=self.settings.seed + iteration)
        return self._train_and_score(model, self.split, recipe)

    def long(self, model, on_step=None) -> float:
        """The long fine-tune on every training image; validation accuracy."""
        recipe = self._recipe(epochs=self.settings.long_epochs, lr=self.settings.lr)
        return self._train_and_score(model, self.full, recipe, on_step)

