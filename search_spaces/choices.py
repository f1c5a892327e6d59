"""The choices of a block-wise space: one categorical decision, one stage's options."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nas.spec import SpecError, make_divisible

__all__ = ["V3_EXP_RATIOS", "Decision", "StageChoices"]

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

