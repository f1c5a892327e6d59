"""Training a supernet (progressive shrinking, sandwich rule), its checkpoints and the cache of
trained supernets."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from latency_models.lut import cache_dir
from nas.accuracy.supernet.elastic import Supernet
from nas.accuracy.supernet.sampling import (
    ELASTIC_ORDER,
    largest_spec,
    sample_phase,
    sandwich_smallest,
)
from nas.data import ImageData
from nas.errors import EstimatorError, first_line
from nas.export import atomic_path
from nas.runlock import RunLock
from nas.spec import HeadSpec
from search_spaces.mobilenetv3 import BlockwiseSpace, StageChoices, default_space

__all__ = ["CHECKPOINT_VERSION", "SupernetRecipe", "cached_supernet", "load_supernet",
           "save_checkpoint", "space_from_dict", "space_to_dict", "supernet_cache_path",
           "train_supernet"]

# 2: blocks have separate weights for ratio 1 (``ElasticBlock.unexpanded``).
CHECKPOINT_VERSION = 2


@dataclass(frozen=True)
class SupernetRecipe:
    """The defaults are the supernets of bench/estimator_ranking.py, whose ranking figures the
    search's default estimator rests on (docs/accuracy.md)."""

    steps: int = 400
    batch_size: int = 32
    lr: float = 0.05
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    random_subnets: int = 1        # sandwich rule: largest + smallest + this many random
    sort_every: int = 133          # steps between importance sorts (steps // 3, as the benchmark)
    save_every: int = 100
    seed: int = 0
    # Progressive shrinking: the fractions of the steps spent on the largest network alone, then
    # on each further group of ELASTIC_ORDER (kernel and depth; expansion); the remaining steps
    # train every choice. Each phase keeps the previous phases' dimensions elastic.
    phases: tuple[float, ...] = (0.2, 0.2, 0.2)
    # In-place distillation (BigNAS): every smaller sub-network of a step also learns the
    # largest one's predictions through the same head; its loss is
    # (1 - distill) * CE(labels) + distill * CE(teacher).
    distill: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.save_every < 1:
            raise EstimatorError("a supernet recipe needs at least one step (--budget), a batch "
                                 "size of at least 1 and save_every >= 1")
        if not 0 < self.lr < math.inf or self.random_subnets < 0 or self.sort_every < 0:
            raise EstimatorError("lr must be finite and > 0, random_subnets and sort_every >= 0")
        if (len(self.phases) > len(ELASTIC_ORDER) or any(not 0 <= f <= 1 for f in self.phases)
                or sum(self.phases) > 1):
            raise EstimatorError(f"phases: at most {len(ELASTIC_ORDER)} fractions within [0, 1] "
                                 f"summing to at most 1, got {self.phases}")
        if not 0 <= self.distill <= 1:
            raise EstimatorError(f"distill must be within [0, 1], got {self.distill}")


def space_to_dict(space: BlockwiseSpace) -> dict[str, Any]:
    return dataclasses.asdict(space)


def space_from_dict(data: dict[str, Any]) -> BlockwiseSpace:
    stages = tuple(StageChoices(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in stage.items()}) for stage in data["stages"])
    heads = tuple(HeadSpec(**head) for head in data["heads"])
    rest = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
            if k not in ("stages", "heads")}
    return BlockwiseSpace(**rest, stages=stages, heads=heads)


def save_checkpoint(path: Path, supernet: Supernet, optimizer, step: int,
                    recipe: SupernetRecipe) -> None:
    payload = {"format": "nas.supernet", "version": CHECKPOINT_VERSION,
               "space": space_to_dict(supernet.space), "recipe": dataclasses.asdict(recipe),
               "step": step,
               "state_dict": supernet.state_dict(),
               "optimizer": optimizer.state_dict() if optimizer is not None else None}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_supernet(path: str | Path) -> tuple[Supernet, dict[str, Any]]:
    """The supernet of a checkpoint and the checkpoint's payload; anything else raises
    ``EstimatorError`` (``FileNotFoundError`` for a missing file)."""
    try:  # tensors and plain values only: a checkpoint never needs to run code to load
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a corrupted or foreign file fails in many different ways
        raise EstimatorError(f"{path}: not a supernet checkpoint "
                             f"({first_line(exc, 160, with_type=True)})") from None
    if not isinstance(payload, dict) or payload.get("format") != "nas.supernet":
        raise EstimatorError(f"{path}: not a supernet checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise EstimatorError(f"{path}: a supernet checkpoint of format version "
                             f"{payload.get('version')}; this version of nas reads version "
                             f"{CHECKPOINT_VERSION} (train the supernet again)")
    try:
        supernet = Supernet(space_from_dict(payload["space"]))
        supernet.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise EstimatorError(f"{path}: a damaged supernet checkpoint "
                             f"({first_line(exc, 160, with_type=True)})") from None
    return supernet, payload


def train_supernet(space: BlockwiseSpace, data: ImageData,
                   recipe: SupernetRecipe = SupernetRecipe(), *,
                   checkpoint: str | Path | None = None,
                   on_step: Callable[[int, int, float], None] | None = None) -> Supernet:
    """Sandwich-rule training; resumes from ``checkpoint`` if it exists, saving every
    ``save_every`` steps (atomically), so an interruption loses at most that many steps."""
    lock = RunLock(checkpoint, file=True) if checkpoint is not None else contextlib.nullcontext()
    # one trainer per checkpoint; seeded, without touching the caller's RNG
    with lock, torch.random.fork_rng(devices=[]):
        return _train_supernet(space, data, recipe, checkpoint, on_step)


def _train_supernet(space, data, recipe, checkpoint, on_step) -> Supernet:
    space = space.with_resolution(data.resolution, data.num_classes)
    torch.manual_seed(recipe.seed)
    # channels_last: oneDNN's convolutions, depthwise above all, then skip a layout reorder on
    # every call, as the standalone training (nas.accuracy.train) already does.
    supernet = Supernet(space).to(memory_format=torch.channels_last)
    decay = [p for n, p in supernet.named_parameters() if p.ndim > 1 and "to_" not in n]
    rest = [p for n, p in supernet.named_parameters() if not (p.ndim > 1 and "to_" not in n)]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=recipe.lr,
                                momentum=0.9, nesterov=True)
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        loaded, payload = load_supernet(checkpoint)
        supernet.load_state_dict(loaded.state_dict())
        if payload.get("optimizer"):
            optimizer.load_state_dict(payload["optimizer"])
        start = payload["step"]
    largest, heads = largest_spec(space), space.heads
    ends = np.cumsum([int(f * recipe.steps) for f in recipe.phases]).tolist()
    supernet.train()
    step = start
    while step < recipe.steps:
        # Each step's batch and sub-networks depend only on (seed, step): a resumed run
        # continues exactly as an uninterrupted one would.
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        torch.manual_seed(recipe.seed * 1_000_003 + step)  # dropout
        rng = np.random.default_rng([recipe.seed, step])
        images, labels = next(data.batches("train", recipe.batch_size, shuffle=True,
                                           generator=generator))
        images = images.contiguous(memory_format=torch.channels_last)
        lr = 0.5 * recipe.lr * (1 + math.cos(math.pi * step / recipe.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        phase = next((i for i, end in enumerate(ends) if step < end), len(ELASTIC_ORDER))
        specs = [largest]
        if phase > 0:
            specs.append(sandwich_smallest(space, phase, step))
            specs += [sample_phase(space, rng, phase) for _ in range(recipe.random_subnets)]
        # The largest network's features go through every head, so that each head is trained
        # every step (a head that only random sub-networks pick stays near chance). The blocks
        # learn through the first head alone: letting the heads take turns cut the largest
        # network's accuracy sharply (docs/accuracy.md). Its predictions through each head
        # teach the smaller networks that use that head.
        features = supernet.features(images, largest)
        logits = [head(features if h == 0 else features.detach())
                  for h, head in enumerate(supernet.heads)]
        losses = [_checked(F.cross_entropy(out, labels, label_smoothing=recipe.label_smoothing),
                           step) for out in logits]
        sum(losses).backward()
        total = float(sum(loss.detach() for loss in losses)) / len(losses)
        teachers = [out.detach().softmax(dim=1) for out in logits]
        for spec in specs[1:]:
            out = supernet(images, spec)
            loss = F.cross_entropy(out, labels, label_smoothing=recipe.label_smoothing)
            if recipe.distill:
                teacher = teachers[heads.index(spec.head)]
                loss = (1 - recipe.distill) * loss + recipe.distill * F.cross_entropy(out, teacher)
            _checked(loss, step).backward()
            total += float(loss.detach())
        optimizer.step()
        step += 1
        if step in ends and step < recipe.steps:
            # Each phase starts from channels sorted by what the networks so far have learnt.
            supernet.sort_channels()
            optimizer.state.clear()
        elif recipe.sort_every and step % recipe.sort_every == 0 and step < recipe.steps:
            supernet.sort_channels()
            optimizer.state.clear()  # momentum no longer matches the permuted channels
        if checkpoint is not None and (step % recipe.save_every == 0 or step == recipe.steps):
            save_checkpoint(Path(checkpoint), supernet, optimizer, step, recipe)
        if on_step is not None:
            on_step(step, recipe.steps, total / len(specs))
    return supernet


def supernet_cache_path(source: str, resolution: int, recipe: SupernetRecipe) -> Path:
    """Where the supernet trained on ``source`` at ``resolution`` with ``recipe`` is kept:
    ``<cache>/supernets/`` (``$NAS_CACHE_DIR``, else ``~/.cache/nas``), one file per data set,
    resolution and recipe."""
    kind, sep, where = source.partition(":")
    if sep:  # a user's directory: the same folder under another spelling is the same data
        source = f"{kind}:{Path(where).expanduser().resolve()}"
    key = json.dumps([source, resolution, dataclasses.asdict(recipe), CHECKPOINT_VERSION])
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", kind if sep else source).strip("-") or "data"
    return (cache_dir() / "supernets" /
            f"{slug}-{resolution}px-{recipe.steps}steps-seed{recipe.seed}-{digest}.pt")


def cached_supernet(source: str, data: ImageData, recipe: SupernetRecipe = SupernetRecipe(), *,
                    on_step: Callable[[int, int, float], None] | None = None) -> Supernet:
    """The supernet of ``source`` (loaded as ``data``), trained with ``recipe`` over the default
    MobileNetV3 space the first time it is asked for and kept in the cache
    (``supernet_cache_path``) afterwards. An interrupted training continues from its last
    checkpoint."""
    path = supernet_cache_path(source, data.resolution, recipe)
    if path.is_file():
        try:
            supernet, payload = load_supernet(path)
        except ValueError:  # damaged or of an older format: train it again
            path.unlink()
        else:
            if payload.get("step", 0) >= recipe.steps:
                return supernet
    path.parent.mkdir(parents=True, exist_ok=True)
    return train_supernet(default_space(), data, recipe, checkpoint=path, on_step=on_step)


def _checked(loss: torch.Tensor, step: int) -> torch.Tensor:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"supernet loss became {float(loss.detach())} at step {step}")
    return loss
