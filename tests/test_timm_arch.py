"""`nas export --format timm`: timm's arch_def strings (checked here without timm; the build in
timm itself, with equal parameter counts, is bench/torchvision_equivalence.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nas.errors import ExportError
from nas.spec import BlockSpec, make_divisible
from nas.timm_arch import arch_def, exp_ratio, timm_source
from search_spaces import zoo
from search_spaces.mobilenetv3 import (
    MNASNET_HEAD,
    V3_LARGE_HEAD,
    V3_SMALL_HEAD,
    default_space,
)

from .test_cli import run

# timm's own arch_def of mobilenetv3_large_100 (timm/models/mobilenetv3.py, _gen_mobilenet_v3).
TIMM_V3_LARGE = [
    ["ds_r1_k3_s1_e1_c16_nre"],
    ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
    ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
    ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
    ["ir_r2_k3_s1_e6_c112_se0.25"],
    ["ir_r3_k5_s2_e6_c160_se0.25"],
    ["cn_r1_k1_s1_c960"],
]
_ACTS = {"re": "RE", "r6": "RE6", "hs": "HS"}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def decode(stages: list[list[str]], in_ch: int, default_act: str) -> list[BlockSpec]:
    """timm's decoding rules, restated for the test: repeats, the first block's stride,
    ``mid = make_divisible(in × ratio)`` for ``ir``, no expansion for ``ds``."""
    blocks = []
    for string in (s for stage in stages for s in stage if not s.startswith("cn")):
        kind, *options = string.split("_")
        values = {"se": None, "n": None}
        for option in options:
            if option == "noskip":
                continue
            key = "se" if option.startswith("se") else option[0]
            values[key] = option[len(key):]
        for repeat in range(int(values["r"])):
            out_ch = int(values["c"])
            exp_ch = make_divisible(in_ch * float(values["e"])) if kind == "ir" else \
                (in_ch if kind == "ds" else None)
            blocks.append(BlockSpec(
                kind="dwsep" if kind == "dsa" else "bneck", kernel=int(values["k"]),
                in_ch=in_ch, exp_ch=exp_ch, out_ch=out_ch, se=values["se"] == "0.25",
                act=_ACTS[values["n"]] if values["n"] else default_act,
                stride=int(values["s"]) if repeat == 0 else 1))
            in_ch = out_ch
    return blocks


def test_v3_large_is_timms_own_arch_def():
    assert arch_def(zoo.get("mobilenet_v3_large")) == TIMM_V3_LARGE


def test_v3_small_differs_from_timm_only_in_a_shorter_ratio_of_the_same_width():
    stages = arch_def(zoo.get("mobilenet_v3_small"))
    assert stages[0] == ["ds_r1_k3_s2_e1_c16_se0.25_nre"]
    assert stages[1] == ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.7_c24_nre"]  # timm: e3.67
    assert make_divisible(24 * 3.7) == make_divisible(24 * 3.67) == 88
    assert stages[-1] == ["cn_r1_k1_s1_c576"]


@pytest.mark.parametrize(("in_ch", "exp_ch", "ratio"),
                         [(16, 64, "4"), (80, 184, "2.3"), (24, 88, "3.7"), (16, 72, "4.5"),
                          (40, 240, "6")])
def test_expansion_is_the_shortest_ratio_timm_turns_back_into_the_width(in_ch, exp_ch, ratio):
    assert exp_ratio(in_ch, exp_ch) == ratio
    assert make_divisible(in_ch * float(ratio)) == exp_ch


def test_an_expansion_timm_cannot_rebuild_is_refused():
    with pytest.raises(ExportError, match="from 24 to 100 channels"):
        exp_ratio(24, 100)  # not a multiple of 8: make_divisible never gives it


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_the_strings_decode_to_our_blocks(name):
    spec = zoo.get(name)
    assert decode(arch_def(spec), spec.stem.out_ch, spec.head.hidden_act) == list(spec.blocks)


@pytest.mark.parametrize("seed", range(6))
def test_a_searched_network_decodes_to_its_blocks(seed):
    space = default_space()
    spec = space.sample(np.random.default_rng(seed))
    if spec.head not in (V3_LARGE_HEAD, V3_SMALL_HEAD):  # MnasNet's: timm's MobileNetV3 lacks it
        spec = dataclasses.replace(spec, head=(V3_LARGE_HEAD, V3_SMALL_HEAD)[seed % 2])
    assert space.contains(spec)
    stages = arch_def(spec)
    assert decode(stages, spec.stem.out_ch, spec.head.hidden_act) == list(spec.blocks)
    assert stages[-1][0].startswith(f"cn_r1_k1_s1_c{spec.head.conv_ch}")


def test_a_head_without_its_hidden_layer_is_refused():
    spec = dataclasses.replace(zoo.get("mobilenet_v3_large"), head=MNASNET_HEAD)
    with pytest.raises(ExportError, match="^the head: .* lacks the hidden layer"):
        arch_def(spec)


def test_a_shufflenet_unit_is_refused_naming_the_block():
    v3 = zoo.get("mobilenet_v3_small")
    unit = BlockSpec(kind="shuffle", kernel=3, in_ch=96, out_ch=96)
    spec = dataclasses.replace(v3, blocks=(*v3.blocks, unit))
    with pytest.raises(ExportError, match=r"^block 11 \(shuffle 96->96, stride 1\): timm's "
                                          r"arch_def grammar has no ShuffleNet unit"):
        arch_def(spec)
    with pytest.raises(ExportError, match=r"^block 0 \(shuffle"):
        arch_def(zoo.get("shufflenet_v2_x1_0"))


def test_a_width_multiplier_exports_the_scaled_network():
    stages = arch_def(dataclasses.replace(zoo.get("mobilenet_v3_large"), width_mult=0.75))
    assert stages[1] == ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"]
    assert stages[-1] == ["cn_r1_k1_s1_c720"]


def test_the_written_file_holds_the_arch_def_and_needs_timm_only_to_build(capsys, in_tmp):
    code, out, err = run(["export", "mobilenet_v3_large", "-f", "timm", "--out", "v3.py"],
                         capsys)
    assert code == 0, err
    namespace: dict = {}
    exec(compile((in_tmp / "v3.py").read_text(), "v3.py", "exec"), namespace)  # no timm here
    assert namespace["ARCH_DEF"] == TIMM_V3_LARGE
    assert callable(namespace["create_model"])
    assert "num_features=1280" in timm_source(zoo.get("mobilenet_v3_large"))


def test_export_of_a_network_timm_cannot_say_is_one_line_exit_2(capsys, in_tmp):
    code, out, err = run(["export", "shufflenet_v2_x1_0", "-f", "timm", "--out", "s.py"], capsys)
    assert code == 2 and "block 0 (shuffle" in err and len(err.strip().splitlines()) == 1
    assert not (in_tmp / "s.py").exists()
