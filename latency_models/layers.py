"""What a latency table is keyed by: the stem, every block and the head, each with its input shape.

Keys are strings in the manner of Once-for-All's tables, extended with what OFA leaves out of
its keys (squeeze width, activation, block kind), e.g.
``bneck-input:56x56x24-output:28x28x40-expand:72-kernel:5-stride:2-idskip:0-se:24-act:RE``.
Pure Python: predictors and spaces use these without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.spec import ArchSpec, BlockSpec, v3_squeeze_channels

__all__ = ["BlockLayer", "HeadLayer", "Layer", "StemLayer", "layers_of", "space_layers"]


def _out(size: int, stride: int) -> int:
    return -(-size // stride)


@dataclass(frozen=True, slots=True)
class StemLayer:
    res: int
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    act: str
    maxpool: bool

    @property
    def key(self) -> str:
        out = _out(self.res, self.stride)
        if self.maxpool:
            out = _out(out, 2)
        return (f"stem-input:{self.res}x{self.res}x{self.in_ch}-output:{out}x{out}x{self.out_ch}"
                f"-kernel:{self.kernel}-stride:{self.stride}-act:{self.act}"
                f"-maxpool:{int(self.maxpool)}")


@dataclass(frozen=True, slots=True)
class BlockLayer:
    res: int
    kind: str
    in_ch: int
    exp_ch: int | None
    out_ch: int
    kernel: int
    stride: int
    dilation: int
    se_ch: int
    se_gate: str
    act: str

    @property
    def idskip(self) -> int:
        return int(self.kind == "bneck" and self.stride == 1 and self.in_ch == self.out_ch)

    @property
    def key(self) -> str:
        out = _out(self.res, self.stride)
        parts = [f"{self.kind}-input:{self.res}x{self.res}x{self.in_ch}",
                 f"output:{out}x{out}x{self.out_ch}"]
        if self.exp_ch is not None:
            parts.append(f"expand:{self.exp_ch}")
        parts += [f"kernel:{self.kernel}", f"stride:{self.stride}"]
        if self.dilation != 1:
            parts.append(f"dilation:{self.dilation}")
        if self.kind == "bneck":
            parts += [f"idskip:{self.idskip}", f"se:{self.se_ch}"]
            if self.se_ch:
                parts.append(f"gate:{self.se_gate}")
        parts.append(f"act:{self.act}")
        return "-".join(parts)

    def config(self) -> dict:
        """The block's entry of a layer plan (see nas.modules)."""
        return {"kind": self.kind, "kernel": self.kernel, "in_ch": self.in_ch,
                "exp_ch": self.exp_ch, "out_ch": self.out_ch, "act": self.act,
                "stride": self.stride, "dilation": self.dilation, "se_ch": self.se_ch}


@dataclass(frozen=True, slots=True)
class HeadLayer:
    res: int
    in_ch: int
    conv_ch: int | None
    conv_act: str
    hidden_ch: int | None
    hidden_act: str
    num_classes: int

    @property
    def key(self) -> str:
        return (f"head-input:{self.res}x{self.res}x{self.in_ch}-conv:{self.conv_ch or 0}"
                f"-convact:{self.conv_act}-hidden:{self.hidden_ch or 0}"
                f"-hiddenact:{self.hidden_act}-classes:{self.num_classes}")


Layer = StemLayer | BlockLayer | HeadLayer


def block_layer(res: int, block: BlockSpec, se_ch: int, se_gate: str) -> BlockLayer:
    return BlockLayer(res, block.kind, block.in_ch, block.exp_ch, block.out_ch, block.kernel,
                      block.stride, block.dilation, se_ch, se_gate, block.act)


def layers_of(spec: ArchSpec) -> list[Layer]:
    """Stem, blocks and head of the (scaled) network, each with its input resolution."""
    spec = spec.scaled()
    sizes = spec.resolutions()
    stem = spec.stem
    layers: list[Layer] = [StemLayer(spec.input_size, stem.in_ch, stem.out_ch, stem.kernel,
                                     stem.stride, stem.act, stem.maxpool)]
    gate = spec.se_gate
    for size, block in zip(sizes, spec.blocks, strict=False):
        layers.append(block_layer(size, block, spec.se_channels(block), gate))
    head = spec.head
    layers.append(HeadLayer(sizes[-1], spec.out_ch, head.conv_ch, head.conv_act, head.hidden_ch,
                            head.hidden_act, spec.num_classes))
    return layers


def space_layers(space) -> list[Layer]:
    """Every layer a BlockwiseSpace can produce (its networks use V3's SE convention)."""
    layers: list[Layer] = []
    for stem in space.stem_options():
        layers.append(StemLayer(space.input_size, stem.in_ch, stem.out_ch, stem.kernel,
                                stem.stride, stem.act, stem.maxpool))
    for size, block in space.block_options():
        se_ch = v3_squeeze_channels(block.exp_ch) if block.se else 0
        layers.append(block_layer(size, block, se_ch, "hardsigmoid"))
    head_res = space.resolutions()[-1]
    for in_ch, head in space.head_options():
        layers.append(HeadLayer(head_res, in_ch, head.conv_ch, head.conv_act, head.hidden_ch,
                                head.hidden_act, space.num_classes))
    return layers
