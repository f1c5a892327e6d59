"""The parts of an architecture spec (stem, block, head) and the field checks they share.

Pure Python on purpose, like the whole of :mod:`nas.spec`: spaces, strategies and predictors
import it without importing torch. Every part is a frozen, hashable dataclass validated in
``__post_init__``: a part that constructs is one the builder can build; a bad field raises
``SpecError`` naming it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import SpecError

__all__ = [
    "ACTIVATIONS",
    "BLOCK_KINDS",
    "DILATIONS",
    "KERNELS",
    "MAX_CHANNELS",
    "SE_STYLES",
    "STRIDES",
    "BlockSpec",
    "HeadSpec",
    "StemSpec",
    "check_choice",
    "check_float",
    "check_int",
    "from_mapping",
    "make_divisible",
    "plain_fields",
    "set_field",
    "show_value",
    "v3_squeeze_channels",
]

# Paper notation: RE = ReLU, HS = h-swish; RE6 = ReLU6 (MobileNetV1/V2).
ACTIVATIONS = ("RE", "HS", "RE6")
BLOCK_KINDS = ("bneck", "dwsep", "shuffle")
KERNELS = (3, 5, 7)
STRIDES = (1, 2)
# Squeeze-excite conventions. "v3": squeeze to make_divisible(exp // 4, 8), hard-sigmoid gate
# (MobileNetV3, torchvision). "mnasnet": squeeze to round(in / 4), sigmoid gate (MnasNet's
# reference code and timm).
SE_STYLES = ("v3", "mnasnet")
DILATIONS = (1, 2, 4)
MAX_CHANNELS = 16384


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% below it.

    The rounding of the MobileNet papers (and of torchvision and timm), so that scaled
    networks keep hardware-friendly channel counts.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def v3_squeeze_channels(exp_ch: int) -> int:
    """MobileNetV3's SE squeeze width (torchvision): ``make_divisible(exp // 4, 8)``."""
    return make_divisible(exp_ch // 4, 8)


# --------------------------------------------------------------------------- field checks
def show_value(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message: one line, at most ``limit`` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a 5,000-digit integer, a deeply nested list
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(name, f"must be an integer, got {show_value(value)}")
    if not low <= value <= high:
        raise SpecError(name, f"must be between {low} and {high}, got {show_value(value)}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    # Exact types: 3.0 is not a kernel size, and True is not 1.
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        listed = ", ".join(str(c) for c in choices)
        raise SpecError(name, f"must be one of {listed}, got {show_value(value)}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(name, f"must be true or false, got {show_value(value)}")


def check_float(name: str, value: Any, low: float, high: float, *, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            isinstance(value, float) and not math.isfinite(value):
        raise SpecError(name, f"must be a number, got {show_value(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: out of range below
        number = math.inf if value > 0 else -math.inf
    too_low = number <= low if open_low else number < low
    if too_low or number > high:
        bracket = "(" if open_low else "["
        raise SpecError(name, f"must be in {bracket}{low}, {high}], got {show_value(value)}")
    return number


def check_channels(name: str, value: Any) -> None:
    check_int(name, value, 1, MAX_CHANNELS)


def set_field(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising inside a frozen dataclass


# --------------------------------------------------------------------------- the specs
@dataclass(frozen=True, slots=True, kw_only=True)
class StemSpec:
    """The first convolution (``conv2d 3x3`` with 16 filters and h-swish in V3)."""

    out_ch: int
    kernel: int = 3
    stride: int = 2
    act: str = "HS"
    maxpool: bool = False  # ShuffleNetV2 follows the first conv with a 3x3/2 max-pool
    in_ch: int = 3

    def __post_init__(self) -> None:
        check_channels("out_ch", self.out_ch)
        check_choice("kernel", self.kernel, KERNELS)
        check_choice("stride", self.stride, STRIDES)
        check_choice("act", self.act, ACTIVATIONS)
        check_bool("maxpool", self.maxpool)
        check_int("in_ch", self.in_ch, 1, 16)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockSpec:
    """One row of the paper's table.

    ``bneck``: MobileNetV2/V3 inverted residual: 1x1 expansion to ``exp_ch`` (omitted when
    ``exp_ch == in_ch``), depthwise ``kernel``, optional squeeze-excite, linear 1x1 projection;
    residual when stride 1 and ``in_ch == out_ch``.
    ``dwsep``: MobileNetV1 depthwise-separable conv (depthwise, then pointwise, both activated).
    ``shuffle``: ShuffleNetV2 unit; stride 1 splits the channels in two halves, stride 2 runs
    two branches on the whole input; both end with a channel shuffle.
    """

    kind: str
    kernel: int
    in_ch: int
    exp_ch: int | None = None
    out_ch: int
    se: bool = False
    act: str = "RE"
    stride: int = 1
    dilation: int = 1
    # ``values``: the fields above as one plain tuple in their order, made once. Latency
    # predictors key their look-up tables with it (reading nine slots per block per prediction
    # would cost more than the rest of a prediction). Derived, so it is not part of the JSON,
    # the repr or equality; read-only like every field.
    values: tuple = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", (self.kind, self.kernel, self.in_ch, self.exp_ch,
                                             self.out_ch, self.se, self.act, self.stride,
                                             self.dilation))
        check_choice("kind", self.kind, BLOCK_KINDS)
        check_choice("kernel", self.kernel, KERNELS)
        check_channels("in_ch", self.in_ch)
        check_channels("out_ch", self.out_ch)
        check_bool("se", self.se)
        check_choice("act", self.act, ACTIVATIONS)
        check_choice("stride", self.stride, STRIDES)
        check_choice("dilation", self.dilation, DILATIONS)
        if self.dilation > 1 and self.stride != 1:
            raise SpecError("dilation", "a dilated block must have stride 1")
        if self.kind == "bneck":
            if self.exp_ch is None:
                raise SpecError("exp_ch", "a bneck block needs its expansion width")
            check_channels("exp_ch", self.exp_ch)
            return
        if self.exp_ch is not None:
            raise SpecError("exp_ch", f"a {self.kind} block has no expansion width (use null)")
        if self.se:
            raise SpecError("se", f"a {self.kind} block has no squeeze-excite")
        if self.kind == "shuffle":
            if self.out_ch % 2:
                raise SpecError("out_ch", f"a shuffle unit needs an even out_ch, got {self.out_ch}")
            if self.stride == 1 and self.in_ch != self.out_ch:
                raise SpecError(
                    "out_ch",
                    f"a stride-1 shuffle unit keeps its width: in_ch {self.in_ch} != "
                    f"out_ch {self.out_ch}",
                )

    @property
    def has_residual(self) -> bool:
        return self.kind == "bneck" and self.stride == 1 and self.in_ch == self.out_ch



@dataclass(frozen=True, slots=True, kw_only=True)
class HeadSpec:
    """What follows the last block.

    V3's efficient last stage: 1x1 conv to ``conv_ch`` -> global pool -> linear to
    ``hidden_ch`` with activation (no BN) -> dropout -> classifier. ``conv_ch=None`` omits the
    conv (MobileNetV1); ``hidden_ch=None`` omits the hidden linear (MobileNetV2, ShuffleNetV2).
    """

    conv_ch: int | None = None
    conv_act: str = "HS"
    hidden_ch: int | None = None
    hidden_act: str = "HS"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.conv_ch is not None:
            check_channels("conv_ch", self.conv_ch)
        check_choice("conv_act", self.conv_act, ACTIVATIONS)
        if self.hidden_ch is not None:
            check_channels("hidden_ch", self.hidden_ch)
        check_choice("hidden_act", self.hidden_act, ACTIVATIONS)
        # The activation of an absent layer means nothing: keep one canonical value, so specs
        # that build the same network compare (and hash) equal.
        if self.conv_ch is None:
            set_field(self, "conv_act", "HS")
        if self.hidden_ch is None:
            set_field(self, "hidden_act", "HS")
        set_field(self, "dropout", check_float("dropout", self.dropout, 0.0, 0.99, open_low=False))


def plain_fields(part: Any) -> dict[str, Any]:
    """A stem, block or head as the dict of its JSON fields (derived fields left out)."""
    return {f.name: getattr(part, f.name) for f in dataclasses.fields(part) if f.init}


def from_mapping(cls: type, raw: Any, where: str) -> Any:
    """Strictly build ``cls`` (a part or the whole spec) from a JSON object: unknown, missing
    or mistyped fields raise ``SpecError`` located at ``where``."""
    if not isinstance(raw, Mapping):
        raise SpecError(where or cls.__name__, f"must be an object, got {type(raw).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise SpecError(where, f"unknown field {show_value(unknown[0])} "
                               f"(known: {', '.join(names)})")
    required = [f.name for f in dataclasses.fields(cls) if f.init
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in raw]
    if missing:
        raise SpecError(where, f"missing field {missing[0]!r}")
    try:
        return cls(**raw)
    except SpecError as exc:
        raise (exc.within(where) if where else exc) from None
