"""The architecture spec: one frozen, hashable, JSON-serialisable description of a network.

Everything downstream (builder, latency models, search, NetAdapt, exporters) takes an
``ArchSpec``. This module is pure Python on purpose: spaces, strategies and predictors import it
without importing torch.

Channel counts are stored unscaled, next to ``width_mult``; :meth:`ArchSpec.scaled` is the pure
function that applies the multiplier (MobileNet rounding: multiples of 8, never more than 10%
below the exact value) and returns the concrete network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import SpecError

__all__ = [
    "ACTIVATIONS",
    "BLOCK_KINDS",
    "KERNELS",
    "ArchSpec",
    "BlockSpec",
    "HeadSpec",
    "SE_STYLES",
    "SpecError",
    "StemSpec",
    "TableRow",
    "make_divisible",
    "plain_fields",
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
SPEC_FORMAT = "nas.ArchSpec"
SPEC_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


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
def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message: one line, at most ``limit`` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a 5,000-digit integer, a deeply nested list
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(name, f"must be an integer, got {_show(value)}")
    if not low <= value <= high:
        raise SpecError(name, f"must be between {low} and {high}, got {_show(value)}")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    # Exact types: 3.0 is not a kernel size, and True is not 1.
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        listed = ", ".join(str(c) for c in choices)
        raise SpecError(name, f"must be one of {listed}, got {_show(value)}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(name, f"must be true or false, got {_show(value)}")


def _check_float(name: str, value: Any, low: float, high: float, *, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            isinstance(value, float) and not math.isfinite(value):
        raise SpecError(name, f"must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: out of range below
        number = math.inf if value > 0 else -math.inf
    too_low = number <= low if open_low else number < low
    if too_low or number > high:
        bracket = "(" if open_low else "["
        raise SpecError(name, f"must be in {bracket}{low}, {high}], got {_show(value)}")
    return number


def _check_channels(name: str, value: Any) -> None:
    _check_int(name, value, 1, MAX_CHANNELS)


def _set(obj: Any, name: str, value: Any) -> None:
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
        _check_channels("out_ch", self.out_ch)
        _check_choice("kernel", self.kernel, KERNELS)
        _check_choice("stride", self.stride, STRIDES)
        _check_choice("act", self.act, ACTIVATIONS)
        _check_bool("maxpool", self.maxpool)
        _check_int("in_ch", self.in_ch, 1, 16)


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
    # The field values as one plain tuple, made once: latency predictors key their look-up
    # tables with it (reading nine slots per block per prediction would cost more than the rest
    # of a prediction). Derived, so it is not part of the JSON, the repr or equality.
    _values: tuple = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_values", (self.kind, self.kernel, self.in_ch, self.exp_ch,
                                             self.out_ch, self.se, self.act, self.stride,
                                             self.dilation))
        _check_choice("kind", self.kind, BLOCK_KINDS)
        _check_choice("kernel", self.kernel, KERNELS)
        _check_channels("in_ch", self.in_ch)
        _check_channels("out_ch", self.out_ch)
        _check_bool("se", self.se)
        _check_choice("act", self.act, ACTIVATIONS)
        _check_choice("stride", self.stride, STRIDES)
        _check_choice("dilation", self.dilation, DILATIONS)
        if self.dilation > 1 and self.stride != 1:
            raise SpecError("dilation", "a dilated block must have stride 1")
        if self.kind == "bneck":
            if self.exp_ch is None:
                raise SpecError("exp_ch", "a bneck block needs its expansion width")
            _check_channels("exp_ch", self.exp_ch)
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
            _check_channels("conv_ch", self.conv_ch)
        _check_choice("conv_act", self.conv_act, ACTIVATIONS)
        if self.hidden_ch is not None:
            _check_channels("hidden_ch", self.hidden_ch)
        _check_choice("hidden_act", self.hidden_act, ACTIVATIONS)
        # The activation of an absent layer means nothing: keep one canonical value, so specs
        # that build the same network compare (and hash) equal.
        if self.conv_ch is None:
            _set(self, "conv_act", "HS")
        if self.hidden_ch is None:
            _set(self, "hidden_act", "HS")
        _set(self, "dropout", _check_float("dropout", self.dropout, 0.0, 0.99, open_low=False))


@dataclass(frozen=True, slots=True)
class TableRow:
    """One row of the paper's table: Input, Operator, exp size, #out, SE, NL, s."""

    input_hw: int
    input_ch: int
    operator: str
    exp_size: int | None
    out: int | None
    se: bool
    nl: str | None
    stride: int

    COLUMNS = ("Input", "Operator", "exp size", "#out", "SE", "NL", "s")

    def cells(self) -> list[str]:
        """The row as the paper prints it (``-`` for empty cells)."""
        return [
            f"{self.input_hw}²×{self.input_ch}",
            self.operator,
            "-" if self.exp_size is None else str(self.exp_size),
            "-" if self.out is None else str(self.out),
            "✓" if self.se else "-",
            self.nl or "-",
            str(self.stride),
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchSpec:
    """A whole network: stem, blocks, head, and the data it is built for."""

    name: str
    input_size: int = 224
    num_classes: int = 1000
    width_mult: float = 1.0
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01
    se_style: str = "v3"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise SpecError(
                "name",
                f"must be 1-100 letters, digits, '_', '.' or '-' starting with a letter or "
                f"digit, got {_show(self.name)}",
            )
        _check_int("input_size", self.input_size, 8, 4096)
        _check_int("num_classes", self.num_classes, 1, 1_000_000)
        _set(self, "width_mult", _check_float("width_mult", self.width_mult, 0.0, 4.0,
                                              open_low=True))
        _set(self, "bn_eps", _check_float("bn_eps", self.bn_eps, 0.0, 1.0, open_low=True))
        _set(self, "bn_momentum", _check_float("bn_momentum", self.bn_momentum, 0.0, 1.0,
                                               open_low=True))
        _check_choice("se_style", self.se_style, SE_STYLES)
        if not isinstance(self.stem, StemSpec):
            raise SpecError("stem", f"must be a StemSpec, got {type(self.stem).__name__}")
        if not isinstance(self.head, HeadSpec):
            raise SpecError("head", f"must be a HeadSpec, got {type(self.head).__name__}")
        if isinstance(self.blocks, str | bytes) or not hasattr(self.blocks, "__iter__"):
            raise SpecError("blocks", "must be a sequence of BlockSpec")
        _set(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise SpecError("blocks", "a network needs at least one block")
        prev_out, prev_name = self.stem.out_ch, "the stem"
        for index, block in enumerate(self.blocks):
            if not isinstance(block, BlockSpec):
                raise SpecError(f"block {index}", f"must be a BlockSpec, got "
                                                  f"{type(block).__name__}")
            if block.in_ch != prev_out:
                raise SpecError(
                    f"block {index}.in_ch",
                    f"{block.in_ch} does not match the output of {prev_name} ({prev_out})",
                )
            prev_out, prev_name = block.out_ch, f"block {index}"
        if self.width_mult != 1.0:
            try:
                self.scaled()
            except SpecError as exc:
                raise SpecError("width_mult", f"{self.width_mult} gives an invalid network "
                                              f"({exc})") from None

    # ------------------------------------------------------------------ derived values
    @property
    def out_ch(self) -> int:
        """Channels entering the head (the last block's output)."""
        return self.blocks[-1].out_ch

    @property
    def num_features(self) -> int:
        """Width of the features the classifier sees."""
        if self.head.hidden_ch is not None:
            return self.head.hidden_ch
        if self.head.conv_ch is not None:
            return self.head.conv_ch
        return self.out_ch

    def se_channels(self, block: BlockSpec) -> int:
        """Squeeze width of ``block``'s SE module under this network's ``se_style`` (0: none)."""
        if not block.se or block.exp_ch is None:
            return 0
        if self.se_style == "mnasnet":
            return max(1, round(block.in_ch / 4))
        return v3_squeeze_channels(block.exp_ch)

    @property
    def se_gate(self) -> str:
        return "sigmoid" if self.se_style == "mnasnet" else "hardsigmoid"

    def resolutions(self) -> list[int]:
        """Input height/width of every block (after the stem, stride by stride)."""
        size = _after_stride(self.input_size, self.stem.stride)
        if self.stem.maxpool:
            size = _after_stride(size, 2)
        sizes = []
        for block in self.blocks:
            sizes.append(size)
            size = _after_stride(size, block.stride)
        sizes.append(size)  # what the head sees
        return sizes

    def scaled(self) -> ArchSpec:
        """The concrete network for ``width_mult`` (returned with ``width_mult=1.0``).

        Every stem, block and head-conv width is scaled with :func:`make_divisible`; expansion
        widths keep their ratio to the scaled block input. The layer
        that feeds the classifier (V3's 1280/1024 linear, V2's 1280 conv) is never scaled down,
        as in the papers: V3-Large 0.75 keeps its 1280-wide last layer.
        """
        mult = self.width_mult
        if mult == 1.0:
            return self

        def scale(channels: int) -> int:
            return make_divisible(channels * mult)

        stem = dataclasses.replace(self.stem, out_ch=scale(self.stem.out_ch))
        def scale_block(b: BlockSpec) -> BlockSpec:
            in_ch = scale(b.in_ch)
            # The expansion keeps its ratio to the scaled input (the paper's reference code and
            # timm); scaling it directly, as torchvision does, gives 140M MAdds for V3-Large
            # 0.75 instead of the paper's 155M.
            exp_ch = None if b.exp_ch is None else make_divisible(b.exp_ch / b.in_ch * in_ch)
            return dataclasses.replace(b, in_ch=in_ch, out_ch=scale(b.out_ch), exp_ch=exp_ch)

        blocks = tuple(scale_block(b) for b in self.blocks)
        feature_mult = max(1.0, mult)
        head = self.head
        if head.hidden_ch is not None:
            head = dataclasses.replace(
                head,
                conv_ch=None if head.conv_ch is None else scale(head.conv_ch),
                hidden_ch=make_divisible(head.hidden_ch * feature_mult),
            )
        elif head.conv_ch is not None:
            head = dataclasses.replace(head, conv_ch=make_divisible(head.conv_ch * feature_mult))
        return dataclasses.replace(self, stem=stem, blocks=blocks, head=head, width_mult=1.0)

    # ------------------------------------------------------------------ the paper's table
    def table_rows(self) -> list[TableRow]:
        """The paper's table (Tables 1 and 2 of MobileNetV3) of the scaled network."""
        spec = self.scaled()
        rows: list[TableRow] = []
        size = spec.input_size
        stem = spec.stem
        rows.append(TableRow(size, stem.in_ch, f"conv2d {stem.kernel}x{stem.kernel}", None,
                             stem.out_ch, False, stem.act, stem.stride))
        size = _after_stride(size, stem.stride)
        if stem.maxpool:
            rows.append(TableRow(size, stem.out_ch, "maxpool 3x3", None, None, False, None, 2))
            size = _after_stride(size, 2)
        for block in spec.blocks:
            operator = f"{block.kind} {block.kernel}x{block.kernel}"
            if block.dilation > 1:
                operator += f", dilation {block.dilation}"
            rows.append(TableRow(size, block.in_ch, operator, block.exp_ch, block.out_ch,
                                 block.se, block.act, block.stride))
            size = _after_stride(size, block.stride)
        channels = spec.out_ch
        head = spec.head
        if head.conv_ch is not None:
            rows.append(TableRow(size, channels, "conv2d 1x1", None, head.conv_ch, False,
                                 head.conv_act, 1))
            channels = head.conv_ch
        rows.append(TableRow(size, channels, f"pool {size}x{size}", None, None, False, None, 1))
        if head.hidden_ch is not None:
            rows.append(TableRow(1, channels, "conv2d 1x1, NBN", None, head.hidden_ch, False,
                                 head.hidden_act, 1))
            channels = head.hidden_ch
        rows.append(TableRow(1, channels, "conv2d 1x1, NBN", None, spec.num_classes, False,
                             None, 1))
        return rows

    def table(self) -> str:
        """The paper's table as markdown."""
        lines = ["| " + " | ".join(TableRow.COLUMNS) + " |",
                 "|" + "---|" * len(TableRow.COLUMNS)]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in self.table_rows()]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "name": self.name,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "width_mult": self.width_mult,
            "bn_eps": self.bn_eps,
            "bn_momentum": self.bn_momentum,
            "se_style": self.se_style,
            "stem": plain_fields(self.stem),
            "blocks": [plain_fields(b) for b in self.blocks],
            "head": plain_fields(self.head),
        }

    def to_json(self) -> str:
        """JSON text with one block per line, so diffs and reviews stay readable."""
        data = self.to_dict()
        blocks = data.pop("blocks")
        body = json.dumps(data, indent=2)
        block_lines = ",\n".join("    " + json.dumps(b) for b in blocks)
        return body[:-2] + ',\n  "blocks": [\n' + block_lines + "\n  ]\n}\n"

    @classmethod
    def from_dict(cls, data: Any) -> ArchSpec:
        """Strict inverse of :meth:`to_dict`: unknown, missing or mistyped fields raise."""
        if not isinstance(data, Mapping):
            raise SpecError("", f"an architecture spec must be a JSON object, got "
                                f"{type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise SpecError("format", f"expected {SPEC_FORMAT!r}, got {_show(fmt)}")
        version = data.pop("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError("version", f"this version reads spec version {SPEC_VERSION}, "
                                       f"got {_show(version)}")
        raw_blocks = data.get("blocks")
        if not isinstance(raw_blocks, list):
            raise SpecError("blocks", "must be a list of block objects")
        data["stem"] = _from_mapping(StemSpec, data.get("stem"), "stem")
        data["head"] = _from_mapping(HeadSpec, data.get("head"), "head")
        data["blocks"] = tuple(
            _from_mapping(BlockSpec, raw, f"block {i}") for i, raw in enumerate(raw_blocks)
        )
        return _from_mapping(cls, data, "")

    @classmethod
    def from_json(cls, text: str | bytes) -> ArchSpec:
        if not isinstance(text, str | bytes | bytearray):
            raise SpecError("", f"JSON text must be str or bytes, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("", f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                f"{exc.msg})") from None
        except RecursionError:
            raise SpecError("", "not valid JSON (nested too deeply)") from None
        except ValueError as exc:  # not UTF-8, an integer of more than 4,300 digits
            raise SpecError("", f"not valid JSON ({str(exc).splitlines()[0][:200]})") from None
        return cls.from_dict(data)

    # ------------------------------------------------------------------ text form
    def to_text(self) -> str:
        """The compact arch-def text form; see :mod:`nas.spec.text`."""
        from nas.spec.text import format_spec

        return format_spec(self)

    @classmethod
    def from_text(cls, text: str) -> ArchSpec:
        from nas.spec.text import parse_spec

        return parse_spec(text)

    def __iter__(self) -> Iterator[BlockSpec]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)


def _after_stride(size: int, stride: int) -> int:
    # "same" padding: ceil(size / stride), as every conv and pool here pads (k - 1) // 2.
    return -(-size // stride)


def plain_fields(part: Any) -> dict[str, Any]:
    """A stem, block or head as the dict of its JSON fields (derived fields left out)."""
    return {f.name: getattr(part, f.name) for f in dataclasses.fields(part) if f.init}


def _from_mapping(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise SpecError(where or cls.__name__, f"must be an object, got {type(raw).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise SpecError(where, f"unknown field {_show(unknown[0])} (known: {', '.join(names)})")
    required = [f.name for f in dataclasses.fields(cls) if f.init
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in raw]
    if missing:
        raise SpecError(where, f"missing field {missing[0]!r}")
    try:
        return cls(**raw)
    except SpecError as exc:
        raise (exc.within(where) if where else exc) from None

