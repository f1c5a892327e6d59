"""Which sub-networks of a supernet are trained: Once-for-All's progressive shrinking (the
elastic dimensions opened phase by phase) and the sandwich rule's largest and smallest."""

from __future__ import annotations

import numpy as np

from nas.spec import ArchSpec, BlockSpec, StemSpec
from search_spaces.mobilenetv3 import BlockwiseSpace

__all__ = ["ALL_ELASTIC", "ELASTIC_ORDER", "largest_spec", "phase_dims", "sample_elastic",
           "sample_phase", "sandwich_smallest", "smallest_spec"]

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
