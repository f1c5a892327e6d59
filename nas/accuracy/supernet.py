"""A weight-sharing supernet over a block-wise MobileNetV3 space, in the manner of Once-for-All.

* elastic kernel: one 7x7 depthwise kernel per block; 5x5 is its centre through a learned 25x25
  transform, 3x3 the centre of that through a learned 9x9 transform;
* elastic width: expansion, stage output and stem widths are channel prefixes of the largest
  layer (``sort_channels`` orders expansion channels by importance so prefixes keep the best);
* elastic depth: a stage of depth d uses its first d blocks;
* squeeze-excite and activation are switched per block; each head choice has its own head.

``extract(spec)`` returns the ordinary network of ``nas.build_model(spec)`` carrying the
supernet's weights, so a sub-network is evaluated, measured and exported like any model.
Training follows Once-for-All's progressive shrinking: the largest network alone, then elastic
kernel and depth, then expansion, then every choice (``ELASTIC_ORDER``), each phase with the
sandwich rule (largest, smallest and random sub-networks every step).
"""

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
from torch import nn

from nas.accuracy.base import AccuracyEstimator, adapt_spec
from nas.accuracy.train import Recipe, evaluate, recalibrate_bn, train_model
from nas.build import build_model
from nas.data import ImageData
from nas.errors import EstimatorError, first_line
from nas.runlock import RunLock
from nas.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, v3_squeeze_channels
from nas.threads import torch_threads, training_threads
from search_spaces.mobilenetv3 import BlockwiseSpace, StageChoices

__all__ = ["DEFAULT_FINETUNE_STEPS", "ELASTIC_ORDER", "FINETUNE_LR", "Supernet",
           "SupernetEstimator", "SupernetRecipe", "cached_supernet", "finetune_recipe",
           "largest_spec", "sample_elastic", "sample_phase", "smallest_spec", "supernet_cache_path",
           "train_supernet"]

# 2: blocks have separate weights for ratio 1 (``ElasticBlock.unexpanded``).
CHECKPOINT_VERSION = 2
BN_EPS = 1e-3
BN_MOMENTUM = 0.1  # a supernet is trained briefly; V3's 0.01 would leave stale statistics


_ACTIVATIONS = {"RE": F.relu, "HS": F.hardswish, "RE6": F.relu6}


def _act(x: torch.Tensor, act: str) -> torch.Tensor:
    try:
        return _ACTIVATIONS[act](x)
    except KeyError:  # a spec cannot hold one (it is validated): a bug, never a silent ReLU6
        raise ValueError(f"unknown activation {act!r} (known: {', '.join(_ACTIVATIONS)})") \
            from None


class ElasticBN(nn.BatchNorm2d):
    """BatchNorm over the first ``channels`` features (slices share the full buffers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                            self.bias[:c], self.training, self.momentum, self.eps)


class ElasticConv(nn.Module):
    """A dense conv whose input and output channels are prefixes of the largest one."""

    def __init__(self, max_in: int, max_out: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bn = ElasticBN(max_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.stride, self.padding = stride, (kernel - 1) // 2

    def sliced(self, in_ch: int, out_ch: int) -> torch.Tensor:
        return self.weight[:out_ch, :in_ch]

    def forward(self, x: torch.Tensor, out_ch: int) -> torch.Tensor:
        y = F.conv2d(x, self.sliced(x.shape[1], out_ch), stride=self.stride,
                     padding=self.padding)
        return self.bn(y)


class ElasticDepthwise(nn.Module):
    """7x7 depthwise weights; smaller kernels through learned centre transforms."""

    def __init__(self, max_ch: int, stride: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_ch, 1, 7, 7))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.to_5 = nn.Parameter(torch.eye(25))
        self.to_3 = nn.Parameter(torch.eye(9))
        self.bn = ElasticBN(max_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.stride = stride

    def kernel(self, channels: int, size: int) -> torch.Tensor:
        w = self.weight[:channels]
        if size == 7:
            return w
        w = (w[:, :, 1:6, 1:6].reshape(channels, 25) @ self.to_5).reshape(channels, 1, 5, 5)
        if size == 5:
            return w
        return (w[:, :, 1:4, 1:4].reshape(channels, 9) @ self.to_3).reshape(channels, 1, 3, 3)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        c = x.shape[1]
        y = F.conv2d(x, self.kernel(c, size), stride=self.stride, padding=size // 2, groups=c)
        return self.bn(y)


class ElasticSE(nn.Module):
    def __init__(self, max_ch: int, max_squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(max_ch, max_squeeze, 1)
        self.fc2 = nn.Conv2d(max_squeeze, max_ch, 1)

    def forward(self, x: torch.Tensor, squeeze: int) -> torch.Tensor:
        c = x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(F.conv2d(s, self.fc1.weight[:squeeze, :c], self.fc1.bias[:squeeze]))
        s = F.hardsigmoid(F.conv2d(s, self.fc2.weight[:c, :squeeze], self.fc2.bias[:c]))
        return s * x


class _Inner(nn.Module):
    """Depthwise conv, squeeze-excite and projection of a block."""

    def __init__(self, channels: int, max_out: int, stride: int):
        super().__init__()
        self.depthwise = ElasticDepthwise(channels, stride)
        self.se = ElasticSE(channels, v3_squeeze_channels(channels))
        self.project = ElasticConv(channels, max_out)

    def forward(self, y: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        y = _act(self.depthwise(y, block.kernel), block.act)
        if block.se:
            y = self.se(y, v3_squeeze_channels(block.exp_ch))
        return self.project(y, block.out_ch)


class ElasticBlock(nn.Module):
    """An inverted residual whose kernel, expansion, output width, SE and activation vary.

    Without expansion (ratio 1) the depthwise conv sees the block's input rather than expanded
    features, so that case has its own depthwise, SE and projection weights (``unexpanded``):
    sharing them made every ratio a different function of the same weights, and kept the
    expansion channels from being sorted by importance.
    """

    def __init__(self, max_in: int, max_exp: int, max_out: int, stride: int,
                 unexpanded: bool = True):
        super().__init__()
        self.expand = ElasticConv(max_in, max_exp)
        self.expanded = _Inner(max_exp, max_out, stride)
        self.unexpanded = _Inner(max_in, max_out, stride) if unexpanded else None

    def inner(self, block: BlockSpec) -> _Inner:
        if block.exp_ch != block.in_ch:
            return self.expanded
        if self.unexpanded is None:
            raise ValueError("this supernet block has no ratio-1 (unexpanded) weights")
        return self.unexpanded

    def forward(self, x: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        y = x
        if block.exp_ch != block.in_ch:
            y = _act(self.expand(y, block.exp_ch), block.act)
        y = self.inner(block)(y, block)
        return y + x if block.has_residual else y


class ElasticHead(nn.Module):
    def __init__(self, max_in: int, head: HeadSpec, num_classes: int):
        super().__init__()
        width = max_in
        self.conv = None
        if head.conv_ch is not None:
            self.conv = ElasticConv(max_in, head.conv_ch)
            width = head.conv_ch
        self.hidden = None
        if head.hidden_ch is not None:
            self.hidden = nn.Linear(width, head.hidden_ch)
            width = head.hidden_ch
        self.classifier = nn.Linear(width, num_classes)
        self.spec = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.spec
        if self.conv is not None:
            x = _act(self.conv(x, head.conv_ch), head.conv_act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        # Without a head conv, the first linear sees the (elastic) last width: slice it.
        if self.hidden is not None:
            x = _act(F.linear(x, self.hidden.weight[:, :x.shape[1]], self.hidden.bias),
                     head.hidden_act)
        x = F.dropout(x, head.dropout, self.training)
        return F.linear(x, self.classifier.weight[:, :x.shape[1]], self.classifier.bias)


def _max_in_widths(space: BlockwiseSpace) -> list[int]:
    return [max(widths) for widths in space.in_widths()]


def _max_exp(stage: StageChoices, max_in: int) -> int:
    return max(stage.exp_width(max_in, r) for r in stage.exp_ratios)


class Supernet(nn.Module):
    def __init__(self, space: BlockwiseSpace):
        super().__init__()
        self.space = space
        self.stem = ElasticConv(3, max(space.stem_widths), kernel=3, stride=2)
        self.stages = nn.ModuleList()
        for stage, max_in in zip(space.stages, _max_in_widths(space), strict=True):
            width = max(stage.widths)
            blocks = nn.ModuleList()
            for index in range(max(stage.depths)):
                block_in = max_in if index == 0 else width
                blocks.append(ElasticBlock(block_in, _max_exp(stage, block_in), width,
                                           stage.stride if index == 0 else 1,
                                           unexpanded=1.0 in stage.exp_ratios))
            self.stages.append(blocks)
        max_last = max(space.last_widths())
        self.heads = nn.ModuleList(ElasticHead(max_last, h, space.num_classes)
                                   for h in space.heads)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def _slots(self, spec: ArchSpec) -> list[tuple[int, int]]:
        if not self.space.contains(spec):
            raise EstimatorError(f"{spec.name} is not in the supernet's space")
        stage_ids = self.space.stage_of_blocks(spec)
        slots, previous, position = [], None, 0
        for stage_id in stage_ids:
            position = position + 1 if stage_id == previous else 0
            slots.append((stage_id, position))
            previous = stage_id
        return slots

    def features(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        """The stem and blocks of ``spec``: what its head sees."""
        x = _act(self.stem(x, spec.stem.out_ch), spec.stem.act)
        for block, (stage, position) in zip(spec.blocks, self._slots(spec), strict=True):
            x = self.stages[stage][position](x, block)
        return x

    def forward(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        x = self.features(x, spec)  # first: it checks that spec is in the space
        return self.heads[self.space.heads.index(spec.head)](x)

    # ------------------------------------------------------------------ sub-networks
    @torch.no_grad()
    def extract(self, spec: ArchSpec) -> nn.Module:
        """``build_model(spec)`` with this supernet's weights (an ordinary network)."""
        model = build_model(spec)
        features = list(model.features)

        def copy_conv(target: nn.Sequential, source: ElasticConv, in_ch: int, out_ch: int,
                      weight: torch.Tensor | None = None) -> None:
            target[0].weight.copy_(source.sliced(in_ch, out_ch) if weight is None else weight)
            copy_bn(target[1], source.bn, out_ch)

        def copy_bn(target: nn.BatchNorm2d, source: ElasticBN, channels: int) -> None:
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(target, name).copy_(getattr(source, name)[:channels])

        copy_conv(features[0], self.stem, 3, spec.stem.out_ch)
        for index, (block, (stage, position)) in enumerate(
                zip(spec.blocks, self._slots(spec), strict=True)):
            source: ElasticBlock = self.stages[stage][position]
            layers = list(features[index + 1].block)
            if block.exp_ch != block.in_ch:
                copy_conv(layers.pop(0), source.expand, block.in_ch, block.exp_ch)
            inner = source.inner(block)
            dw = layers.pop(0)
            copy_conv(dw, inner.depthwise, 1, block.exp_ch,
                      weight=inner.depthwise.kernel(block.exp_ch, block.kernel))
            if block.se:
                se, squeeze = layers.pop(0), v3_squeeze_channels(block.exp_ch)
                se.fc1.weight.copy_(inner.se.fc1.weight[:squeeze, :block.exp_ch])
                se.fc1.bias.copy_(inner.se.fc1.bias[:squeeze])
                se.fc2.weight.copy_(inner.se.fc2.weight[:block.exp_ch, :squeeze])
                se.fc2.bias.copy_(inner.se.fc2.bias[:block.exp_ch])
            copy_conv(layers.pop(0), inner.project, block.exp_ch, block.out_ch)
        head: ElasticHead = self.heads[self.space.heads.index(spec.head)]
        width = spec.out_ch
        if head.conv is not None:
            copy_conv(features[-1], head.conv, width, spec.head.conv_ch)
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        sources = [m for m in (head.hidden, head.classifier) if m is not None]
        for target, source_linear in zip(linears, sources, strict=True):
            target.weight.copy_(source_linear.weight[:, :target.in_features])
            target.bias.copy_(source_linear.bias)
        return model

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Order every block's expansion channels by importance (L1 norm of the projection's
        input weights), so that any expansion width is a prefix of the best channels."""
        for stage in self.stages:
            for block in stage:
                # Ratio-1 networks have their own weights (``unexpanded``): untouched here.
                inner = block.expanded
                importance = inner.project.weight.abs().sum(dim=(0, 2, 3))
                order = torch.argsort(importance, descending=True)
                block.expand.weight.copy_(block.expand.weight[order])
                _permute_bn(block.expand.bn, order)
                inner.depthwise.weight.copy_(inner.depthwise.weight[order])
                _permute_bn(inner.depthwise.bn, order)
                inner.se.fc1.weight.copy_(inner.se.fc1.weight[:, order])
                inner.se.fc2.weight.copy_(inner.se.fc2.weight[order])
                inner.se.fc2.bias.copy_(inner.se.fc2.bias[order])
                inner.project.weight.copy_(inner.project.weight[:, order])


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(bn, name)
        tensor.copy_(tensor[order])


# --------------------------------------------------------------------------- sampling
# The elastic dimensions, in the order progressive shrinking opens them (Once-for-All): kernel
# and depth first, then expansion, then stage widths, SE, activations and heads.
ELASTIC_ORDER = (("kernel", "depth"), ("expand",), ("width", "switch"))


def phase_dims(phase: int) -> frozenset[str]:
    """The elastic dimensions of a phase of progressive shrinking: 0 = the largest network
    only, then each phase opens the next group of ``ELASTIC_ORDER``."""
    return frozenset(dim for dims in ELASTIC_ORDER[:phase] for dim in dims)


ALL_ELASTIC = phase_dims(len(ELASTIC_ORDER))


def largest_spec(space: BlockwiseSpace) -> ArchSpec:
    return _compose(space, frozenset(), _largest_choice, "largest")


def smallest_spec(space: BlockwiseSpace) -> ArchSpec:
    """Every choice at its smallest, ratio 1 (no expansion) included."""
    return _compose(space, ALL_ELASTIC, _smallest_choice, "smallest")


def sample_elastic(space: BlockwiseSpace, rng: np.random.Generator,
                   elastic: frozenset[str] = ALL_ELASTIC) -> ArchSpec:
    """A random sub-network whose ``elastic`` dimensions are sampled and whose others are the
    largest network's (``elastic`` from ``ELASTIC_ORDER``)."""
    def pick(dim: str, options):
        return options[int(rng.integers(len(options)))]
    return _compose(space, elastic, pick, "sampled")


def _largest_choice(dim: str, options):
    if dim == "head":
        return options[0]
    if dim in ("act", "stem_act"):
        return "HS" if "HS" in options else options[0]
    return max(options)


def _smallest_choice(dim: str, options):
    return options[0] if dim in ("act", "stem_act", "head") else min(options)


def _compose(space: BlockwiseSpace, elastic: frozenset[str], pick, name: str) -> ArchSpec:
    """A spec of ``space``: ``pick(dim, options)`` decides the ``elastic`` dimensions, the
    largest network's choice the others."""
    def choose(group: str, dim: str, options):
        return (pick if group in elastic else _largest_choice)(dim, tuple(options))

    stem = StemSpec(out_ch=choose("width", "stem", space.stem_widths),
                    act=choose("switch", "stem_act", space.stem_acts))
    blocks, in_ch = [], stem.out_ch
    for stage in space.stages:
        depth = choose("depth", "depth", stage.depths)
        width = choose("width", "width", stage.widths)
        for index in range(depth):
            ratio = choose("expand", "ratio", stage.exp_ratios)
            blocks.append(BlockSpec(
                kind="bneck", kernel=choose("kernel", "kernel", stage.kernels), in_ch=in_ch,
                exp_ch=stage.exp_width(in_ch, ratio), out_ch=width,
                se=choose("switch", "se", stage.se), act=choose("switch", "act", stage.acts),
                stride=stage.stride if index == 0 else 1))
            in_ch = width
    head = choose("switch", "head", space.heads)
    return ArchSpec(name=name, input_size=space.input_size, num_classes=space.num_classes,
                    stem=stem, blocks=tuple(blocks), head=head)


# --------------------------------------------------------------------------- training
def sample_phase(space: BlockwiseSpace, rng: np.random.Generator, phase: int) -> ArchSpec:
    """A random sub-network for a phase of progressive shrinking (see ``phase_dims``)."""
    if phase == 0:
        return largest_spec(space)
    return sample_elastic(space, rng, phase_dims(phase))


def sandwich_smallest(space: BlockwiseSpace, phase: int, step: int = 0) -> ArchSpec:
    """The sandwich rule's smallest network of a phase: its elastic dimensions at their
    smallest. Once expansion is elastic, even steps take the smallest shared expansion prefix
    and odd steps ratio 1, which has its own weights (``ElasticBlock.unexpanded``): trained
    only by random sub-networks, ratio 1 lagged so far that architectures using it often
    ranked near the bottom whatever their stand-alone accuracy."""
    def pick(dim: str, options):
        if dim == "ratio" and step % 2 == 0 and any(r != 1.0 for r in options):
            return min(r for r in options if r != 1.0)
        return _smallest_choice(dim, options)
    return _compose(space, phase_dims(phase), pick, "smallest")


@dataclass(frozen=True)
class SupernetRecipe:
    """The defaults are the supernets of bench/estimator_ranking.py, whose ranking figures the
    search's default estimator rests on (docs/accuracy.md)."""

    steps: int = 600
    batch_size: int = 32
    lr: float = 0.05
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    random_subnets: int = 1        # sandwich rule: largest + smallest + this many random
    sort_every: int = 200          # steps between importance sorts of the expansion channels
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
    from nas.export import atomic_path

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
    from latency_models.lut import cache_dir

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
    from search_spaces.mobilenetv3 import default_space

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
