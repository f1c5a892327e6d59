"""Fuzzing every input surface with hypothesis: ``pytest -m fuzz tests/test_fuzz.py``.

Surfaces: spec JSON, the spec text form, budget strings, CLI options, latency table files (ours
and Once-for-All YAML), data directories (image folders, CIFAR-10 batches) and checkpoint files.
Every test runs ``CASES`` generated inputs and checks that it did. A bad input must raise the
surface's own error (a ``ValueError`` subclass) with a one-line message, never another
exception; a good one must round-trip. The CLI must answer every bad input with exactly one
line on stderr starting with ``error:``, exit code 2, nothing on stdout, and no file written,
changed or removed (every command runs in a fresh directory, the latency cache included).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import pickle
import re
import signal
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.text import Text

import nas
from latency_models.lut import Entry, LatencyTable, TableError, import_ofa_table
from latency_models.predictor import LUTPredictor
from nas.cli.app import _run, app
from nas.cli.common import one_line
from nas.data import DataError, ImageData, load_data
from nas.export import build_with_weights, load_checkpoint
from nas.search.budget import BudgetError, parse_budget
from nas.spec import (
    ACTIVATIONS,
    BLOCK_KINDS,
    DILATIONS,
    KERNELS,
    MAX_CHANNELS,
    SE_STYLES,
    STRIDES,
    ArchSpec,
    BlockSpec,
    HeadSpec,
    SpecError,
    StemSpec,
)
from search_spaces import zoo

from .conftest import arch_specs

pytestmark = pytest.mark.fuzz

CASES = 1000
FUZZ = settings(max_examples=CASES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


def run_cases(check: Callable[[Any], None], strategy: st.SearchStrategy) -> int:
    """Run ``check`` on ``CASES`` generated examples; returns how many it saw."""
    seen = 0

    @FUZZ
    @given(strategy)
    def fuzz(example: Any) -> None:
        nonlocal seen
        seen += 1
        check(example)

    fuzz()
    return seen


class Blob:
    """File content that prints short in a failure report (the first 32 bytes)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self) -> str:
        return f"Blob({len(self.data)} bytes: {self.data[:32]!r})"


def write_files(root: Path, files: dict[str, Blob | bytes | None]) -> None:
    """Create ``files`` under ``root`` (None: a directory)."""
    for rel, content in sorted(files.items(), key=lambda item: item[1] is not None):
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.data if isinstance(content, Blob) else content)


def printed(message: str) -> str:
    """The error line the CLI prints for ``message``."""
    return Text.from_markup(f"[bold red]error:[/] {one_line(message)}").plain


def assert_one_line(exc: BaseException, kind: type[BaseException]) -> str:
    """``exc`` is a ``kind`` whose message is one non-empty line; returns the message."""
    assert isinstance(exc, kind), f"{type(exc).__name__} instead of {kind.__name__}: {exc}"
    message = str(exc)
    assert message.strip() and len(message.splitlines()) == 1, repr(message)
    return message


# --------------------------------------------------------------------------- generic values
# What a user (or a shell) can put in an argument, with the characters that break output most
# often drawn more often: rich markup, line breaks, terminal escapes, quotes.
NASTY = st.sampled_from(["[", "]", "/", "[/]", "[/x]", "[bold]", "\n", "\r", "\t", "\x1b[2J",
                         "\\", "'", '"', "\u2028", "\x85", " ", ":", "µ", "é"])
TEXT = st.lists(NASTY | st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12).map("".join)
BIG_INTS = st.integers(min_value=2**63, max_value=10**600) | \
    st.integers(min_value=-(10**600), max_value=-(2**63))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), BIG_INTS,
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)
NON_INT = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=6),
                    st.lists(st.integers(), max_size=2))
NON_NUMBER = st.one_of(st.none(), st.booleans(), st.text(max_size=6),
                       st.lists(st.floats(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                          st.integers(),
                                                                          max_size=1))


def invalid_int(low: int, high: int) -> st.SearchStrategy:
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1), BIG_INTS,
                     NON_INT)


def invalid_choice(choices: tuple) -> st.SearchStrategy:
    def chosen(value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in choices)

    return st.one_of(JSON_SCALARS, st.sampled_from([c.lower() if isinstance(c, str) else c + 1
                                                    for c in choices])).filter(
        lambda v: not chosen(v))


def invalid_float(low: float, high: float, *, open_low: bool) -> st.SearchStrategy:
    below = st.floats(max_value=low).filter(lambda v: v <= low if open_low else v < low)
    return st.one_of(below, st.floats(min_value=high, exclude_min=True), BIG_INTS,
                     st.sampled_from([math.nan, math.inf, -math.inf]), NON_NUMBER)


def invalid_bool() -> st.SearchStrategy:
    return JSON_SCALARS.filter(lambda v: not isinstance(v, bool))


# --------------------------------------------------------------------------- spec JSON
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
CHANNELS = invalid_int(1, MAX_CHANNELS)
TOP_FIELDS = {
    "name": st.one_of(st.text(max_size=120).filter(lambda s: not NAME_RE.match(s)),
                      NON_NUMBER.filter(lambda v: not isinstance(v, str)), st.integers()),
    "input_size": invalid_int(8, 4096),
    "num_classes": invalid_int(1, 1_000_000),
    "width_mult": invalid_float(0.0, 4.0, open_low=True),
    "bn_eps": invalid_float(0.0, 1.0, open_low=True),
    "bn_momentum": invalid_float(0.0, 1.0, open_low=True),
    "se_style": invalid_choice(SE_STYLES),
    "format": JSON_SCALARS.filter(lambda v: v != "nas.ArchSpec"),
    "version": JSON_SCALARS.filter(lambda v: v != 1),
    "blocks": JSON_VALUES.filter(lambda v: not isinstance(v, list)),
    "stem": JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
    "head": JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
}
STEM_FIELDS = {
    "out_ch": CHANNELS, "kernel": invalid_choice(KERNELS), "stride": invalid_choice(STRIDES),
    "act": invalid_choice(ACTIVATIONS), "maxpool": invalid_bool(), "in_ch": invalid_int(1, 16),
}
HEAD_FIELDS = {
    "conv_ch": CHANNELS.filter(lambda v: v is not None),
    "hidden_ch": CHANNELS.filter(lambda v: v is not None),
    "conv_act": invalid_choice(ACTIVATIONS), "hidden_act": invalid_choice(ACTIVATIONS),
    "dropout": invalid_float(0.0, 0.99, open_low=False),
}
BLOCK_FIELDS = {
    "kind": invalid_choice(BLOCK_KINDS), "kernel": invalid_choice(KERNELS),
    "stride": invalid_choice(STRIDES), "act": invalid_choice(ACTIVATIONS),
    "dilation": invalid_choice(DILATIONS), "se": invalid_bool(), "out_ch": CHANNELS,
    "in_ch": st.one_of(CHANNELS, st.integers(1, MAX_CHANNELS)),  # a mismatch is invalid too
}


@st.composite
def invalid_spec_dicts(draw) -> tuple[dict, str]:
    """A valid spec's JSON object with one field made invalid, and the field the error must
    name (a trailing '.' means: any field of that block)."""
    spec = draw(arch_specs())
    data = spec.to_dict()
    where = draw(st.sampled_from(["top", "stem", "head", "block", "extra", "missing"]))
    if where == "top":
        key = draw(st.sampled_from(sorted(TOP_FIELDS)))
        data[key] = draw(TOP_FIELDS[key])
        return data, key
    if where in ("stem", "head"):
        fields = STEM_FIELDS if where == "stem" else HEAD_FIELDS
        key = draw(st.sampled_from(sorted(fields)))
        data[where][key] = draw(fields[key])
        return data, f"{where}.{key}"
    index = draw(st.integers(0, len(spec.blocks) - 1))
    block = data["blocks"][index]
    if where == "extra":
        block[draw(st.text(max_size=8).filter(lambda k: k not in block))] = draw(JSON_VALUES)
        return data, f"block {index}"
    if where == "missing":
        del block[draw(st.sampled_from(["kind", "kernel", "in_ch", "out_ch"]))]
        return data, f"block {index}"
    key = draw(st.sampled_from([*sorted(BLOCK_FIELDS), "exp_ch"]))
    if key == "exp_ch":  # a bneck needs one, the others have none
        value = draw(CHANNELS) if block["kind"] == "bneck" else \
            draw(JSON_VALUES.filter(lambda v: v is not None))
    elif key == "se" and block["kind"] != "bneck":
        value = draw(st.just(True) | invalid_bool())
    else:
        value = draw(BLOCK_FIELDS[key])
    if key == "in_ch" and value == block["in_ch"]:
        value = block["in_ch"] + 1
    block[key] = value
    return data, f"block {index}." if key == "in_ch" else f"block {index}.{key}"


def _assert_spec_error(exc: BaseException) -> SpecError:
    assert_one_line(exc, SpecError)
    assert exc.field == "" or re.fullmatch(r"(line \d+(, (stem|head|block \d+))?|block \d+|"
                                           r"stem|head|[a-z_]+)(\.[a-z_]+)?", exc.field), \
        exc.field
    return exc


def _assert_round_trips(spec: ArchSpec) -> None:
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.from_text(spec.to_text()) == spec
    assert ArchSpec.from_dict(json.loads(spec.to_json())) == spec


@st.composite
def float_specs(draw) -> ArchSpec | None:
    """Random valid specs with arbitrary floats where floats go (None if that is invalid)."""
    spec = draw(arch_specs())
    unit = st.floats(min_value=1e-12, max_value=1.0, allow_subnormal=False)
    try:
        return dataclasses.replace(
            spec, width_mult=draw(st.floats(min_value=1e-3, max_value=4.0) | st.just(1.0)),
            bn_eps=draw(unit), bn_momentum=draw(unit),
            head=dataclasses.replace(spec.head, dropout=draw(st.floats(0.0, 0.99))))
    except SpecError as exc:  # the width made a channel count invalid
        assert exc.field == "width_mult"
        return None


def test_valid_specs_round_trip_through_json_and_text():
    def check(spec: ArchSpec | None) -> None:
        if spec is not None:
            _assert_round_trips(spec)

    assert run_cases(check, arch_specs() | float_specs()) >= CASES


def test_a_spec_with_one_bad_field_names_it():
    def check(case: tuple[dict, str]) -> None:
        data, where = case
        with pytest.raises(SpecError) as info:
            ArchSpec.from_json(json.dumps(data))
        error = _assert_spec_error(info.value)
        if where.endswith("."):
            assert error.field.startswith(where), (error.field, where)
        else:
            assert error.field == where, (error.field, where, str(error))

    assert run_cases(check, invalid_spec_dicts()) >= CASES


@st.composite
def mangled_json(draw) -> str | bytes:
    """A spec's JSON, mutated anywhere, truncated, spliced or replaced by garbage."""
    spec = draw(arch_specs())
    data = spec.to_dict()
    how = draw(st.sampled_from(["set", "delete", "truncate", "splice", "garbage", "nested"]))
    if how in ("set", "delete"):
        containers = [data, data["stem"], data["head"], *data["blocks"]]
        target = draw(st.sampled_from(containers))
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
        if how == "set":
            target[key] = draw(JSON_VALUES)
        else:
            target.pop(key, None)
        return json.dumps(data)
    text = spec.to_json()
    if how == "truncate":
        return text[:draw(st.integers(0, len(text) - 1))]
    if how == "splice":
        start = draw(st.integers(0, len(text)))
        stop = draw(st.integers(start, min(len(text), start + 8)))
        return text[:start] + draw(st.text(max_size=8)) + text[stop:]
    if how == "nested":
        return "[" * draw(st.integers(500, 200_000)) + text
    return draw(st.binary(max_size=64) | st.text(max_size=64))


def test_mangled_json_is_a_spec_error_or_a_spec():
    def check(text: str | bytes) -> None:
        try:
            spec = ArchSpec.from_json(text)
        except Exception as exc:  # noqa: BLE001 - the type is what is checked
            _assert_spec_error(exc)
        else:
            _assert_round_trips(spec)

    assert run_cases(check, mangled_json()) >= CASES


# --------------------------------------------------------------------------- spec text form
HUGE_NUMBER = "9" * 5000  # beyond Python's 4,300-digit int() limit
PART_POOL = ["k3", "k4", "k5", "k7", "k0", "s1", "s2", "s3", "x16", "x0", "x" + "9" * 30,
             "x" + HUGE_NUMBER, "c8", "c16", "c0", "c17", "c" + "1" * 25, "r2", "r0", "r65",
             "r007", "d2", "d3", "se", "se0.25", "nre", "nhs", "nre6", "nrelu", "maxpool", "i1",
             "i3", "i17", "e6", "", "_", "K3"]
TOKEN_POOL = ["ir_k3_s1_x16_c16_nre", "ds_k3_s1_c16_nre6", "sh_k3_s2_c32_nre",
              "conv_k3_s2_c16_nhs", "conv_c64_nhs", "fc_c128_nhs", "drop0.2", "drop1.5",
              "drop", "drop1e-05", "input=32", "classes=10", "width=0.5", "width=0",
              "bn_eps=0.001", "se=mnasnet", "se=v4", "input=1.5", "input=" + HUGE_NUMBER,
              "width=" + HUGE_NUMBER, "colour=red", "#", "arch", "stem", "stage", "head"]


@st.composite
def mangled_text(draw) -> str:
    """A spec's text form with tokens, parts or lines changed, or arbitrary text."""
    spec = draw(arch_specs())
    lines = [line.split() for line in spec.to_text().splitlines()]
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["part", "token", "drop-token", "drop-line", "dup-line",
                                    "swap", "insert", "chars", "number"]))
        row = draw(st.integers(0, len(lines) - 1))
        if how == "number":  # a number grown past 18 digits, or past Python's int() limit
            col = draw(st.integers(0, len(lines[row]) - 1))
            digits = draw(st.sampled_from(["9" * 19, HUGE_NUMBER, "0", "00"]))
            lines[row][col] = re.sub(r"[0-9]+", digits, lines[row][col], count=1)
        elif how in ("part", "token", "drop-token") and len(lines[row]) > 1:
            col = draw(st.integers(1, len(lines[row]) - 1))
            if how == "part":
                parts = lines[row][col].split("_")
                at = draw(st.integers(0, len(parts)))
                new = draw(st.sampled_from(PART_POOL) | st.text(max_size=4))
                if draw(st.booleans()) and at < len(parts):
                    parts[at] = new
                else:
                    parts.insert(at, new)
                lines[row][col] = "_".join(parts)
            elif how == "token":
                lines[row][col] = draw(st.sampled_from(TOKEN_POOL) | st.text(max_size=10))
            else:
                del lines[row][col]
        elif how == "drop-line" and len(lines) > 1:
            del lines[row]
        elif how == "dup-line":
            lines.insert(row, list(lines[row]))
        elif how == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[row], lines[other] = lines[other], lines[row]
        elif how == "insert":
            lines.insert(row, [draw(st.sampled_from(["arch", "stem", "stage", "head", "#",
                                                     "block"])),
                               *draw(st.lists(st.sampled_from(TOKEN_POOL), max_size=3))])
        else:
            text = " ".join(lines[row])
            at = draw(st.integers(0, len(text)))
            lines[row] = (text[:at] + draw(st.text(max_size=4)) + text[at:]).split(" ")
    text = "\n".join(" ".join(words) for words in lines)
    return draw(st.just(text) | st.just(text) | st.just(text) | st.text(max_size=80))


def test_mangled_text_is_a_spec_error_naming_the_line_or_a_spec():
    def check(text: str) -> None:
        try:
            spec = ArchSpec.from_text(text)
        except Exception as exc:  # noqa: BLE001 - the type is what is checked
            error = _assert_spec_error(exc)
            number = re.match(r"line (\d+)", error.field)
            if number:
                assert 1 <= int(number.group(1)) <= len(text.splitlines())
        else:
            _assert_round_trips(spec)

    assert run_cases(check, mangled_text()) >= CASES


# --------------------------------------------------------------------------- budgets
UNITS = {"ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001, "μs": 0.001}
BAD_UNITS = ["", "m", "sec", "msec", "ns", "min", "h", "mss", "m s", "ms.", "µ", "%", "ms ms"]


@st.composite
def budget_texts(draw) -> tuple[str, float | None]:
    """(text, the budget in ms, or None where it must be refused)."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.text(max_size=14)), None  # checked against the regex below
    digits = draw(st.decimals(min_value=0, max_value=10**7, places=draw(st.integers(0, 4)),
                              allow_nan=False, allow_infinity=False))
    number = f"{digits:f}"
    good = True
    if draw(st.integers(0, 4)) == 0:  # a form the parser does not take
        number = draw(st.sampled_from([f"-{number}", f"+{number}", f"{number}e2",
                                       number.replace(".", ","), f"{number}.5.1", "nan", "inf",
                                       "0x1A", "1_000", "٣", "½", ""]))
        good = False
    unit = draw(st.sampled_from(sorted(UNITS)))
    if draw(st.integers(0, 4)) == 0:
        unit, good = draw(st.sampled_from(BAD_UNITS)), False
    elif draw(st.booleans()):
        unit = unit.upper()
    space = draw(st.sampled_from(["", "", " ", "  ", "\t"]))
    pad = draw(st.sampled_from(["", " ", "\n"]))
    text = f"{pad}{number}{space}{unit}{pad}"
    if not good:
        return text, None
    ms = float(Decimal(number) * Decimal(str(UNITS[unit.lower()])))
    return text, ms if ms > 0 else None


_BUDGET = re.compile(r"\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*(ms|s|us|µs|μs)\s*", re.IGNORECASE)


def test_budget_strings_parse_exactly_or_are_one_budget_error():
    def check(case: tuple[str, float | None]) -> None:
        text, expected = case
        try:
            value = parse_budget(text)
        except Exception as exc:  # noqa: BLE001 - the type is what is checked
            message = assert_one_line(exc, BudgetError)
            assert message.startswith("latency budget")
            assert expected is None, (text, expected)
        else:
            assert math.isfinite(value) and value > 0
            if expected is not None:
                assert value == pytest.approx(expected, rel=1e-12)
            else:  # arbitrary text that parsed: it must have the documented form
                assert _BUDGET.fullmatch(text), text

    assert run_cases(check, budget_texts()) >= CASES


# --------------------------------------------------------------------------- CLI options
_COMMAND: list = []


def run_cli(args: list[str]) -> tuple[int, str, str]:
    if not _COMMAND:
        _COMMAND.append(typer.main.get_command(app))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _run(_COMMAND[0], list(args), "nas")
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


@contextlib.contextmanager
def fresh_directory() -> Iterator[Path]:
    """A new empty working directory, with the latency cache inside it."""
    old_cwd, old_cache = os.getcwd(), os.environ.get("NAS_CACHE_DIR")
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        os.chdir(root)
        os.environ["NAS_CACHE_DIR"] = str(root / "cache")
        try:
            yield root
        finally:
            os.chdir(old_cwd)
            if old_cache is None:
                os.environ.pop("NAS_CACHE_DIR", None)
            else:
                os.environ["NAS_CACHE_DIR"] = old_cache


@pytest.fixture
def keep_sigterm() -> Iterator[None]:
    """``nas search`` and ``nas netadapt`` install a SIGTERM handler; put pytest's back."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


@dataclass(repr=False)
class Case:
    args: list[str]
    words: str | None = None           # expected in the error line
    files: dict[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        files = {name: Blob(content) for name, content in self.files.items()}
        return f"Case({self.args!r}, words={self.words!r}, files={files!r})"


def assert_rejected(case: Case) -> str:
    """Run ``case`` in a fresh directory: exit 2, one error line, nothing else changed."""
    with fresh_directory() as root:
        write_files(root, case.files)
        before = snapshot(root)
        code, out, err = run_cli(case.args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (case, code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, err)
        assert out == "", (case, out)
        if case.words is not None:
            assert case.words in lines[0], (case, lines[0])
        assert snapshot(root) == before, (case, sorted(set(snapshot(root)) - set(before)))
        return lines[0]


def _parses(convert: Callable[[str], Any], text: str) -> bool:
    try:
        convert(text)
    except (ValueError, OverflowError):
        return False
    return True


NOT_INT = TEXT.filter(lambda s: not _parses(int, s))
NOT_FLOAT = TEXT.filter(lambda s: not _parses(float, s))
SPEC_WORD = TEXT.filter(lambda s: s and not s.startswith("-") and s not in zoo.names()
                        and s not in zoo.ALIASES and not Path(s).exists()
                        and s not in ("profile", "predict", "show", "validate", "import-ofa"))
ZOO = sorted([*zoo.names(), *zoo.ALIASES])
V3 = ["v3-large", "v3-small", "mobilenet_v3_large", "mobilenet_v3_small"]
TINY = st.integers(min_value=-(10**30), max_value=0) | BIG_INTS.filter(lambda v: v < 0)
NEGATIVE = st.integers(max_value=-1) | BIG_INTS.filter(lambda v: v < 0)
# beyond what torch.manual_seed takes: [-2^63, 2^64)
HUGE_SEEDS = st.integers(min_value=2**64, max_value=10**600) | \
    st.integers(min_value=-(10**600), max_value=-(2**63) - 1)
GARBAGE_FILE = st.binary(max_size=200)


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def outside(low: float, high: float, *, open_low: bool = True) -> st.SearchStrategy:
    """Floats outside (low, high] (or [low, high]) as the CLI receives them."""
    below = st.floats(max_value=low, exclude_max=not open_low, allow_nan=False)
    above = st.floats(min_value=high, exclude_min=True)
    return (below | above | st.sampled_from([math.nan, math.inf, -math.inf])).map(_fmt)


def bad_budget() -> st.SearchStrategy:
    return budget_texts().filter(lambda case: case[1] is None).map(lambda case: case[0]).filter(
        lambda text: not _parses(parse_budget, text))


def bad_source() -> st.SearchStrategy:
    kinds = st.sampled_from(["imagefolder", "cifar10", "digits", "digits-hard", "mnist", ""])
    return st.one_of(
        st.tuples(kinds, st.sampled_from([":", ""]), TEXT).map("".join),
        TEXT).filter(lambda s: s not in ("digits", "digits-hard") and not s.startswith("-"))


def bad_device() -> st.SearchStrategy:
    def cpu(text: str) -> bool:
        try:
            return torch.device(text).type == "cpu" or (torch.device(text).type == "cuda"
                                                       and torch.cuda.is_available())
        except (RuntimeError, TypeError, ValueError):
            return False

    return (TEXT | st.sampled_from(["cuda", "cuda:0", "mps", "gpu", "CPU", "cpu:x", "meta"])) \
        .filter(lambda s: not cpu(s) and not s.startswith("-"))


def not_in(choices) -> st.SearchStrategy:
    return TEXT.filter(lambda s: s not in choices and not s.startswith("-"))


def option(name: str, values: st.SearchStrategy) -> st.SearchStrategy:
    return values.map(lambda v: f"--{name}={v}")


def cases_for(prefix: list[str], name: str, values: st.SearchStrategy,
              words: str | None) -> st.SearchStrategy:
    return option(name, values).map(lambda opt: Case([*prefix, opt], words))


def usage_cases() -> list[st.SearchStrategy]:
    command = typer.main.get_command(app)
    commands = sorted(command.commands)
    int_options = [(["search"], "trials"), (["search"], "seed"), (["search"], "workers"),
                   (["train", "v3-small"], "epochs"), (["train", "v3-small"], "batch-size"),
                   (["netadapt", "v3-small", "--target=5ms"], "short-steps"),
                   (["reproduce", "v3-small"], "seed"), (["export", "v3-small"], "seed"),
                   (["latency", "profile"], "threads"), (["latency", "validate"], "archs"),
                   (["supernet", "train"], "budget"), (["space"], "resolution")]
    float_options = [(["reproduce", "v3-small"], "width"), (["table", "v3-small"], "width"),
                     (["train", "v3-small"], "lr"),
                     (["netadapt", "v3-small", "--target=5ms"], "delta-decay")]
    word = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
    return [
        (word | TEXT).filter(lambda w: w not in commands and not w.startswith("-")).map(
            lambda w: Case([w], "No such command")),
        st.tuples(st.sampled_from([["zoo"], ["space"], ["search"], ["table", "v3-small"],
                                   ["export", "v3-small"], ["latency", "profile"],
                                   ["netadapt", "v3-small", "--target=5ms"]]),
                  word.filter(lambda w: w not in ("help",))).map(
            lambda c: Case([*c[0], f"--{c[1]}x"], "No such option")),
        st.tuples(st.sampled_from(int_options), NOT_INT).map(
            lambda c: Case([*c[0][0], f"--{c[0][1]}={c[1]}"], f"Invalid value for '--{c[0][1]}'")),
        st.tuples(st.sampled_from(float_options), NOT_FLOAT).map(
            lambda c: Case([*c[0][0], f"--{c[0][1]}={c[1]}"], f"Invalid value for '--{c[0][1]}'")),
        st.sampled_from([["table"], ["export"], ["train"], ["reproduce"], ["latency", "show"],
                         ["latency", "import-ofa"], ["netadapt", "--target=5ms"]]).map(
            lambda args: Case(args, "Missing argument")),
        st.just(Case(["netadapt", "v3-small"], "Missing option '--target'")),
        st.tuples(st.sampled_from([["zoo"], ["space"], ["table", "v3-small"]]), SPEC_WORD).map(
            lambda c: Case([*c[0], c[1]], "Got unexpected extra argument")),
    ]


def reproduce_cases() -> list[st.SearchStrategy]:
    search = st.sampled_from(V3).map(lambda m: ["reproduce", m, "--search", "--out=out"])
    not_v3 = st.sampled_from([n for n in ZOO if n not in V3])
    return [
        SPEC_WORD.map(lambda m: Case(["reproduce", m, "--out=out"], "unknown zoo model")),
        st.tuples(st.sampled_from(ZOO), outside(0, 4)).map(
            lambda c: Case(["reproduce", c[0], f"--width={c[1]}", "--out=out"],
                           "--width must be in (0, 4]")),
        st.tuples(st.sampled_from(ZOO), HUGE_SEEDS).map(
            lambda c: Case(["reproduce", c[0], f"--seed={c[1]}", "--out=out"],
                           "the seed must be an integer")),
        not_v3.map(lambda m: Case(["reproduce", m, "--search", "--out=out"],
                                  "--search reproduces v3-large or v3-small")),
        st.tuples(search, st.floats(0.01, 4.0).filter(lambda w: w != 1.0)).map(
            lambda c: Case([*c[0], f"--width={c[1]!r}"], "drop --width")),
        st.tuples(search, st.sampled_from([
            ("trials", TINY, "--trials must be at least 1"),
            ("strategy", not_in(("random", "evolution", "tpe", "nsga2", "rl", "ppo")),
             "unknown strategy"),
            ("data", bad_source(), None),
            ("resolution", st.integers(max_value=7) | st.integers(min_value=1025),
             "resolution must be an integer between 8 and 1024"),
            ("init-epochs", TINY, "--init-epochs"),
            ("short-steps", TINY, "short-steps must be at least 1"),
            ("long-epochs", NEGATIVE, "--long-epochs must be >= 0"),
            ("delta", outside(0, 1, open_low=True).filter(lambda v: v != "1.0"), "--delta"),
            ("workers", NEGATIVE, "--workers must be at least 1"),
            ("device", bad_device(), "device"),
        ])).flatmap(lambda c: c[1][1].map(
            lambda v, c=c: Case([*c[0], f"--{c[1][0]}={v}"], c[1][2]))),
    ]


def spec_file_cases(command: list[str], after: list[str]) -> list[st.SearchStrategy]:
    return [
        SPEC_WORD.map(lambda s: Case([*command, s, *after], "is neither a file nor a zoo model")),
        GARBAGE_FILE.map(lambda b: Case([*command, "bad.pt", *after], "bad.pt",
                                        {"bad.pt": b})),
        mangled_json().map(lambda t: t if isinstance(t, bytes) else t.encode()).filter(
            lambda b: not _loads(b)).map(
            lambda b: Case([*command, "spec.json", *after], "spec.json", {"spec.json": b})),
    ]


def _loads(content: bytes) -> bool:
    try:
        ArchSpec.from_json(content)
    except SpecError:
        return False
    return True


def table_export_train_cases() -> list[st.SearchStrategy]:
    formats = ("pytorch", "py", "torchscript", "onnx", "json", "text", "timm", "table")
    train = ["train", "v3-small"]
    return [
        *spec_file_cases(["table"], []),
        cases_for(["table", "v3-small"], "width", outside(0, 4), "--width must be in (0, 4]"),
        *spec_file_cases(["export"], ["--out=out/x"]),
        cases_for(["export", "v3-small", "--out=out/x"], "format", not_in(formats),
                  "unknown export format"),
        cases_for(["export", "v3-small", "--out=out/x"], "seed", HUGE_SEEDS,
                  "the seed must be an integer"),
        *spec_file_cases(["train"], []),
        cases_for(train, "data", bad_source(), None),
        cases_for(train, "resolution", st.integers(max_value=7) | st.integers(min_value=1025),
                  "resolution must be an integer between 8 and 1024"),
        cases_for(train, "epochs", TINY, "a recipe needs at least one epoch"),
        cases_for(train, "batch-size", TINY, "a recipe needs at least one epoch"),
        cases_for(train, "lr", st.floats(max_value=0).map(_fmt) |
                  st.sampled_from(["nan", "inf", "-inf"]), "lr must be > 0"),
        cases_for(train, "seed", NEGATIVE | BIG_INTS.filter(lambda v: v > 0),
                  "seed must be an integer"),
        cases_for(train, "device", bad_device(), "device"),
    ]


STRATEGIES = ("random", "evolution", "tpe", "nsga2", "rl", "ppo")


def search_cases() -> list[st.SearchStrategy]:
    search = ["search", "--runs-dir=runs"]
    return [
        cases_for(search, "budget", bad_budget(), "latency budget"),
        cases_for(search, "trials", TINY, "--trials must be at least 1"),
        cases_for(search, "strategy", not_in(STRATEGIES), "unknown strategy"),
        cases_for(search, "reward", not_in(("soft", "soft-small", "hard", "pareto")),
                  "unknown reward"),
        cases_for(search, "estimator", not_in(("supernet", "train", "zero-cost:params",
                                               "zero-cost:synflow", "zero-cost:naswot")).filter(
            lambda s: not (s.startswith("supernet:") and len(s) > 9)), "unknown estimator"),
        cases_for(search, "workers", NEGATIVE, "--workers must be at least 1"),
        st.tuples(st.sampled_from([s for s in STRATEGIES if s != "evolution"]),
                  st.integers(2, 500)).map(
            lambda c: Case([*search, f"--strategy={c[0]}", f"--population={c[1]}"],
                           "--population is an option of --strategy evolution")),
        cases_for(search, "population", st.integers(max_value=1), "--population must be at "
                                                                  "least 2"),
        cases_for(search, "executor", not_in(("local", "ray")), "--executor must be local or ray"),
        st.just(Case([*search, "--resume", "--overwrite"], "exclude each other")),
        cases_for(search, "data", bad_source(), None),
        cases_for(search, "resolution", st.integers(max_value=7) | st.integers(min_value=1025),
                  "resolution must be an integer between 8 and 1024"),
        cases_for(search, "epochs", TINY, "a recipe needs at least one epoch"),
        cases_for(search, "device", bad_device(), "device"),
        cases_for(search, "seed", NEGATIVE, "seed must be an integer"),
        cases_for(search, "seed-arch", SPEC_WORD, "is neither a zoo model nor a spec file"),
        cases_for(search, "seed-arch", st.sampled_from(["v1", "v2", "mobilenet_v1",
                                                        "shufflenet_v2_x1_0"]),
                  "is not an architecture of the"),
        GARBAGE_FILE.map(lambda b: Case([*search, "--estimator=supernet:sn.pt"],
                                        "not a supernet checkpoint", {"sn.pt": b})),
    ]


def netadapt_cases() -> list[st.SearchStrategy]:
    na = ["netadapt", "v3-small", "--target=5ms", "--runs-dir=runs"]
    return [
        option("target", bad_budget()).map(
            lambda t: Case(["netadapt", "v3-small", t], "latency budget")),
        cases_for(na, "delta", NOT_FLOAT.filter(lambda s: not _parses(parse_budget, s)),
                  "--delta"),
        cases_for(na, "delta", outside(0, 1).filter(lambda v: v != "1.0"), "--delta"),
        cases_for(na, "delta-decay", outside(0, 1), "--delta-decay must be in (0, 1]"),
        cases_for(na, "short-steps", TINY, "short-steps must be at least 1"),
        cases_for(na, "latency-rounds", TINY, "latency-rounds must be at least 1"),
        cases_for(na, "max-iterations", TINY, "max-iterations must be at least 1"),
        cases_for(na, "long-epochs", NEGATIVE, "--long-epochs must be >= 0"),
        cases_for(na, "init-epochs", TINY, "--long-epochs must be >= 0"),
        cases_for(na, "select", not_in(("ratio", "accuracy")), "--select must be"),
        cases_for(na, "latency", not_in(("paired", "table")), "--latency must be"),
        st.just(Case([*na, "--resume", "--overwrite"], "exclude each other")),
        st.just(Case([*na, "--resume"], "nothing to resume")),
        cases_for(na, "resolution", st.integers(max_value=7) | st.integers(min_value=1025),
                  "resolution must be an integer between 8 and 1024"),
        cases_for(na, "data", bad_source(), None),
        cases_for(na, "seed", NEGATIVE, "seed must be an integer"),
        cases_for(na, "input-size", st.integers(max_value=7) | st.integers(min_value=4097),
                  "input_size"),
        cases_for(na, "classes", st.integers(max_value=0) | st.integers(min_value=10**6 + 1),
                  "num_classes"),
        cases_for(na, "device", bad_device(), "device"),
        cases_for(na, "latency-backend", not_in(("torch", "torchscript", "onnxruntime", "cuda",
                                                 "cuda-graph")), "unknown latency backend"),
        cases_for(na, "latency-threads", TINY, "--threads and --batch must be at least 1"),
        SPEC_WORD.map(lambda s: Case(["netadapt", s, "--target=5ms"], "is neither a file")),
        st.sampled_from([n for n in zoo.names() if n.startswith("shufflenet")]).map(
            lambda s: Case(["netadapt", s, "--target=5ms"], "has shuffle blocks")),
    ]


def latency_cases() -> list[st.SearchStrategy]:
    backends = ("torch", "torchscript", "onnxruntime", "cuda", "cuda-graph")
    cases = []
    for verb in (["latency", "predict"], ["latency", "show"], ["latency"]):
        spec = [*verb, "v3-small", "--no-profile"]
        cases += [
            SPEC_WORD.map(lambda s, verb=verb: Case([*verb, s, "--no-profile"],
                                                    "is neither a file nor a zoo model")),
            cases_for(spec, "threads", TINY, "--threads and --batch must be at least 1"),
            cases_for(spec, "batch", TINY, "--threads and --batch must be at least 1"),
            cases_for(spec, "backend", not_in(backends), "unknown latency backend"),
            st.just(Case([*spec, "--table=absent.json"], "no latency table")),
            GARBAGE_FILE.map(lambda b, spec=spec: Case([*spec, "--table=t.json"], "t.json",
                                                       {"t.json": b})),
        ]
    profile = ["latency", "profile", "--table=t.json"]
    return [
        *cases,
        cases_for(profile, "threads", TINY, "--threads and --batch must be at least 1"),
        cases_for(profile, "batch", TINY, "--threads and --batch must be at least 1"),
        cases_for(profile, "backend", not_in(backends), "unknown latency backend"),
        cases_for(profile, "resolution", st.integers(max_value=7) | st.integers(min_value=4097),
                  "--resolution must be between 8 and 4096"),
        cases_for(["latency", "validate"], "archs", NEGATIVE, "--archs must be >= 0"),
        cases_for(["latency", "validate"], "rounds", TINY, "--rounds >= 1"),
        cases_for(["latency", "validate"], "threads", TINY, "--threads and --batch"),
        SPEC_WORD.map(lambda s: Case(["latency", "import-ofa", s, "--out=out/t.json"],
                                     "no such file")),
        GARBAGE_FILE.map(lambda b: Case(["latency", "import-ofa", "t.yaml", "--out=out/t.json"],
                                        "t.yaml", {"t.yaml": b})),
    ]


def supernet_cases() -> list[st.SearchStrategy]:
    train = ["supernet", "train", "--checkpoint=sn/s.pt"]
    return [
        st.just(Case(["supernet", "train", "--checkpoint=s.pt"], "exists: pass --resume",
                     {"s.pt": b"x"})),
        cases_for(train, "budget", TINY, "a supernet recipe needs at least one step"),
        cases_for(train, "batch-size", TINY, "a supernet recipe needs at least one step"),
        cases_for(train, "data", bad_source(), None),
        cases_for(train, "resolution", st.integers(max_value=7) | st.integers(min_value=1025),
                  "resolution must be an integer between 8 and 1024"),
        st.just(Case(["supernet", "eval", "v3-small", "--checkpoint=absent.pt"],
                     "no supernet checkpoint")),
        GARBAGE_FILE.map(lambda b: Case(["supernet", "eval", "v3-small", "--checkpoint=s.pt"],
                                        "s.pt: not a supernet checkpoint", {"s.pt": b})),
        cases_for(["space"], "resolution", st.integers(max_value=7) |
                  st.integers(min_value=4097), "input_size: must be between 8 and 4096"),
    ]


def cli_cases() -> st.SearchStrategy:
    return st.one_of(*usage_cases(), *reproduce_cases(), *table_export_train_cases(),
                     *search_cases(), *netadapt_cases(), *latency_cases(), *supernet_cases())


def test_every_bad_cli_option_is_one_line_exit_2_and_nothing_written(keep_sigterm):
    assert run_cases(assert_rejected, cli_cases()) >= CASES


# --------------------------------------------------------------------------- latency tables
def _base_table() -> LatencyTable:
    from latency_models.device import DeviceFingerprint

    fp = DeviceFingerprint(cpu="fuzz cpu", logical_cores=2, threads=1, torch="2.0",
                           backend="torch", dtype="float32", batch=1, resolution=32)
    table = LatencyTable(fingerprint=fp, settings={"statistic": "min"}, created="today",
                         calibration={"coefficients": {"scale": 1.1, "per_block_ms": 0.01,
                                                       "overhead_ms": 0.2}, "archs": 24})
    table.entries = {f"layer-{i}": Entry(0.1 * i, 0.2 * i, 5) for i in range(4)}
    return table


@st.composite
def table_files(draw) -> tuple[Blob, bool]:
    """(file content, whether it was written as a valid table would be checksummed)."""
    base = _base_table()
    with tempfile.TemporaryDirectory() as name:
        text = base.save(Path(name) / "t.json").read_text()
    how = draw(st.sampled_from(["truncate", "splice", "garbage", "field", "field", "field"]))
    if how == "truncate":
        return Blob(text[:draw(st.integers(0, len(text) - 1))].encode()), False
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        stop = draw(st.integers(at, min(len(text), at + 6)))
        return Blob((text[:at] + draw(st.text(max_size=6)) + text[stop:]).encode(
            "utf-8", "surrogatepass")), False
    if how == "garbage":
        return Blob(draw(st.binary(max_size=100) | st.just(b"[" * 100_000))), False
    body = json.loads(text)
    body.pop("checksum")
    containers = [body, body["fingerprint"], body["entries"], body["calibration"],
                  body["calibration"]["coefficients"], *body["entries"].values()]
    target = draw(st.sampled_from(containers))
    key = draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
    if draw(st.integers(0, 4)) == 0:
        target.pop(key, None)
    else:
        target[key] = draw(JSON_VALUES)
    body["checksum"] = LatencyTable._checksum(body)  # written wrong, but as written
    return Blob(json.dumps(body).encode()), True


def _assert_usable(table: LatencyTable) -> None:
    assert all(isinstance(k, str) for k in table.entries)
    for entry in table.entries.values():
        assert all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   and v >= 0 for v in (entry.min_ms, entry.median_ms))
    LUTPredictor(table)
    table.fingerprint.describe()
    with tempfile.TemporaryDirectory() as name:
        again = LatencyTable.load(table.save(Path(name) / "again.json"))
    assert again.checksum() == table.checksum()


def test_latency_table_files_load_or_are_one_table_error():
    base = _base_table()

    def check(case: tuple[Blob, bool]) -> None:
        content = case[0].data
        with fresh_directory() as root:
            (root / "t.json").write_bytes(content)
            try:
                table = LatencyTable.load("t.json")
            except Exception as exc:  # noqa: BLE001 - the type is what is checked
                assert_one_line(exc, TableError)
                line = assert_rejected(Case(["latency", "predict", "v3-small", "--table=t.json",
                                             "--no-profile"], None, {"t.json": content}))
                assert line == printed(str(exc)) or "measured elsewhere" in line
            else:
                _assert_usable(table)
                if table.entries == base.entries and table.fingerprint == base.fingerprint:
                    return
                # a loaded table measured elsewhere is refused by the CLI, in one line
                assert_rejected(Case(["latency", "predict", "v3-small", "--table=t.json",
                                      "--no-profile"], None, {"t.json": content}))

    assert run_cases(check, table_files()) >= CASES


OFA_KINDS = ["Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits", "Pooling", ""]


@st.composite
def ofa_keys(draw) -> str:
    kind = draw(st.sampled_from(OFA_KINDS))
    shape = st.lists(st.integers(0, 300), min_size=1, max_size=4).map(
        lambda d: "x".join(map(str, d))) | st.sampled_from(["", "x", "7x7x", "axbxc"])
    fields = {"input": draw(shape), "output": draw(shape)}
    if kind == "expanded_conv" or draw(st.integers(0, 5)) == 0:
        fields.update({
            "expand": draw(st.sampled_from(["1", "3", "6", "96", "0.5", "inf", "nan", "-2",
                                            "x", ""])),
            "kernel": draw(st.sampled_from(["3", "5", "7", "4", "", "k"])),
            "stride": draw(st.sampled_from(["1", "2", "0", "", "s"])),
            "idskip": draw(st.sampled_from(["0", "1"])),
            "se": draw(st.sampled_from(["0", "1", "2"])),
            "hs": draw(st.sampled_from(["0", "1", ""]))})
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        fields.pop(name, None)
    return "-".join([kind, *(f"{k}:{v}" for k, v in fields.items())])


@st.composite
def ofa_files(draw) -> Blob:
    if draw(st.integers(0, 5)) == 0:
        return Blob(draw(st.binary(max_size=80) | st.text(max_size=80).map(str.encode)))
    mean = st.one_of(st.floats(0, 10), st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(), JSON_SCALARS)
    raw = draw(st.dictionaries(ofa_keys(), st.fixed_dictionaries({"mean": mean}) | JSON_VALUES,
                               max_size=6))
    return Blob(yaml.safe_dump(raw).encode())


def test_once_for_all_tables_import_or_are_one_table_error():
    def check(blob: Blob) -> None:
        content = blob.data
        with fresh_directory() as root:
            (root / "t.yaml").write_bytes(content)
            try:
                table = import_ofa_table("t.yaml")
            except Exception as exc:  # noqa: BLE001 - the type is what is checked
                assert_one_line(exc, TableError)
                assert_rejected(Case(["latency", "import-ofa", "t.yaml", "--out=out/t.json"],
                                     "t.yaml", {"t.yaml": content}))
            else:
                _assert_usable(table)
                code, _, err = run_cli(["latency", "import-ofa", "t.yaml", "--out=out/t.json"])
                assert code == 0, err
                assert LatencyTable.load(root / "out" / "t.json").entries == table.entries

    assert run_cases(check, ofa_files()) >= CASES


# --------------------------------------------------------------------------- data directories
def _png_header(side: int) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I",
                                                                       zlib.crc32(tag + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0,
                                                             0, 0)) + chunk(b"IEND", b"")


def _image_bytes(kind: str, suffix: str, size: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".gif": "GIF", ".bmp": "BMP"}[suffix]
    mode = {"PNG": kind, "JPEG": "RGB", "GIF": "P", "BMP": "RGB"}[fmt]
    image = Image.new("RGB", (size, size + 1), (size * 20, 7, 99)).convert(mode)
    image.save(buffer, fmt)
    return buffer.getvalue()


FILE_KINDS = ["image", "image", "image", "garbage", "empty", "truncated", "header", "dir"]


@st.composite
def image_folders(draw) -> tuple[dict[str, Blob | None], bool | None]:
    """(files to create, None meaning a directory; whether loading must succeed, or None when
    the outcome depends on the decoder)."""
    files: dict[str, Blob | None] = {}
    split = draw(st.integers(0, 3)) == 0
    classes = draw(st.lists(st.sampled_from(["cat", "dog", "eel", ".hidden", "ant"]),
                            max_size=4, unique=True))
    expected: bool | None = not split and len([c for c in classes if not c.startswith(".")]) >= 2
    for cls in classes:
        prefix = draw(st.sampled_from(["train/", "val/"])) if split else ""
        files[prefix + cls] = None
        count = 0
        for i in range(draw(st.integers(0, 3))):
            suffix = draw(st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".PNG", ".txt", ""]))
            kind = draw(st.sampled_from(FILE_KINDS))
            name = f"{prefix}{cls}/{i}{suffix}"
            readable = suffix.lower() in (".png", ".jpg", ".gif", ".bmp")
            if kind == "dir":
                files[name] = None
            elif kind == "image" and readable:
                files[name] = Blob(_image_bytes(
                    draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "LA", "I;16"])),
                    suffix.lower(), draw(st.integers(1, 9))))
            elif kind == "image":
                files[name] = Blob(b"text")
            elif kind == "garbage":
                files[name] = Blob(draw(st.binary(max_size=40).filter(
                    lambda b: not b.startswith((b"\x89PNG", b"GIF", b"BM", b"\xff\xd8")))))
            elif kind == "empty":
                files[name] = Blob(b"")
            elif kind == "truncated":
                whole = _image_bytes("RGB", ".png", 4)
                files[name] = Blob(whole[:draw(st.integers(0, len(whole) - 1))])
            else:
                files[name] = Blob(_png_header(draw(st.sampled_from([0, 3, 20000, 100000]))))
            if not readable:
                continue
            count += 1
            if kind in ("garbage", "empty", "dir") and not cls.startswith("."):
                expected = False if expected is not None else None
            elif kind in ("truncated", "header") and expected is not False:
                expected = None
        if count < 2 and not cls.startswith(".") and expected is not None:
            expected = False
    if split and draw(st.booleans()):
        files["train"], files["val"] = None, None
    if split:
        expected = None
    return files, expected


def _assert_image_data(data: ImageData, resolution: int, every_class: bool) -> None:
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, resolution, resolution)
        assert len(x) == len(y) >= 1
        assert 0 <= int(y.min()) <= int(y.max()) < data.num_classes
    if every_class:  # an image folder's classes are its folders, each with training images
        assert len(set(data.y_train.tolist())) == data.num_classes


def _check_data(source: str, expected: bool | None, every_class: bool = True) -> None:
    try:
        data = load_data(source, 8)
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        message = assert_one_line(exc, DataError)
        path = source.partition(":")[2]
        assert (path and str(Path(path)) in message) or "not understood" in message, message
        assert expected is not True, message
        line = assert_rejected(Case(["train", "v3-small", f"--data={source}", "--epochs=0"]))
        assert line == printed(message)
    else:
        assert expected is not False, source
        _assert_image_data(data, 8, every_class)


def test_image_folders_load_or_are_one_data_error():
    def check(case: tuple[dict[str, Blob | None], bool | None]) -> None:
        files, expected = case
        with tempfile.TemporaryDirectory() as name:
            root = Path(name) / "images"
            root.mkdir()
            write_files(root, files)
            _check_data(f"imagefolder:{root}", expected, every_class=True)

    assert run_cases(check, image_folders()) >= CASES


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@st.composite
def cifar_file(draw) -> tuple[Blob, int | None]:
    """(content, images in it, or None if it must be refused)."""
    count = draw(st.integers(0, 3))
    good = {b"data": np.full((count, 3072), draw(st.integers(0, 255)), np.uint8),
            b"labels": draw(st.lists(st.integers(0, 9), min_size=count, max_size=count))}
    how = draw(st.sampled_from(["good", "good", "good", "garbage", "truncated", "object",
                                "data", "labels", "empty"]))
    if how == "good":
        return Blob(pickle.dumps(good)), count
    if how == "garbage":
        return Blob(draw(st.binary(max_size=60))), None
    if how == "truncated":
        whole = pickle.dumps(good)
        return Blob(whole[:draw(st.integers(0, len(whole) - 1))]), None
    if how == "empty":
        return Blob(b""), None
    if how == "object":
        return Blob(pickle.dumps(draw(JSON_VALUES))), None
    bad = dict(good)
    if how == "data":
        bad[b"data"] = draw(st.sampled_from([
            np.full((max(count, 1), 3072), 256), np.full((max(count, 1), 3072), -1),
            np.zeros((max(count, 1), 3072), np.float32) + 0.5, np.zeros((max(count, 1), 3071)),
            np.zeros((max(count, 1), 3, 32, 32), np.uint8), "pixels", None,
            [[0] * 3072] * max(count, 1)]))
        if isinstance(bad[b"data"], list) and count:
            return Blob(pickle.dumps({**bad, b"labels": good[b"labels"]})), count
    else:
        bad[b"labels"] = draw(st.sampled_from([
            [10] * max(count, 1), [-1] * max(count, 1), [0] * (count + 1), [[0]] * max(count, 1),
            [0.5] * max(count, 1), "labels", None]))
    return Blob(pickle.dumps(bad)), None


@st.composite
def cifar_folders(draw) -> tuple[dict[str, Blob | None], bool]:
    nested = draw(st.booleans())
    prefix = "cifar-10-batches-py/" if nested else ""
    files: dict[str, Blob | None] = {"cifar-10-batches-py": None} if nested else {}
    present = draw(st.lists(st.sampled_from(CIFAR_FILES), unique=True, min_size=4, max_size=6))
    counts: dict[str, int | None] = {}
    for name in present:
        files[prefix + name], counts[name] = draw(cifar_file())
    ok = len(present) == 6 and all(c is not None for c in counts.values()) and \
        sum(counts[n] for n in CIFAR_FILES[:5]) > 0 and counts["test_batch"] > 0
    return files, ok


def test_cifar_folders_load_or_are_one_data_error():
    def check(case: tuple[dict[str, Blob | None], bool]) -> None:
        files, expected = case
        with tempfile.TemporaryDirectory() as name:
            root = Path(name) / "cifar"
            root.mkdir()
            write_files(root, files)
            _check_data(f"cifar10:{root}", expected, every_class=False)

    assert run_cases(check, cifar_folders()) >= CASES


def test_data_source_strings_are_one_data_error():
    def check(source: str) -> None:
        with fresh_directory():
            _check_data(source, False)

    # One line per message: a path holding a line break would be printed with it (the CLI
    # escapes it; see the CLI test).
    sources = bad_source().filter(lambda s: len(f"{s}.".splitlines()) == 1 and (
        ":" not in s or not Path(s.partition(":")[2]).exists()))
    assert run_cases(check, sources) >= CASES


# --------------------------------------------------------------------------- checkpoints
TINY_SPEC = ArchSpec(name="tiny", input_size=8, num_classes=3,
                     stem=StemSpec(out_ch=4, kernel=3, stride=2),
                     blocks=(BlockSpec(kind="bneck", kernel=3, in_ch=4, exp_ch=8, out_ch=4,
                                       se=True),
                             BlockSpec(kind="dwsep", kernel=5, in_ch=4, out_ch=6, stride=2)),
                     head=HeadSpec(conv_ch=8, hidden_ch=12))


def _checkpoint_bytes(payload: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


TINY_MODEL = nas.build_model(TINY_SPEC, seed=0)
TINY_STATE = TINY_MODEL.state_dict()
TINY_CHECKPOINT = _checkpoint_bytes({"format": "nas.checkpoint", "version": 1,
                                     "spec": TINY_SPEC.to_json(), "state_dict": TINY_STATE})


@st.composite
def state_dicts(draw) -> Any:
    how = draw(st.sampled_from(["same", "drop", "extra", "shape", "dtype", "value", "json",
                                "empty"]))
    state = dict(TINY_STATE)
    key = draw(st.sampled_from(sorted(state)))
    if how == "drop":
        del state[key]
    elif how == "extra":
        state[draw(st.text(max_size=8))] = torch.zeros(draw(st.integers(0, 3)))
    elif how == "shape":
        state[key] = torch.zeros(draw(st.lists(st.integers(0, 3), max_size=3)))
    elif how == "dtype":
        state[key] = state[key].to(draw(st.sampled_from([torch.int64, torch.bool,
                                                         torch.float16])))
    elif how == "value":
        state[key] = draw(JSON_SCALARS)
    elif how == "json":
        return draw(JSON_VALUES)
    elif how == "empty":
        return {}
    return state


@st.composite
def checkpoint_files(draw) -> tuple[Blob, str]:
    """(file content, how it was made)."""
    how = draw(st.sampled_from(["truncate", "flip", "payload", "payload", "payload", "garbage",
                                "spec-json", "spec-text"]))
    if how == "truncate":
        return Blob(TINY_CHECKPOINT[:draw(st.integers(0, len(TINY_CHECKPOINT) - 1))]), how
    if how == "flip":
        data = bytearray(TINY_CHECKPOINT)
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return Blob(bytes(data)), how
    if how == "garbage":
        return Blob(draw(st.sampled_from([b"", b"PK", b"PK\x03\x04"])) +
                    draw(st.binary(max_size=100))), how
    if how == "spec-json":
        text = draw(mangled_json())
        return Blob(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")), how
    if how == "spec-text":
        return Blob(draw(mangled_text()).encode("utf-8", "surrogatepass")), how
    payload = {
        "format": draw(st.just("nas.checkpoint") | JSON_SCALARS),
        "version": draw(st.just(1) | JSON_SCALARS),
        "spec": draw(st.sampled_from([TINY_SPEC.to_json()]) |
                     invalid_spec_dicts().map(lambda c: json.dumps(c[0])) | JSON_VALUES),
        "state_dict": draw(state_dicts()),
    }
    for name in draw(st.lists(st.sampled_from(sorted(payload)), max_size=1)):
        del payload[name]
    return Blob(_checkpoint_bytes(payload)), how


def test_checkpoint_files_load_or_are_one_spec_error():
    def check(case: tuple[Blob, str]) -> None:
        content = case[0].data
        with fresh_directory() as root:
            Path("m.pt").write_bytes(content)
            try:
                spec, state = load_checkpoint("m.pt")
                if state is not None:
                    assert all(isinstance(k, str) and isinstance(v, torch.Tensor)
                               for k, v in state.items())
                    build_with_weights(spec, state, source="m.pt")
            except Exception as exc:  # noqa: BLE001 - the type is what is checked
                assert_one_line(exc, SpecError)
                line = assert_rejected(Case(["export", "m.pt", "--format=pytorch",
                                             "--out=out/m.pt"], None, {"m.pt": content}))
                assert line == printed(str(exc))
                return
            _assert_round_trips(spec)
            if state is None:  # a spec file: any size, so no model is built from it
                code, _, err = run_cli(["export", "m.pt", "--format=json", "--out=o.json"])
                assert code == 0, err
                assert ArchSpec.from_json((root / "o.json").read_text()) == spec
                return
            code, _, err = run_cli(["export", "m.pt", "--format=pytorch", "--out=o.pt"])
            assert code == 0, err
            again = nas.load(root / "o.pt")
            assert nas.spec_of(again) == spec
            weights = again.state_dict()
            for key, value in state.items():
                torch.testing.assert_close(weights[key], value.to(weights[key].dtype), rtol=0,
                                           atol=0, equal_nan=True)

    assert run_cases(check, checkpoint_files()) >= CASES
