"""The compact text form of an ``ArchSpec``: one line per stage, in the spirit of timm's arch-defs.

A codec only, with a strict parser: an unknown or repeated token raises ``SpecError`` naming
the line and the token, and ``ArchSpec.from_text(spec.to_text()) == spec`` for every spec::

    arch mobilenet_v3_small input=224 classes=1000 width=1.0 bn_eps=0.001 bn_momentum=0.01
    stem conv_k3_s2_c16_nhs
    stage ir_k3_s2_x16_c16_se_nre
    stage ir_k3_s2_x72_c24_nre ir_k3_s1_x88_c24_nre
    stage ir_k5_s2_x96_c40_se_nhs ir_r2_k5_s1_x240_c40_se_nhs ir_k5_s1_x120_c48_se_nhs ...
    head conv_c576_nhs fc_c1024_nhs drop0.2

Block tokens: kind (``ir`` bneck, ``ds`` dwsep, ``sh`` shuffle), ``r`` repeats (as in timm,
the stride applies to the first repeat only), ``k`` kernel, ``s`` stride, ``x`` expansion
width in channels (not timm's ratio: V3's widths such as 184 are not ratios), ``c`` output
channels, ``se`` squeeze-excite, ``d`` dilation, and the activation ``nre`` (ReLU), ``nhs``
(h-swish) or ``nre6`` (ReLU6). Input channels are implied by the previous layer.

The codec reads and writes a spec's parts and header fields (:class:`SpecText`); ``ArchSpec``
(:mod:`nas.spec.arch`) turns itself into them and back, so this module never imports it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.errors import SpecError
from nas.spec.parts import BlockSpec, HeadSpec, StemSpec

__all__ = ["SpecText", "format_block", "format_text", "parse_text"]

_KIND_TOKENS = {"bneck": "ir", "dwsep": "ds", "shuffle": "sh"}
_TOKEN_KINDS = {v: k for k, v in _KIND_TOKENS.items()}
_ACT_TOKENS = {"RE": "nre", "HS": "nhs", "RE6": "nre6"}
_TOKEN_ACTS = {v: k for k, v in _ACT_TOKENS.items()}
_INT_PART = re.compile(r"^([a-z])(0|[1-9][0-9]*)$")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?(e-?[0-9]+)?$")
_HEADER_KEYS = {
    "input": "input_size",
    "classes": "num_classes",
    "width": "width_mult",
    "bn_eps": "bn_eps",
    "bn_momentum": "bn_momentum",
    "se": "se_style",
}
_WORD_HEADERS = ("se",)


@dataclass(frozen=True)
class SpecText:
    """What the text form holds of a spec: its header fields, stem, blocks and head.

    ``header`` is keyed by ``ArchSpec`` field names (``HEADER_FIELDS``); read from a text it
    holds ``name`` and the entries the text gives, the others keep ``ArchSpec``'s defaults.
    """

    HEADER_FIELDS: ClassVar[tuple[str, ...]] = ("name", *_HEADER_KEYS.values())

    header: dict[str, Any]
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec


# --------------------------------------------------------------------------- format
def format_block(block: BlockSpec, repeats: int = 1) -> str:
    parts = [_KIND_TOKENS[block.kind]]
    if repeats > 1:
        parts.append(f"r{repeats}")
    parts += [f"k{block.kernel}", f"s{block.stride}"]
    if block.exp_ch is not None:
        parts.append(f"x{block.exp_ch}")
    parts.append(f"c{block.out_ch}")
    if block.se:
        parts.append("se")
    if block.dilation != 1:
        parts.append(f"d{block.dilation}")
    parts.append(_ACT_TOKENS[block.act])
    return "_".join(parts)


def format_text(spec: SpecText) -> str:
    """The text form: a header line, the stem, one line per stage (a stage starts at a strided
    block), the head."""
    header = [f"arch {spec.header['name']}"] + [
        f"{key}={_header_value(spec.header[attr])}" for key, attr in _HEADER_KEYS.items()
    ]
    lines = [" ".join(header), "stem " + _format_stem(spec.stem)]
    stages: list[list[str]] = []
    blocks = spec.blocks
    i = 0
    while i < len(blocks):
        first = blocks[i]
        repeat_of = dataclasses.replace(first, stride=1, in_ch=first.out_ch)
        j = i + 1
        while j < len(blocks) and blocks[j] == repeat_of:
            j += 1
        token = format_block(first, j - i)
        if not stages or first.stride > 1:
            stages.append([])
        stages[-1].append(token)
        i = j
    lines += ["stage " + " ".join(tokens) for tokens in stages]
    lines.append("head " + _format_head(spec.head))
    return "\n".join(lines) + "\n"


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _format_stem(stem: StemSpec) -> str:
    parts = ["conv", f"k{stem.kernel}", f"s{stem.stride}", f"c{stem.out_ch}"]
    if stem.in_ch != 3:
        parts.append(f"i{stem.in_ch}")
    if stem.maxpool:
        parts.append("maxpool")
    parts.append(_ACT_TOKENS[stem.act])
    return "_".join(parts)


def _format_head(head: HeadSpec) -> str:
    tokens = []
    if head.conv_ch is not None:
        tokens.append(f"conv_c{head.conv_ch}_{_ACT_TOKENS[head.conv_act]}")
    if head.hidden_ch is not None:
        tokens.append(f"fc_c{head.hidden_ch}_{_ACT_TOKENS[head.hidden_act]}")
    tokens.append(f"drop{head.dropout!r}")
    return " ".join(tokens)


# --------------------------------------------------------------------------- parse
class _Line:
    """Error context: which line of the text is being read."""

    def __init__(self, number: int):
        self.number = number

    def error(self, message: str) -> SpecError:
        return SpecError(f"line {self.number}", message)


def _integer(digits: str, where: str, line: _Line) -> int:
    # Python refuses to convert integers of more than 4,300 digits (a ValueError, not ours).
    if len(digits) > 18:
        raise line.error(f"{where}: the number {digits[:12]}... is too large")
    return int(digits)


def _split_parts(token: str, line: _Line, ints: str, flags: tuple[str, ...]) -> dict[str, Any]:
    """Parse the parts after the first of ``ir_k3_s2_c16_se_nre``: integer letters, flags and
    one activation."""
    found: dict[str, Any] = {}
    for part in token.split("_")[1:]:
        match = _INT_PART.match(part)
        if part in _TOKEN_ACTS:
            key, value = "act", _TOKEN_ACTS[part]
        elif part in flags:
            key, value = part, True
        elif match and match.group(1) in ints:
            key, value = match.group(1), _integer(match.group(2), f"token {token!r}", line)
        else:
            raise line.error(f"token {token!r}: unknown part {part!r}")
        if key in found:
            raise line.error(f"token {token!r}: {key!r} given twice")
        found[key] = value
    return found


def _require(found: dict[str, Any], keys: str, token: str, line: _Line) -> None:
    for key in keys:
        if key not in found:
            raise line.error(f"token {token!r}: missing '{key}<n>'")
    if "act" not in found:
        raise line.error(f"token {token!r}: missing the activation (nre, nhs or nre6)")


def _parse_stem(token: str, line: _Line) -> StemSpec:
    kind, _, rest = token.partition("_")
    if kind != "conv" or not rest:
        raise line.error(f"stem token {token!r} must start with 'conv_'")
    found = _split_parts(token, line, ints="ksci", flags=("maxpool",))
    _require(found, "ksc", token, line)
    try:
        return StemSpec(kernel=found["k"], stride=found["s"], out_ch=found["c"], act=found["act"],
                        in_ch=found.get("i", 3), maxpool=found.get("maxpool", False))
    except SpecError as exc:
        raise exc.within(f"line {line.number}, stem") from None


def _parse_blocks(token: str, in_ch: int, line: _Line, index: int) -> list[BlockSpec]:
    kind_token, _, rest = token.partition("_")
    if kind_token not in _TOKEN_KINDS or not rest:
        raise line.error(f"token {token!r}: unknown block kind {kind_token!r} "
                         f"(known: {', '.join(_TOKEN_KINDS)})")
    kind = _TOKEN_KINDS[kind_token]
    found = _split_parts(token, line, ints="rksxcd", flags=("se",))
    _require(found, "ksxc" if kind == "bneck" else "ksc", token, line)
    repeats = found.get("r", 1)
    if not 1 <= repeats <= 64:
        raise line.error(f"token {token!r}: repeats must be between 1 and 64, got {repeats}")
    blocks = []
    for r in range(repeats):
        try:
            block = BlockSpec(kind=kind, kernel=found["k"], in_ch=in_ch, exp_ch=found.get("x"),
                              out_ch=found["c"], se=found.get("se", False), act=found["act"],
                              stride=found["s"] if r == 0 else 1, dilation=found.get("d", 1))
        except SpecError as exc:
            raise exc.within(f"line {line.number}, block {index + r}") from None
        blocks.append(block)
        in_ch = block.out_ch
    return blocks


def _parse_head(tokens: list[str], line: _Line) -> HeadSpec:
    fields: dict[str, Any] = {}
    for token in tokens:
        if token.startswith("drop"):
            key, number = "dropout", token[4:]
            if not _NUMBER.match(number):
                raise line.error(f"head token {token!r}: expected drop<probability>")
            value: Any = float(number)
        else:
            layer, _, rest = token.partition("_")
            if layer not in ("conv", "fc") or not rest:
                raise line.error(f"head token {token!r}: expected conv_c<n>_<act>, "
                                 f"fc_c<n>_<act> or drop<p>")
            found = _split_parts(token, line, ints="c", flags=())
            _require(found, "c", token, line)
            key = "conv_ch" if layer == "conv" else "hidden_ch"
            value = found["c"]
            fields["conv_act" if layer == "conv" else "hidden_act"] = found["act"]
        if key in fields:
            raise line.error(f"head token {token!r}: given twice")
        fields[key] = value
    if "dropout" not in fields:
        raise line.error("the head needs a drop<p> token")
    try:
        return HeadSpec(**fields)
    except SpecError as exc:
        raise exc.within(f"line {line.number}, head") from None


def _parse_header(words: list[str], line: _Line) -> dict[str, Any]:
    if len(words) < 2:
        raise line.error("the first line must be 'arch NAME key=value ...'")
    fields: dict[str, Any] = {"name": words[1]}
    for word in words[2:]:
        key, eq, value = word.partition("=")
        if not eq or key not in _HEADER_KEYS:
            raise line.error(f"unknown header entry {word!r} (known: "
                             f"{', '.join(k + '=' for k in _HEADER_KEYS)})")
        attr = _HEADER_KEYS[key]
        if attr in fields:
            raise line.error(f"header entry {key!r} given twice")
        if key in _WORD_HEADERS:
            fields[attr] = value
            continue
        if not _NUMBER.match(value):
            raise line.error(f"header entry {word!r}: expected a number")
        fields[attr] = _integer(value, f"header entry {word!r}", line) \
            if key in ("input", "classes") and value.isdigit() else float(value)
    return fields


def parse_text(text: str) -> SpecText:
    """Parse the text form; ``#`` starts a comment, blank lines are skipped."""
    if not isinstance(text, str):
        raise SpecError("", f"the text form must be a string, got {type(text).__name__}")
    header: dict[str, Any] | None = None
    stem: StemSpec | None = None
    head: HeadSpec | None = None
    blocks: list[BlockSpec] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        line = _Line(number)
        keyword = words[0]
        if header is None:
            if keyword != "arch":
                raise line.error("the first line must be 'arch NAME key=value ...'")
            header = _parse_header(words, line)
        elif keyword == "stem":
            if stem is not None or blocks or len(words) != 2:
                raise line.error("one 'stem conv_...' line, before the stages")
            stem = _parse_stem(words[1], line)
        elif keyword == "stage":
            if stem is None or head is not None or len(words) < 2:
                raise line.error("a 'stage' line needs blocks and comes between stem and head")
            for token in words[1:]:
                in_ch = blocks[-1].out_ch if blocks else stem.out_ch
                blocks += _parse_blocks(token, in_ch, line, len(blocks))
        elif keyword == "head":
            if head is not None or stem is None:
                raise line.error("one 'head' line, after the stages")
            head = _parse_head(words[1:], line)
        else:
            raise line.error(f"unknown line keyword {keyword!r} (known: arch, stem, stage, head)")
    if header is None or stem is None or head is None:
        missing = "arch" if header is None else "stem" if stem is None else "head"
        raise SpecError("", f"the text form has no {missing!r} line")
    return SpecText(header, stem, tuple(blocks), head)
