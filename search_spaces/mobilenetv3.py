"""The block-wise MobileNetV3 search space (MnasNet's factorised space with V3's SE and h-swish).

Stages follow the resolution schedule of MobileNetV3-Large and MnasNet-A1. Per stage: depth and
output width; per block: kernel, expansion ratio (to the block input), squeeze-excite on/off,
activation. The stem width and activation and the head are chosen once. The default space
contains MobileNetV3-Large, MobileNetV3-Small and MnasNet-A1 exactly (with V3's squeeze-excite
convention; ``contains`` checks the rest).

Pure Python (no torch): strategies and latency predictors import it freely.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.spec import ArchSpec, BlockSpec, HeadSpec, SpecError, StemSpec, make_divisible

__all__ = ["BlockwiseSpace", "Decision", "StageChoices", "default_space"]

# Expansion ratios of the block input: 1 (no expansion conv), OFA's 3/4/6, and the ratios of
# the V3 tables (184/80 = 2.3, 200/80 = 2.5, 88/24 = 3.67, 72/16 = 4.5).
V3_EXP_RATIOS = (1.0, 2.3, 2.5, 3.0, 3.67, 4.0, 4.5, 6.0)


@dataclass(frozen=True)
class Decision:
    """One categorical decision of the space, e.g. ``s3.b1.kernel`` with choices (3, 5, 7)."""

    name: str
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class StageChoices:
    """One stage: ``depth`` blocks of ``width`` channels; the first block carries ``stride``."""

    stride: int
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    kernels: tuple[int, ...] = (3, 5, 7)
    exp_ratios: tuple[float, ...] = V3_EXP_RATIOS
    se: tuple[bool, ...] = (False, True)
    acts: tuple[str, ...] = ("RE", "HS")

    def __post_init__(self) -> None:
        if self.stride != 1 and 0 in self.depths:
            raise SpecError("depths", "a strided stage cannot be skipped (depth 0)")
        if not self.depths or not self.widths:
            raise SpecError("depths", "a stage needs depth and width choices")

    def exp_width(self, in_ch: int, ratio: float) -> int:
        return in_ch if ratio == 1.0 else make_divisible(in_ch * ratio)

    def block_options(self) -> Iterator[tuple[int, float, bool, str]]:
        """Every (kernel, ratio, se, act) of one block."""
        return itertools.product(self.kernels, self.exp_ratios, self.se, self.acts)


@dataclass(frozen=True)
class BlockwiseSpace:
    """A factorised, block-wise space; every choice is independent given the stage widths."""

    name: str = "mobilenetv3"
    input_size: int = 224
    num_classes: int = 1000
    stem_widths: tuple[int, ...] = (16, 32)
    stem_acts: tuple[str, ...] = ("RE", "HS")
    stages: tuple[StageChoices, ...] = ()
    heads: tuple[HeadSpec, ...] = ()

    def __post_init__(self) -> None:
        # The bounds of ArchSpec: every architecture of the space must be a valid spec.
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or \
                not 8 <= self.input_size <= 4096:
            raise SpecError("input_size", f"must be between 8 and 4096, got {self.input_size!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or \
                not 1 <= self.num_classes <= 1_000_000:
            raise SpecError("num_classes", f"must be between 1 and 1000000, got "
                                           f"{self.num_classes!r}")

    # ------------------------------------------------------------------ structure
    def in_widths(self) -> list[tuple[int, ...]]:
        """Possible input widths of every stage (a skipped stage passes its input on)."""
        result = []
        current = tuple(sorted(set(self.stem_widths)))
        for stage in self.stages:
            result.append(current)
            outs = set(stage.widths)
            if 0 in stage.depths:
                outs |= set(current)
            current = tuple(sorted(outs))
        return result

    def last_widths(self) -> tuple[int, ...]:
        widths = self.in_widths()
        last = self.stages[-1]
        outs = set(last.widths) | (set(widths[-1]) if 0 in last.depths else set())
        return tuple(sorted(outs))

    def resolutions(self) -> list[int]:
        """Input resolution of every stage, then the head's."""
        size = -(-self.input_size // 2)  # the stem has stride 2
        sizes = []
        for stage in self.stages:
            sizes.append(size)
            size = -(-size // stage.stride)
        sizes.append(size)
        return sizes

    def size(self) -> int:
        """Number of distinct architectures (exact, by counting over stage widths)."""
        total = 0
        for stem_width, _ in itertools.product(self.stem_widths, self.stem_acts):
            counts = {stem_width: 1}
            for stage in self.stages:
                per_block = len(stage.kernels) * len(stage.exp_ratios) * len(stage.se) * \
                    len(stage.acts)
                nxt: dict[int, int] = {}
                for in_ch, ways in counts.items():
                    for depth in stage.depths:
                        if depth == 0:
                            nxt[in_ch] = nxt.get(in_ch, 0) + ways
                            continue
                        for width in stage.widths:
                            nxt[width] = nxt.get(width, 0) + ways * per_block ** depth
                counts = nxt
            total += sum(counts.values()) * len(self.heads)
        return total

    # ------------------------------------------------------------------ specs
    def _spec(self, stem: StemSpec, blocks: list[BlockSpec], head: HeadSpec,
              name: str) -> ArchSpec:
        return ArchSpec(name=name, input_size=self.input_size, num_classes=self.num_classes,
                        stem=stem, blocks=tuple(blocks), head=head)

    def sample(self, rng: np.random.Generator, name: str = "sampled") -> ArchSpec:
        """A uniformly random choice per decision (depth, width, and per-block options)."""

        def pick(options):
            return options[int(rng.integers(len(options)))]

        return self._draw(name, pick, pick, lambda stage: pick(list(stage.block_options())))

    def sample_sized(self, rng: np.random.Generator, bias: float,
                     name: str = "sampled") -> ArchSpec:
        """A random architecture leaning towards small or large ones: every choice that sizes
        the network (stem width, depth, width, kernel, expansion ratio) is the ``u ** bias``
        quantile of its sorted options for a uniform ``u``, so ``bias`` > 1 favours small
        choices and ``bias`` < 1 large ones (1: uniform, though not ``sample``'s draws). The
        other choices (activations, squeeze-excite, head) stay uniform.

        Uniform samples cover only the middle of the latency range; samples over a spread of
        biases reach its ends (docs/accuracy.md, "Which architectures")."""
        if not 0 < bias < math.inf:
            raise SpecError("", f"bias must be finite and > 0, got {bias}")

        def sized(options):
            options = sorted(options)
            return options[min(int(rng.random() ** bias * len(options)), len(options) - 1)]

        def pick(options):
            return options[int(rng.integers(len(options)))]

        return self._draw(name, sized, pick, lambda stage: (
            sized(stage.kernels), sized(stage.exp_ratios), pick(stage.se), pick(stage.acts)))

    def smallest(self, name: str = "smallest") -> ArchSpec:
        """The cheapest network of the space by construction: the smallest stem, depths,
        widths, kernels and expansions, ReLU, no squeeze-excite, the lightest head. Its
        latency is close to the space's minimum without any table (a quick budget check)."""
        def head_cost(head: HeadSpec) -> tuple[int, int]:  # the 1x1 conv over the last map
            return head.conv_ch or 0, head.hidden_ch or 0  # costs most, then the hidden layer

        def pick(options):  # the stem's activation, or the head
            if isinstance(options[0], str):
                return "RE" if "RE" in options else options[0]
            return min(options, key=head_cost)

        return self._draw(name, min, pick, lambda stage: (
            min(stage.kernels), min(stage.exp_ratios), False if False in stage.se
            else stage.se[0], "RE" if "RE" in stage.acts else stage.acts[0]))

    def _draw(self, name: str, sized, pick, block_options) -> ArchSpec:
        """An architecture from draws, in a fixed order: ``sized(options)`` for the stem width
        and every stage's depth and width, ``pick(options)`` for the activations and the head,
        ``block_options(stage)`` for each block's (kernel, ratio, se, act)."""
        stem = StemSpec(out_ch=sized(self.stem_widths), act=pick(self.stem_acts))
        blocks: list[BlockSpec] = []
        in_ch = stem.out_ch
        for stage in self.stages:
            depth = sized(stage.depths)
            width = sized(stage.widths)
            for index in range(depth):
                kernel, ratio, se, act = block_options(stage)
                blocks.append(BlockSpec(kind="bneck", kernel=kernel, in_ch=in_ch,
                                        exp_ch=stage.exp_width(in_ch, ratio), out_ch=width,
                                        se=se, act=act,
                                        stride=stage.stride if index == 0 else 1))
                in_ch = width
        return self._spec(stem, blocks, pick(self.heads), name)

    def stage_of_blocks(self, spec: ArchSpec) -> list[int] | None:
        """Stage index of every block, or None if the blocks do not fit the stages."""
        blocks = spec.blocks

        def parse(stage_index: int, position: int) -> list[int] | None:
            if stage_index == len(self.stages):
                return [] if position == len(blocks) else None
            stage = self.stages[stage_index]
            for depth in stage.depths:
                run = blocks[position:position + depth]
                if len(run) != depth:
                    continue
                if depth and not (run[0].stride == stage.stride
                                  and run[0].out_ch in stage.widths
                                  and all(b.stride == 1 and b.in_ch == b.out_ch == run[0].out_ch
                                          for b in run[1:])):
                    continue
                rest = parse(stage_index + 1, position + depth)
                if rest is not None:
                    return [stage_index] * depth + rest
            return None

        return parse(0, 0)

    def contains(self, spec: ArchSpec) -> bool:
        """True if ``spec`` is one of this space's architectures."""
        if (spec.input_size, spec.num_classes, spec.width_mult) != \
                (self.input_size, self.num_classes, 1.0):
            return False
        if spec.se_style != "v3" or spec.stem.maxpool or spec.stem.in_ch != 3:
            return False
        if (spec.stem.out_ch not in self.stem_widths or spec.stem.act not in self.stem_acts
                or spec.stem.kernel != 3 or spec.stem.stride != 2):
            return False
        if spec.head not in self.heads:
            return False
        stage_ids = self.stage_of_blocks(spec)
        if stage_ids is None:
            return False
        for block, stage_id in zip(spec.blocks, stage_ids, strict=True):
            stage = self.stages[stage_id]
            if (block.kind != "bneck" or block.dilation != 1 or block.kernel not in stage.kernels
                    or block.se not in stage.se or block.act not in stage.acts):
                return False
            widths = {stage.exp_width(block.in_ch, r) for r in stage.exp_ratios}
            if block.exp_ch not in widths:
                return False
        return True

    # ------------------------------------------------------------------ encoding
    @functools.cached_property
    def decisions(self) -> tuple[Decision, ...]:
        """Every decision in a fixed order: stem, then per stage depth, width and the options
        of each of its ``max(depths)`` block slots, then the head.

        The encoding has a fixed length; the options of slots beyond a stage's chosen depth
        are inactive (ignored by ``decode``; ``encode`` writes their first choice).
        """
        result = [Decision("stem.width", self.stem_widths), Decision("stem.act", self.stem_acts)]
        for i, stage in enumerate(self.stages):
            result += [Decision(f"s{i}.depth", stage.depths), Decision(f"s{i}.width", stage.widths)]
            for j in range(max(stage.depths)):
                result += [Decision(f"s{i}.b{j}.kernel", stage.kernels),
                           Decision(f"s{i}.b{j}.ratio", stage.exp_ratios),
                           Decision(f"s{i}.b{j}.se", stage.se),
                           Decision(f"s{i}.b{j}.act", stage.acts)]
        result.append(Decision("head", tuple(range(len(self.heads)))))
        return tuple(result)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {d.name: i for i, d in enumerate(self.decisions)}

    def decode(self, vector: Sequence[int], name: str = "sampled") -> ArchSpec:
        """The architecture of a vector of choice indices (one per decision)."""
        decisions = self.decisions
        if len(vector) != len(decisions):
            raise SpecError("vector", f"expected {len(decisions)} choice indices, got "
                                      f"{len(vector)}")
        values = {}
        for decision, index in zip(decisions, vector, strict=True):
            index = int(index)
            if not 0 <= index < len(decision.choices):
                raise SpecError(decision.name, f"choice index {index} out of range "
                                               f"0..{len(decision.choices) - 1}")
            values[decision.name] = decision.choices[index]
        return self.from_params(values, name=name)

    def from_params(self, params: Mapping[str, Any], name: str = "sampled") -> ArchSpec:
        """The architecture of a ``{decision name: value}`` mapping (Optuna's trial.params)."""
        def get(key: str) -> Any:
            if key not in params:
                raise SpecError(key, "missing decision")
            value = params[key]
            if value not in self.decisions[self._index[key]].choices:
                raise SpecError(key, f"{value!r} is not one of "
                                     f"{self.decisions[self._index[key]].choices}")
            return value

        stem = StemSpec(out_ch=get("stem.width"), act=get("stem.act"))
        blocks: list[BlockSpec] = []
        in_ch = stem.out_ch
        for i, stage in enumerate(self.stages):
            depth, width = get(f"s{i}.depth"), get(f"s{i}.width")
            for j in range(depth):
                ratio = get(f"s{i}.b{j}.ratio")
                blocks.append(BlockSpec(kind="bneck", kernel=get(f"s{i}.b{j}.kernel"),
                                        in_ch=in_ch, exp_ch=stage.exp_width(in_ch, ratio),
                                        out_ch=width, se=get(f"s{i}.b{j}.se"),
                                        act=get(f"s{i}.b{j}.act"),
                                        stride=stage.stride if j == 0 else 1))
                in_ch = width
        return self._spec(stem, blocks, self.heads[get("head")], name)

    def params(self, spec: ArchSpec) -> dict[str, Any]:
        """``{decision name: value}`` of an architecture of this space (inverse of
        ``from_params``); raises ``SpecError`` if the space does not contain it."""
        if not self.contains(spec):
            raise SpecError("spec", f"{spec.name!r} is not an architecture of the "
                                    f"{self.name} space")
        values = {d.name: d.choices[0] for d in self.decisions}
        values["stem.width"], values["stem.act"] = spec.stem.out_ch, spec.stem.act
        values["head"] = self.heads.index(spec.head)
        stage_ids = self.stage_of_blocks(spec)
        for i, stage in enumerate(self.stages):
            run = [b for b, s in zip(spec.blocks, stage_ids, strict=True) if s == i]
            values[f"s{i}.depth"] = len(run)
            if run:
                values[f"s{i}.width"] = run[0].out_ch
            for j, block in enumerate(run):
                ratio = next(r for r in stage.exp_ratios
                             if stage.exp_width(block.in_ch, r) == block.exp_ch)
                values.update({f"s{i}.b{j}.kernel": block.kernel, f"s{i}.b{j}.ratio": ratio,
                               f"s{i}.b{j}.se": block.se, f"s{i}.b{j}.act": block.act})
        return values

    def encode(self, spec: ArchSpec) -> np.ndarray:
        """Choice indices (int64, one per decision) of an architecture of this space."""
        values = self.params(spec)
        return np.array([d.choices.index(values[d.name]) for d in self.decisions],
                        dtype=np.int64)

    def active(self, vector: Sequence[int]) -> np.ndarray:
        """Which decisions of ``vector`` matter (False for slots beyond a stage's depth)."""
        mask = np.ones(len(self.decisions), dtype=bool)
        for i, stage in enumerate(self.stages):
            depth = stage.depths[int(vector[self._index[f"s{i}.depth"]])]
            if depth == 0:
                mask[self._index[f"s{i}.width"]] = False
            for j in range(depth, max(stage.depths)):
                for option in ("kernel", "ratio", "se", "act"):
                    mask[self._index[f"s{i}.b{j}.{option}"]] = False
        return mask

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions, one categorical per decision (for ``study.ask``)."""
        from optuna.distributions import CategoricalDistribution

        return {d.name: CategoricalDistribution(d.choices) for d in self.decisions}

    def suggest(self, trial: Any, name: str = "sampled") -> ArchSpec:
        """Define-by-run for an Optuna trial: every decision through ``suggest_categorical``."""
        return self.from_params({d.name: trial.suggest_categorical(d.name, d.choices)
                                 for d in self.decisions}, name=name)

    def mutate(self, spec: ArchSpec, rng: np.random.Generator, prob: float = 0.1,
               name: str = "mutant") -> ArchSpec:
        """Resample each active decision with probability ``prob`` (Once-for-All's mutation);
        the result always differs from ``spec`` (one decision is forced if none changed)."""
        vector = self.encode(spec)
        mask = self.active(vector)
        sizes = np.array([len(d.choices) for d in self.decisions])
        changeable = np.flatnonzero(mask & (sizes > 1))
        changed = False
        for index in changeable:
            if rng.random() < prob:
                new = int(rng.integers(sizes[index]))
                changed |= new != vector[index]
                vector[index] = new
        if not changed and len(changeable):
            index = int(changeable[rng.integers(len(changeable))])
            vector[index] = (vector[index] + 1 + rng.integers(sizes[index] - 1)) % sizes[index]
        return self.decode(vector, name=name)

    def crossover(self, a: ArchSpec, b: ArchSpec, rng: np.random.Generator,
                  name: str = "child") -> ArchSpec:
        """Each decision taken from ``a`` or ``b`` with equal probability (Once-for-All)."""
        va, vb = self.encode(a), self.encode(b)
        pick = rng.random(len(va)) < 0.5
        return self.decode(np.where(pick, va, vb), name=name)

    def sample_vector(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.integers(len(d.choices)) for d in self.decisions], dtype=np.int64)

    # ------------------------------------------------------------------ enumeration
    def stem_options(self) -> Iterator[StemSpec]:
        for width, act in itertools.product(self.stem_widths, self.stem_acts):
            yield StemSpec(out_ch=width, act=act)

    def block_options(self) -> Iterator[tuple[int, BlockSpec]]:
        """Every distinct (input resolution, block) the space can produce."""
        seen: set[tuple[int, BlockSpec]] = set()
        resolutions = self.resolutions()
        for stage, in_widths, res in zip(self.stages, self.in_widths(), resolutions,
                                         strict=False):
            out_res = -(-res // stage.stride)
            first = [(res, in_ch, width, stage.stride)
                     for in_ch in in_widths for width in stage.widths]
            later = [(out_res, width, width, 1) for width in stage.widths
                     if max(stage.depths) > 1]
            for (size, in_ch, width, stride), (kernel, ratio, se, act) in itertools.product(
                    first + later, list(stage.block_options())):
                block = BlockSpec(kind="bneck", kernel=kernel, in_ch=in_ch,
                                  exp_ch=stage.exp_width(in_ch, ratio), out_ch=width, se=se,
                                  act=act, stride=stride)
                if (size, block) not in seen:
                    seen.add((size, block))
                    yield size, block

    def head_options(self) -> Iterator[tuple[int, HeadSpec]]:
        """Every (input width of the head, head)."""
        yield from itertools.product(self.last_widths(), self.heads)

    def with_resolution(self, input_size: int, num_classes: int | None = None) -> BlockwiseSpace:
        return dataclasses.replace(self, input_size=input_size,
                                   num_classes=num_classes or self.num_classes)

    def log10_size(self) -> float:
        return math.log10(self.size())


# The V3 heads: efficient last stage of V3-Large and V3-Small, and MnasNet-A1's 1x1 conv.
V3_LARGE_HEAD = HeadSpec(conv_ch=960, conv_act="HS", hidden_ch=1280, hidden_act="HS", dropout=0.2)
V3_SMALL_HEAD = HeadSpec(conv_ch=576, conv_act="HS", hidden_ch=1024, hidden_act="HS", dropout=0.2)
MNASNET_HEAD = HeadSpec(conv_ch=1280, conv_act="RE", dropout=0.2)


def default_space(input_size: int = 224, num_classes: int = 1000) -> BlockwiseSpace:
    """The MobileNetV3 space: contains V3-Large, V3-Small and MnasNet-A1."""
    stages = (
        # 112x112 in: V3-Large and MnasNet have one stride-1 block here, V3-Small none
        StageChoices(stride=1, depths=(0, 1), widths=(16,)),
        # 112x112 in
        StageChoices(stride=2, depths=(1, 2, 3), widths=(16, 24)),
        # 56x56 in
        StageChoices(stride=2, depths=(2, 3, 4), widths=(24, 40)),
        # 28x28 in
        StageChoices(stride=2, depths=(2, 3, 4), widths=(40, 80)),
        # 14x14 in
        StageChoices(stride=1, depths=(2, 3), widths=(48, 112)),
        # 14x14 in
        StageChoices(stride=2, depths=(2, 3, 4), widths=(96, 160)),
        # 7x7 in: MnasNet-A1's last MBConv
        StageChoices(stride=1, depths=(0, 1), widths=(320,)),
    )
    return BlockwiseSpace(input_size=input_size, num_classes=num_classes, stages=stages,
                          heads=(V3_LARGE_HEAD, V3_SMALL_HEAD, MNASNET_HEAD))
