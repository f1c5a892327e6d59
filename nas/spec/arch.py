"""The whole network's spec: ``ArchSpec``, one frozen, hashable, JSON-serialisable description.

Everything downstream (builder, latency models, search, NetAdapt, exporters) takes an
``ArchSpec``; its stem, blocks and head are the parts of :mod:`nas.spec.parts`, its compact
text form the codec of :mod:`nas.spec.text` (which knows the parts, not this class, so the two
modules import one way only).

Channel counts are stored unscaled, next to ``width_mult``; :meth:`ArchSpec.scaled` is the pure
function that applies the multiplier (MobileNet rounding: multiples of 8, never more than 10%
below the exact value) and returns the concrete network.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import SpecError
from nas.spec.parts import (
    SE_STYLES,
    BlockSpec,
    HeadSpec,
    StemSpec,
    check_choice,
    check_float,
    check_int,
    from_mapping,
    make_divisible,
    plain_fields,
    set_field,
    show_value,
    v3_squeeze_channels,
)
from nas.spec.text import SpecText, format_text, parse_text

__all__ = ["SPEC_FORMAT", "SPEC_VERSION", "ArchSpec", "TableRow"]

SPEC_FORMAT = "nas.ArchSpec"
SPEC_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


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
                f"digit, got {show_value(self.name)}",
            )
        check_int("input_size", self.input_size, 8, 4096)
        check_int("num_classes", self.num_classes, 1, 1_000_000)
        set_field(self, "width_mult", check_float("width_mult", self.width_mult, 0.0, 4.0,
                                                  open_low=True))
        set_field(self, "bn_eps", check_float("bn_eps", self.bn_eps, 0.0, 1.0, open_low=True))
        set_field(self, "bn_momentum", check_float("bn_momentum", self.bn_momentum, 0.0,
                                                   1.0, open_low=True))
        check_choice("se_style", self.se_style, SE_STYLES)
        if not isinstance(self.stem, StemSpec):
            raise SpecError("stem", f"must be a StemSpec, got {type(self.stem).__name__}")
        if not isinstance(self.head, HeadSpec):
            raise SpecError("head", f"must be a HeadSpec, got {type(self.head).__name__}")
        if isinstance(self.blocks, str | bytes) or not hasattr(self.blocks, "__iter__"):
            raise SpecError("blocks", "must be a sequence of BlockSpec")
        set_field(self, "blocks", tuple(self.blocks))
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
            raise SpecError("format", f"expected {SPEC_FORMAT!r}, got {show_value(fmt)}")
        version = data.pop("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError("version", f"this version reads spec version {SPEC_VERSION}, "
                                       f"got {show_value(version)}")
        raw_blocks = data.get("blocks")
        if not isinstance(raw_blocks, list):
            raise SpecError("blocks", "must be a list of block objects")
        data["stem"] = from_mapping(StemSpec, data.get("stem"), "stem")
        data["head"] = from_mapping(HeadSpec, data.get("head"), "head")
        data["blocks"] = tuple(
            from_mapping(BlockSpec, raw, f"block {i}") for i, raw in enumerate(raw_blocks)
        )
        return from_mapping(cls, data, "")

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
        """The compact arch-def text form (:mod:`nas.spec.text`);
        ``ArchSpec.from_text(spec.to_text()) == spec`` for every spec."""
        header = {name: getattr(self, name) for name in SpecText.HEADER_FIELDS}
        return format_text(SpecText(header, self.stem, self.blocks, self.head))

    @classmethod
    def from_text(cls, text: str) -> ArchSpec:
        """Strict inverse of :meth:`to_text`: an unknown or repeated token raises ``SpecError``
        naming the line and the token."""
        parsed = parse_text(text)
        return cls(stem=parsed.stem, blocks=parsed.blocks, head=parsed.head, **parsed.header)

    def __iter__(self) -> Iterator[BlockSpec]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)


def _after_stride(size: int, stride: int) -> int:
    # "same" padding: ceil(size / stride), as every conv and pool here pads (k - 1) // 2.
    return -(-size // stride)
