"""The seed model zoo: known networks as ``ArchSpec`` presets that read like the papers' tables.

``get(name, **overrides)`` returns a spec; ``names()`` lists them. Where the seed code
disagrees with the MobileNetV3 paper, the paper and torchvision win (docs/zoo.md has the list).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.spec import ArchSpec, BlockSpec, HeadSpec, SpecError, StemSpec

__all__ = ["ALIASES", "PAPER_FIGURES", "PaperFigures", "get", "names"]

# torchvision's BatchNorm defaults (V2, ShuffleNetV2, and timm's V1); V3 and MnasNet use the
# TensorFlow values eps=1e-3, momentum=0.01 (the ArchSpec defaults).
TORCH_BN = {"bn_eps": 1e-5, "bn_momentum": 0.1}


@dataclass(frozen=True)
class _Row:
    """A table row before its input width is known; ``t`` is an expansion ratio."""

    kind: str
    k: int
    out: int
    s: int = 1
    exp: int | None = None
    t: int | None = None
    se: bool = False
    nl: str = "RE"


def bneck(k: int, exp: int | None = None, out: int = 0, se: bool = False, nl: str = "RE",
          s: int = 1, t: int | None = None) -> _Row:
    return _Row("bneck", k, out, s, exp, t, se, nl)


def _chain(stem_out: int, rows: list[_Row]) -> tuple[BlockSpec, ...]:
    blocks, in_ch = [], stem_out
    for row in rows:
        exp = row.exp if row.t is None else row.t * in_ch
        if row.kind != "bneck":
            exp = None
        blocks.append(BlockSpec(kind=row.kind, kernel=row.k, in_ch=in_ch, exp_ch=exp,
                                out_ch=row.out, se=row.se, act=row.nl, stride=row.s))
        in_ch = row.out
    return tuple(blocks)


def _repeat(n: int, first: _Row) -> list[_Row]:
    """``n`` rows like ``first``; only the first one strides (MobileNetV2's t, c, n, s)."""
    return [first] + [dataclasses.replace(first, s=1)] * (n - 1)


# --------------------------------------------------------------------------- MobileNetV3
def mobilenet_v3_large() -> ArchSpec:
    """Table 1 of Searching for MobileNetV3."""
    rows = [
        # stage 1, 112x112 in
        bneck(k=3, exp=16, out=16, se=False, nl="RE", s=1),
        # stage 2, 112x112 in
        bneck(k=3, exp=64, out=24, se=False, nl="RE", s=2),
        bneck(k=3, exp=72, out=24, se=False, nl="RE", s=1),
        # stage 3, 56x56 in
        bneck(k=5, exp=72, out=40, se=True, nl="RE", s=2),
        bneck(k=5, exp=120, out=40, se=True, nl="RE", s=1),
        bneck(k=5, exp=120, out=40, se=True, nl="RE", s=1),
        # stage 4, 28x28 in
        bneck(k=3, exp=240, out=80, se=False, nl="HS", s=2),
        bneck(k=3, exp=200, out=80, se=False, nl="HS", s=1),
        bneck(k=3, exp=184, out=80, se=False, nl="HS", s=1),
        bneck(k=3, exp=184, out=80, se=False, nl="HS", s=1),
        bneck(k=3, exp=480, out=112, se=True, nl="HS", s=1),
        bneck(k=3, exp=672, out=112, se=True, nl="HS", s=1),
        # stage 5, 14x14 in
        bneck(k=5, exp=672, out=160, se=True, nl="HS", s=2),
        bneck(k=5, exp=960, out=160, se=True, nl="HS", s=1),
        bneck(k=5, exp=960, out=160, se=True, nl="HS", s=1),
    ]
    return ArchSpec(
        name="mobilenet_v3_large",
        stem=StemSpec(out_ch=16, kernel=3, stride=2, act="HS"),
        blocks=_chain(16, rows),
        head=HeadSpec(conv_ch=960, conv_act="HS", hidden_ch=1280, hidden_act="HS", dropout=0.2),
    )


def mobilenet_v3_small() -> ArchSpec:
    """Table 2 of Searching for MobileNetV3.

    The paper's table also marks SE on the last 1x1 conv; torchvision and timm have none there,
    and torchvision's weights must load, so neither has ours.
    """
    rows = [
        # stage 1, 112x112 in
        bneck(k=3, exp=16, out=16, se=True, nl="RE", s=2),
        # stage 2, 56x56 in
        bneck(k=3, exp=72, out=24, se=False, nl="RE", s=2),
        bneck(k=3, exp=88, out=24, se=False, nl="RE", s=1),
        # stage 3, 28x28 in
        bneck(k=5, exp=96, out=40, se=True, nl="HS", s=2),
        bneck(k=5, exp=240, out=40, se=True, nl="HS", s=1),
        bneck(k=5, exp=240, out=40, se=True, nl="HS", s=1),
        bneck(k=5, exp=120, out=48, se=True, nl="HS", s=1),
        bneck(k=5, exp=144, out=48, se=True, nl="HS", s=1),
        # stage 4, 14x14 in
        bneck(k=5, exp=288, out=96, se=True, nl="HS", s=2),
        bneck(k=5, exp=576, out=96, se=True, nl="HS", s=1),
        bneck(k=5, exp=576, out=96, se=True, nl="HS", s=1),
    ]
    return ArchSpec(
        name="mobilenet_v3_small",
        stem=StemSpec(out_ch=16, kernel=3, stride=2, act="HS"),
        blocks=_chain(16, rows),
        # The paper's last layer is 1024 wide (one seed article used 1280).
        head=HeadSpec(conv_ch=576, conv_act="HS", hidden_ch=1024, hidden_act="HS", dropout=0.2),
    )


# --------------------------------------------------------------------------- MnasNet-A1
def mnasnet_a1() -> ArchSpec:
    """MnasNet-A1 (Figure 7 of the MnasNet paper), the seed of the V3-Large search.

    Its first "SepConv k3x3" is an MBConv with expansion 1 (depthwise -> linear pointwise, as
    in the reference TensorFlow code and timm), i.e. a bneck whose exp size equals its input.
    SE follows MnasNet (``se_style="mnasnet"``: squeeze to a quarter of the block input,
    sigmoid gate), as timm does; with MobileNetV3's convention (a quarter of the expansion)
    the same network would have 5.14M params.
    """
    rows = [
        # 112x112 in: SepConv k3x3
        bneck(k=3, t=1, out=16, nl="RE", s=1),
        # 112x112 in: MBConv6 k3x3, x2
        *_repeat(2, bneck(k=3, t=6, out=24, nl="RE", s=2)),
        # 56x56 in: MBConv3 k5x5 SE, x3
        *_repeat(3, bneck(k=5, t=3, out=40, se=True, nl="RE", s=2)),
        # 28x28 in: MBConv6 k3x3, x4
        *_repeat(4, bneck(k=3, t=6, out=80, nl="RE", s=2)),
        # 14x14 in: MBConv6 k3x3 SE, x2
        *_repeat(2, bneck(k=3, t=6, out=112, se=True, nl="RE", s=1)),
        # 14x14 in: MBConv6 k5x5 SE, x3
        *_repeat(3, bneck(k=5, t=6, out=160, se=True, nl="RE", s=2)),
        # 7x7 in: MBConv6 k3x3, x1
        bneck(k=3, t=6, out=320, nl="RE", s=1),
    ]
    return ArchSpec(
        name="mnasnet_a1",
        stem=StemSpec(out_ch=32, kernel=3, stride=2, act="RE"),
        blocks=_chain(32, rows),
        head=HeadSpec(conv_ch=1280, conv_act="RE", dropout=0.2),
        se_style="mnasnet",
    )


# --------------------------------------------------------------------------- MobileNetV1/V2
def mobilenet_v2() -> ArchSpec:
    """Table 2 of MobileNetV2 (t, c, n, s), as torchvision builds it."""
    rows = [
        *_repeat(1, bneck(k=3, t=1, out=16, nl="RE6", s=1)),
        *_repeat(2, bneck(k=3, t=6, out=24, nl="RE6", s=2)),
        *_repeat(3, bneck(k=3, t=6, out=32, nl="RE6", s=2)),
        *_repeat(4, bneck(k=3, t=6, out=64, nl="RE6", s=2)),
        *_repeat(3, bneck(k=3, t=6, out=96, nl="RE6", s=1)),
        *_repeat(3, bneck(k=3, t=6, out=160, nl="RE6", s=2)),
        *_repeat(1, bneck(k=3, t=6, out=320, nl="RE6", s=1)),
    ]
    return ArchSpec(
        name="mobilenet_v2",
        stem=StemSpec(out_ch=32, kernel=3, stride=2, act="RE6"),
        blocks=_chain(32, rows),
        head=HeadSpec(conv_ch=1280, conv_act="RE6", dropout=0.2),
        **TORCH_BN,
    )


def dwsep(out: int, s: int = 1, k: int = 3, nl: str = "RE") -> _Row:
    return _Row("dwsep", k, out, s, nl=nl)


def mobilenet_v1() -> ArchSpec:
    """Table 1 of MobileNets (as timm's mobilenetv1_100): 13 depthwise-separable layers."""
    rows = [
        dwsep(out=64, s=1),     # 112x112 in
        dwsep(out=128, s=2),
        dwsep(out=128, s=1),    # 56x56 in
        dwsep(out=256, s=2),
        dwsep(out=256, s=1),    # 28x28 in
        dwsep(out=512, s=2),
        *[dwsep(out=512, s=1)] * 5,  # 14x14 in
        dwsep(out=1024, s=2),
        dwsep(out=1024, s=1),   # 7x7 in
    ]
    return ArchSpec(
        name="mobilenet_v1",
        stem=StemSpec(out_ch=32, kernel=3, stride=2, act="RE"),
        blocks=_chain(32, rows),
        head=HeadSpec(dropout=0.0),
        **TORCH_BN,
    )


# --------------------------------------------------------------------------- ShuffleNetV2
# Table 5 of ShuffleNet V2: output channels of stages 2-4 and of conv5, per multiplier.
SHUFFLENET_V2_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
SHUFFLENET_V2_REPEATS = (4, 8, 4)


def shufflenet_v2(scale: float = 1.0) -> ArchSpec:
    if scale not in SHUFFLENET_V2_CHANNELS:
        raise SpecError("scale", f"ShuffleNetV2 comes in {sorted(SHUFFLENET_V2_CHANNELS)}, "
                                 f"got {scale}")
    *stage_outs, conv5 = SHUFFLENET_V2_CHANNELS[scale]
    rows = []
    for repeats, out in zip(SHUFFLENET_V2_REPEATS, stage_outs, strict=True):
        rows += _repeat(repeats, _Row("shuffle", 3, out, s=2))
    name = "shufflenet_v2_x" + str(scale).replace(".", "_")
    return ArchSpec(
        name=name,
        stem=StemSpec(out_ch=24, kernel=3, stride=2, act="RE", maxpool=True),
        blocks=_chain(24, rows),
        head=HeadSpec(conv_ch=conv5, conv_act="RE", dropout=0.0),
        **TORCH_BN,
    )


# --------------------------------------------------------------------------- registry
_FACTORIES: dict[str, Callable[[], ArchSpec]] = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    "shufflenet_v2_x0_5": lambda: shufflenet_v2(0.5),
    "shufflenet_v2_x1_0": lambda: shufflenet_v2(1.0),
    "shufflenet_v2_x1_5": lambda: shufflenet_v2(1.5),
    "shufflenet_v2_x2_0": lambda: shufflenet_v2(2.0),
    "mnasnet_a1": mnasnet_a1,
}
ALIASES = {"v1": "mobilenet_v1", "v2": "mobilenet_v2", "v3-large": "mobilenet_v3_large",
           "v3-small": "mobilenet_v3_small", "mnasnet-a1": "mnasnet_a1"}
_OVERRIDES = ("width_mult", "num_classes", "input_size", "name")


@dataclass(frozen=True)
class PaperFigures:
    """ImageNet figures as published (top-1 %, MAdds, params, Pixel-1 latency ms)."""

    source: str
    top1: float
    madds: int
    params: int
    latency_ms: float | None = None


# MobileNetV3 paper, Table 3; V2 1.0 is the row of the same table.
PAPER_FIGURES: dict[tuple[str, float], PaperFigures] = {
    ("mobilenet_v3_large", 1.0): PaperFigures("MobileNetV3 Table 3", 75.2, 219_000_000,
                                              5_400_000, 51),
    ("mobilenet_v3_large", 0.75): PaperFigures("MobileNetV3 Table 3", 73.3, 155_000_000,
                                               4_000_000, 39),
    ("mobilenet_v3_small", 1.0): PaperFigures("MobileNetV3 Table 3", 67.4, 56_000_000,
                                              2_500_000, 15.8),
    ("mobilenet_v3_small", 0.75): PaperFigures("MobileNetV3 Table 3", 65.4, 44_000_000,
                                               2_000_000, 12.8),
    ("mobilenet_v2", 1.0): PaperFigures("MobileNetV3 Table 3", 72.0, 300_000_000, 3_400_000, 64),
}


def names() -> list[str]:
    return list(_FACTORIES)


def canonical_name(name: str) -> str:
    """Zoo name for ``name`` or one of its aliases (``v3-large``); raises on unknown names."""
    key = ALIASES.get(name, name)
    if key not in _FACTORIES:
        known = ", ".join([*names(), *ALIASES])
        raise SpecError("model", f"unknown zoo model {name!r} (known: {known})")
    return key


def get(name: str, **overrides: Any) -> ArchSpec:
    """The zoo spec ``name``, with optional ``width_mult``, ``num_classes``, ``input_size``
    or ``name`` replaced (``get("mobilenet_v3_large", width_mult=0.75)``)."""
    spec = _FACTORIES[canonical_name(name)]()
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise SpecError(unknown[0], f"cannot be overridden (allowed: {', '.join(_OVERRIDES)})")
    return dataclasses.replace(spec, **overrides) if overrides else spec
