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
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nas.spec import ArchSpec, BlockSpec, HeadSpec, SpecError, StemSpec
from search_spaces.choices import V3_EXP_RATIOS, Decision, StageChoices
from search_spaces.encoding import DecisionEncoding

__all__ = ["V3_EXP_RATIOS", "BlockwiseSpace", "Decision", "StageChoices", "default_space"]


@dataclass(frozen=True)
class BlockwiseSpace(DecisionEncoding):
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
    def build_spec(self, stem: StemSpec, blocks: list[BlockSpec], head: HeadSpec,
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
        return self.build_spec(stem, blocks, pick(self.heads), name)

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
