"""The spec: validation, JSON and text round trips, scaling (pure Python, no torch needed)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.spec import (
    ArchSpec,
    BlockSpec,
    HeadSpec,
    SpecError,
    StemSpec,
    make_divisible,
)
from search_spaces import zoo

from .conftest import arch_specs

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def test_spec_module_does_not_import_torch():
    code = "import nas.spec, search_spaces.zoo, sys; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_make_divisible_matches_mobilenet_rounding():
    assert make_divisible(16 * 0.75) == 16
    assert make_divisible(960 * 0.75) == 720
    assert make_divisible(18) == 24  # 16 would be more than 10% below 18
    assert make_divisible(120 // 4) == 32
    assert make_divisible(184 // 4) == 48


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"kernel": 4}, "kernel", "one of 3, 5, 7"),
        ({"stride": 3}, "stride", "one of 1, 2"),
        ({"act": "swish"}, "act", "one of RE, HS, RE6"),
        ({"kind": "conv"}, "kind", "one of bneck, dwsep, shuffle"),
        ({"exp_ch": None}, "exp_ch", "expansion width"),
        ({"exp_ch": 0}, "exp_ch", "between 1 and"),
        ({"out_ch": -3}, "out_ch", "between 1 and"),
        ({"in_ch": 2.5}, "in_ch", "integer"),
        ({"se": "yes"}, "se", "true or false"),
        ({"dilation": 2, "stride": 2}, "dilation", "stride 1"),
        ({"kernel": True}, "kernel", "one of"),
    ],
)
def test_block_validation_names_the_field(changes, field, words):
    good = dict(kind="bneck", kernel=3, in_ch=16, exp_ch=64, out_ch=24, se=False, act="RE",
                stride=2)
    with pytest.raises(SpecError) as info:
        BlockSpec(**{**good, **changes})
    assert info.value.field == field
    assert words in str(info.value)


def test_block_kind_rules():
    with pytest.raises(SpecError, match="exp_ch: a dwsep block has no expansion"):
        BlockSpec(kind="dwsep", kernel=3, in_ch=8, exp_ch=16, out_ch=8)
    with pytest.raises(SpecError, match="se: a shuffle block has no squeeze-excite"):
        BlockSpec(kind="shuffle", kernel=3, in_ch=8, out_ch=8, se=True)
    with pytest.raises(SpecError, match="out_ch: a shuffle unit needs an even out_ch"):
        BlockSpec(kind="shuffle", kernel=3, in_ch=8, out_ch=9, stride=2)
    with pytest.raises(SpecError, match="stride-1 shuffle unit keeps its width"):
        BlockSpec(kind="shuffle", kernel=3, in_ch=8, out_ch=16, stride=1)


def test_arch_validation_names_block_index_and_field():
    spec = zoo.get("mobilenet_v3_large")
    blocks = list(spec.blocks)
    blocks[4] = dataclasses.replace(blocks[4], in_ch=24)
    with pytest.raises(SpecError) as info:
        dataclasses.replace(spec, blocks=tuple(blocks))
    assert info.value.field == "block 4.in_ch"
    assert "does not match the output of block 3 (40)" in str(info.value)
    with pytest.raises(SpecError, match="block 0.in_ch: 8 does not match the output of the stem"):
        dataclasses.replace(spec, blocks=(dataclasses.replace(blocks[0], in_ch=8),))
    with pytest.raises(SpecError, match="blocks: a network needs at least one block"):
        dataclasses.replace(spec, blocks=())
    for field, value in [("name", "has space"), ("input_size", 4), ("num_classes", 0),
                         ("width_mult", 0.0), ("width_mult", float("nan")), ("bn_eps", 0),
                         ("se_style", "timm")]:
        with pytest.raises(SpecError) as info:
            dataclasses.replace(spec, **{field: value})
        assert info.value.field == field


def test_specs_are_frozen_and_hashable():
    spec = zoo.get("mobilenet_v3_small")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    assert hash(spec) == hash(zoo.get("mobilenet_v3_small"))
    assert len({spec, zoo.get("mobilenet_v3_small"), zoo.get("mobilenet_v3_large")}) == 2


def test_list_of_blocks_is_stored_as_tuple():
    spec = zoo.get("mobilenet_v3_small")
    again = ArchSpec(name="x", stem=spec.stem, blocks=list(spec.blocks), head=spec.head)
    assert isinstance(again.blocks, tuple)


# --------------------------------------------------------------------------- JSON
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_json_and_text_round_trip(name):
    spec = zoo.get(name)
    assert ArchSpec.from_json(spec.to_json()) == spec
    text = spec.to_text()
    assert ArchSpec.from_text(text) == spec
    assert ArchSpec.from_text(text).to_text() == text


def test_json_has_one_block_per_line():
    text = zoo.get("mobilenet_v3_large").to_json()
    assert json.loads(text)["blocks"][0]["exp_ch"] == 16
    block_lines = [line for line in text.splitlines() if line.strip().startswith('{"kind"')]
    assert len(block_lines) == 15


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d["blocks"][2].update(kernel=9), "block 2.kernel: must be one of 3, 5, 7"),
        (lambda d: d["blocks"][1].update(kind="mystery"), "block 1.kind: must be one of"),
        (lambda d: d["blocks"][3].update(colour="red"), "block 3: unknown field 'colour'"),
        (lambda d: d["blocks"][3].pop("out_ch"), "block 3: missing field 'out_ch'"),
        (lambda d: d["blocks"][5].update(in_ch=41), "block 5.in_ch: 41 does not match"),
        (lambda d: d["stem"].update(out_ch="16"), "stem.out_ch: must be an integer"),
        (lambda d: d["head"].update(dropout=1.5), "head.dropout: must be in"),
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d.update(version=99), "version: this version reads spec version 1"),
        (lambda d: d.update(blocks={}), "blocks: must be a list"),
        (lambda d: d.pop("stem"), "stem: must be an object"),
    ],
)
def test_from_json_errors_are_precise(mutate, words):
    data = json.loads(zoo.get("mobilenet_v3_large").to_json())
    mutate(data)
    with pytest.raises(SpecError) as info:
        ArchSpec.from_json(json.dumps(data))
    assert words in str(info.value)


def test_from_json_rejects_malformed_text():
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json('{"name": ')
    with pytest.raises(SpecError, match="must be a JSON object"):
        ArchSpec.from_json("[1, 2]")


def _v3_small_json(**changes) -> str:
    data = json.loads(zoo.get("mobilenet_v3_small").to_json())
    return json.dumps({**data, **changes})


@pytest.mark.parametrize(
    ("text", "words"),
    [  # found by tests/test_fuzz.py: each once escaped as OverflowError, ValueError, TypeError
        (_v3_small_json(width_mult=9 ** 400), "width_mult: must be in (0.0, 4.0], got 497"),
        ("[" * 100_000, "not valid JSON (nested too deeply)"),
        ('{"input_size": ' + "1" * 5000 + "}", "not valid JSON (Exceeds the limit"),
        (b"\xff\xfe{", "not valid JSON"),
        (5, "JSON text must be str or bytes, got int"),
    ],
)
def test_from_json_turns_every_failure_into_a_spec_error(text, words):
    with pytest.raises(SpecError) as info:
        ArchSpec.from_json(text)
    assert words in str(info.value)
    assert len(str(info.value)) < 300


# --------------------------------------------------------------------------- text form
def test_text_form_reads_like_timm():
    text = zoo.get("mobilenet_v3_small").to_text()
    assert text.splitlines()[1] == "stem conv_k3_s2_c16_nhs"
    assert "stage ir_k5_s2_x288_c96_se_nhs ir_r2_k5_s1_x576_c96_se_nhs" in text
    assert text.splitlines()[-1] == "head conv_c576_nhs fc_c1024_nhs drop0.2"
    # One line per stage: a new stage starts at every stride-2 block.
    assert len([line for line in text.splitlines() if line.startswith("stage")]) == 4


def test_text_form_accepts_comments_and_any_part_order():
    text = """
    # MobileNetV2's first two stages, hand-written
    arch tiny input=32 classes=10
    stem conv_k3_s2_c32_nre6
    stage ir_x32_k3_s1_c16_nre6     # expansion 1
    stage ir_r2_k3_s2_x96_c24_nre6
    head conv_c64_nre6 drop0.2
    """
    spec = ArchSpec.from_text(text)
    assert [b.stride for b in spec.blocks] == [1, 2, 1]
    assert [b.in_ch for b in spec.blocks] == [32, 16, 24]
    assert spec.width_mult == 1.0 and spec.num_classes == 10
    assert ArchSpec.from_text(spec.to_text()) == spec


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("stem conv_k3_s2_c16_nhs", "line 1: the first line must be 'arch"),
        ("arch a colour=red", "unknown header entry 'colour=red'"),
        ("arch a input=224\nstem conv_k3_s2_c16_nhs\nstage ir_k3_s1_x16_c16_nre_zz\n"
         "head drop0.2", "line 3: token 'ir_k3_s1_x16_c16_nre_zz': unknown part 'zz'"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage qq_k3_s1_c16_nre\nhead drop0.2",
         "unknown block kind 'qq'"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k3_k5_s1_x16_c16_nre\nhead drop0.2",
         "'k' given twice"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k3_s1_c16_nre\nhead drop0.2",
         "missing 'x<n>'"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k4_s1_x16_c16_nre\nhead drop0.2",
         "line 3, block 0.kernel: must be one of 3, 5, 7"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k3_s1_x16_c16_nre\n", "no 'head' line"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k3_s1_x16_c16_nre\nhead fc_c10_nhs",
         "needs a drop<p> token"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k3_s1_x16_c16_nre\nhead drop0.2\nhead drop0.1",
         "one 'head' line"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage ir_k3_s1_x16_c16_k03_nre\nhead drop0.2",
         "unknown part 'k03'"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nstage sh_k3_s1_c15_nre\nhead drop0.2",
         "even out_ch"),
        ("arch a\nstem conv_k3_s2_c16_nhs\nblock ir_k3_s1_x16_c16_nre\nhead drop0.2",
         "unknown line keyword 'block'"),
        # numbers beyond Python's 4,300-digit conversion limit (found by tests/test_fuzz.py)
        ("arch a input=" + "1" * 5000, "line 1: header entry 'input=111"),
        ("arch a\nstem conv_k3_s2_c" + "1" * 5000 + "_nhs", "is too large"),
    ],
)
def test_text_parser_is_strict(text, words):
    with pytest.raises(SpecError) as info:
        ArchSpec.from_text(text)
    assert words in str(info.value)


# --------------------------------------------------------------------------- properties
@SETTINGS
@given(arch_specs())
def test_random_specs_round_trip(spec):
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.from_text(spec.to_text()) == spec
    assert ArchSpec.from_text(spec.to_text()).to_text() == spec.to_text()
    scaled = spec.scaled()
    assert scaled.width_mult == 1.0
    assert len(scaled.table_rows()) >= len(spec.blocks) + 3


_BAD_BLOCK_VALUES = {
    "kernel": [0, 2, 4, 9, "3", None, 3.0],
    "stride": [0, 3, -1, "2"],
    "act": ["relu", "", None, 1],
    "out_ch": [0, -1, 10**6, 1.5, None],
    "in_ch": [0, -8, "16"],
    "dilation": [0, 3, 8],
    "kind": ["conv", "", None, "BNECK"],
}


@SETTINGS
@given(arch_specs(), st.data())
def test_random_invalid_blocks_name_index_and_field(spec, data):
    index = data.draw(st.integers(0, len(spec.blocks) - 1))
    field = data.draw(st.sampled_from(sorted(_BAD_BLOCK_VALUES)))
    value = data.draw(st.sampled_from(_BAD_BLOCK_VALUES[field]))
    raw = spec.to_dict()
    raw["blocks"][index][field] = value
    with pytest.raises(SpecError) as info:
        ArchSpec.from_dict(raw)
    message = str(info.value)
    assert message.startswith(f"block {index}")
    # The error names the field it is about (or, for in_ch, the broken link).
    assert field in message or "in_ch" in message


def test_dataclass_fields_are_the_json_fields():
    spec = zoo.get("mnasnet_a1")
    raw = spec.to_dict()
    assert set(raw["stem"]) == {f.name for f in dataclasses.fields(StemSpec)}
    assert set(raw["head"]) == {f.name for f in dataclasses.fields(HeadSpec)}
    block_fields = [f.name for f in dataclasses.fields(BlockSpec) if f.init]
    assert list(raw["blocks"][0]) == block_fields
    # The derived tuple the latency predictors key on: every JSON field, in order, and nothing
    # else; it stays out of equality, the repr and the JSON.
    for block in spec.blocks:
        assert block.values == tuple(getattr(block, name) for name in block_fields)
    block = spec.blocks[1]
    changed = dataclasses.replace(block, kernel=7 if block.kernel != 7 else 5)
    assert changed.values[1] == changed.kernel != block.kernel
    assert "values" not in repr(block)
    assert BlockSpec(**raw["blocks"][1]) == block
