"""Short stand-alone training: the most faithful (and most expensive) accuracy estimate."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nas.accuracy.base import AccuracyEstimator, adapt_spec
from nas.build import build_model
from nas.data import ImageData
from nas.errors import EstimatorError
from nas.spec import ArchSpec
from nas.threads import torch_threads, training_threads

__all__ = ["AUGMENTATIONS", "Recipe", "TrainEstimator", "TrainingFailed", "augment_batch",
           "evaluate", "recalibrate_bn", "train_model"]


class TrainingFailed(RuntimeError):
    pass


# Training-time augmentation, drawn per image from the training generator: "flip" mirrors half
# of the images left to right; "crop-flip" also shifts each image by up to CROP_PAD pixels in
# each direction (a random crop of the image padded by its edge pixels: the usual "pad and
# crop" without inventing a border colour), as CIFAR and Fashion-MNIST recipes do.
AUGMENTATIONS = ("none", "flip", "crop-flip")
CROP_PAD = 2


def augment_batch(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``images`` (N, C, H, W) with ``kind`` of augmentation applied per image."""
    if kind == "none":
        return images
    count, channels, height, width = images.shape
    if kind == "crop-flip":
        padded = F.pad(images, (CROP_PAD,) * 4, mode="replicate")
        dy = torch.randint(0, 2 * CROP_PAD + 1, (count,), generator=generator)
        dx = torch.randint(0, 2 * CROP_PAD + 1, (count,), generator=generator)
        rows = (dy[:, None] + torch.arange(height))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width))[:, None, None, :]
        images = padded[torch.arange(count)[:, None, None, None],
                        torch.arange(channels)[None, :, None, None], rows, cols]
    flip = torch.rand(count, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a training run; saved with every result."""

    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "sgd"          # "sgd" (Nesterov momentum 0.9) or "adamw"
    lr: float = 0.1
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.5      # linear warm-up, then cosine decay to zero
    seed: int = 0
    channels_last: bool = True
    compile: bool = False           # torch.compile the model (pays off only for long runs)
    steps: int | None = None        # a fixed number of steps instead of whole epochs
    augment: str = "none"           # "none", "flip" or "crop-flip" (see AUGMENTATIONS)
    ema_decay: float = 0.0          # > 0: the result is the weights' exponential moving average

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise EstimatorError("a recipe needs at least one epoch and a batch size of at least 1")
        if self.steps is not None and self.steps < 1:
            raise EstimatorError(f"steps must be at least 1, got {self.steps}")
        if self.augment not in AUGMENTATIONS:
            raise EstimatorError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got "
                                 f"{self.augment!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise EstimatorError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not (0 < self.lr < math.inf and 0 <= self.label_smoothing < 1
                and 0 <= self.weight_decay < math.inf):
            raise EstimatorError("lr must be > 0, label_smoothing in [0, 1), weight_decay >= 0 "
                                 "(all finite)")
        if not 0 <= self.ema_decay < 1:
            raise EstimatorError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.ema_decay:  # absent when off: a recipe's dict (and results' keys) as before
            del out["ema_decay"]
        return out


def _optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # No weight decay on BN parameters and biases, as in the MobileNet recipes.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, data: ImageData, *, batches: int = 20,
                   batch_size: int = 128, device: str = "cpu", channels_last: bool = True,
                   seed: int = 0) -> None:
    """Recompute every BatchNorm's running statistics as an exact average over training batches.

    V3's BN momentum (0.01) suits ImageNet's hundreds of thousands of steps; after a short
    training the running statistics are still mostly their initial values and evaluation
    collapses to chance. A cumulative average over a few batches fixes that, for short training
    as for sub-networks of a supernet.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    generator = torch.Generator().manual_seed(seed)
    try:
        for index, (images, _) in enumerate(data.batches("train", batch_size, shuffle=True,
                                                         generator=generator)):
            if index == batches:
                break
            images = images.to(device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            model(images)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageData, *, batch_size: int = 256,
             device: str = "cpu", channels_last: bool = True, split: str = "val") -> float:
    """Top-1 accuracy (%) on ``split``: ``val`` (what search-time scores use) or ``test``
    (final reports, where the data set has official test images)."""
    model.eval()
    correct = total = 0
    for images, labels in data.batches(split, batch_size):
        images = images.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        correct += int((model(images).argmax(1).cpu() == labels).sum())
        total += len(labels)
    return 100.0 * correct / max(1, total)


def train_model(model: torch.nn.Module, data: ImageData, recipe: Recipe, *,
                device: str = "cpu",
                on_step: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train in place with ``recipe``; returns the loss history summary. Raises
    ``TrainingFailed`` on a non-finite loss."""
    steps_per_epoch = max(1, len(data.y_train) // recipe.batch_size)
    total = recipe.steps or steps_per_epoch * recipe.epochs
    warmup = max(1, round(recipe.warmup_epochs * steps_per_epoch))
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _schedule(step, total, warmup))
    step_fn = torch.compile(model) if recipe.compile else model
    use_bf16 = device.startswith("cuda")
    generator = torch.Generator().manual_seed(recipe.seed)
    average = None
    if recipe.ema_decay:
        average = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(recipe.ema_decay))
    step, last_loss = 0, float("nan")
    model.train()
    while step < total:
        epoch_start = step
        for images, labels in data.batches("train", recipe.batch_size, shuffle=True,
                                           generator=generator, drop_last=True):
            if step == total:
                break
            images = augment_batch(images, recipe.augment, generator)
            images, labels = images.to(device), labels.to(device)
            if recipe.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
                loss = F.cross_entropy(step_fn(images), labels,
                                       label_smoothing=recipe.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingFailed(f"loss became {float(loss.detach())} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update_parameters(model)
            last_loss = float(loss.detach())
            step += 1
            if on_step is not None:
                on_step(step, total, last_loss)
        if step == epoch_start:  # fewer images than one batch: nothing to train on
            break
    if average is not None and step:
        # the averaged weights; BatchNorm statistics belong to the last weights, so every
        # caller recomputes them (recalibrate_bn) before evaluating
        with torch.no_grad():
            for mine, averaged in zip(model.parameters(), average.module.parameters(),
                                      strict=True):
                mine.copy_(averaged)
    return {"steps": step, "final_loss": last_loss}


def check_device(device: str) -> None:
    """``cpu`` or ``cuda`` (``cuda:1``), the latter only where torch sees a CUDA device."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise EstimatorError(f"unknown device {device!r}: use cpu or cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise EstimatorError("--device cuda asked for, but torch sees no CUDA device")


class TrainEstimator(AccuracyEstimator):
    """Validation top-1 (%) after training the spec from scratch with ``recipe``."""

    name = "train"

    def __init__(self, data: ImageData, recipe: Recipe = Recipe(), *, device: str = "cpu",
                 threads: int | None = None,
                 on_step: Callable[[int, int, float], None] | None = None):
        check_device(device)
        self.data, self.recipe, self.device = data, recipe, device
        self.threads = threads or training_threads()
        self.on_step = on_step

    def _score(self, spec: ArchSpec) -> tuple[float, dict[str, Any]]:
        spec = adapt_spec(spec, self.data.num_classes, self.data.resolution, self.data.channels)
        with torch_threads(self.threads):
            torch.manual_seed(self.recipe.seed)
            model = build_model(spec, seed=self.recipe.seed)
            summary = train_model(model, self.data, self.recipe, device=self.device,
                                  on_step=self.on_step)
            recalibrate_bn(model, self.data, device=self.device,
                           channels_last=self.recipe.channels_last, seed=self.recipe.seed)
            top1 = evaluate(model, self.data, device=self.device,
                            channels_last=self.recipe.channels_last)
        return top1, {"top1": top1, "recipe": self.recipe.to_dict(), "data": self.data.name,
                      **summary}
