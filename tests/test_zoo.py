"""The zoo and the builder against the reference figures (torchvision, timm, the paper)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from torch import nn

import nas
from nas.build import build_model, count_params, layer_plan
from nas.flops import count_madds
from search_spaces import zoo

from .conftest import arch_specs, load_data

# Exact parameter counts (1000 classes): torchvision for V2, V3 and ShuffleNetV2; timm for V1,
# MnasNet-A1 and the paper's 0.75 V3 models (which torchvision's 0.75 variants do not match).
PARAMS = {
    ("mobilenet_v3_large", 1.0): 5_483_032,
    ("mobilenet_v3_small", 1.0): 2_542_856,
    ("mobilenet_v3_large", 0.75): 3_993_528,
    ("mobilenet_v3_small", 0.75): 2_041_872,
    ("mobilenet_v2", 1.0): 3_504_872,
    ("shufflenet_v2_x0_5", 1.0): 1_366_792,
    ("shufflenet_v2_x1_0", 1.0): 2_278_604,
    ("shufflenet_v2_x1_5", 1.0): 3_503_624,
    ("shufflenet_v2_x2_0", 1.0): 7_393_996,
    ("mobilenet_v1", 1.0): 4_231_976,
    ("mnasnet_a1", 1.0): 3_887_038,
}

# Figures measured with FlopCounterMode on torchvision/timm's own models (tests/data).
MADDS_REFERENCE_KEY = {
    ("mobilenet_v3_large", 1.0): "mobilenet_v3_large",
    ("mobilenet_v3_small", 1.0): "mobilenet_v3_small",
    ("mobilenet_v3_large", 0.75): "timm_mobilenetv3_large_075",
    ("mobilenet_v3_small", 0.75): "timm_mobilenetv3_small_075",
    ("mobilenet_v2", 1.0): "mobilenet_v2",
    ("shufflenet_v2_x0_5", 1.0): "shufflenet_v2_x0_5",
    ("shufflenet_v2_x1_0", 1.0): "shufflenet_v2_x1_0",
    ("shufflenet_v2_x1_5", 1.0): "shufflenet_v2_x1_5",
    ("shufflenet_v2_x2_0", 1.0): "shufflenet_v2_x2_0",
    ("mobilenet_v1", 1.0): "timm_mobilenetv1_100",
    ("mnasnet_a1", 1.0): "timm_mnasnet_a1",
}

# Published MAdds: MobileNetV3 Table 3 (V3, V2), ShuffleNetV2 and MobileNet papers, MnasNet.
PAPER_MADDS = {
    ("mobilenet_v3_large", 1.0): 219e6,
    ("mobilenet_v3_large", 0.75): 155e6,
    ("mobilenet_v3_small", 1.0): 56e6,
    ("mobilenet_v3_small", 0.75): 44e6,
    ("mobilenet_v2", 1.0): 300e6,
    ("shufflenet_v2_x1_0", 1.0): 146e6,
    ("mobilenet_v1", 1.0): 569e6,
    ("mnasnet_a1", 1.0): 312e6,
}


@pytest.fixture(scope="module")
def figures():
    """Params and MAdds of every zoo model, each built once."""
    result = {}
    for key in PARAMS:
        name, width = key
        model = build_model(zoo.get(name, width_mult=width))
        result[key] = (count_params(model), count_madds(model))
    return result


@pytest.mark.parametrize("key", list(PARAMS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_param_counts_are_exact(figures, key):
    assert figures[key][0] == PARAMS[key]


@pytest.mark.parametrize("key", list(MADDS_REFERENCE_KEY), ids=lambda k: f"{k[0]}-{k[1]}")
def test_madds_equal_the_reference_implementations(figures, zoo_figures, key):
    assert figures[key][1] == zoo_figures[MADDS_REFERENCE_KEY[key]]["madds"]


@pytest.mark.parametrize("key", list(PAPER_MADDS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_madds_within_3_percent_of_the_papers(figures, key):
    assert figures[key][1] == pytest.approx(PAPER_MADDS[key], rel=0.03)


def test_paper_params_of_table_3(figures):
    for (name, width), paper in zoo.PAPER_FIGURES.items():
        assert figures[(name, width)][0] == pytest.approx(paper.params, rel=0.06), name


def test_count_madds_takes_a_spec_or_a_model():
    spec = zoo.get("mobilenet_v3_small", input_size=112)
    assert nas.count_madds(spec) == nas.count_madds(nas.build_model(spec))
    assert nas.count_madds(spec) < nas.count_madds(zoo.get("mobilenet_v3_small"))


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_state_dict_layout_is_torchvisions(name):
    reference = load_data("torchvision_v3_layout.json")["models"][name]
    state = build_model(zoo.get(name)).state_dict()
    ours = {key: list(value.shape) for key, value in state.items()}
    assert list(ours) == list(reference)  # same keys, same order
    assert ours == reference


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_torchvision_style_weights_load_strictly(name):
    """A state_dict with torchvision's keys and shapes (here: random) loads with strict=True."""
    reference = load_data("torchvision_v3_layout.json")["models"][name]
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) if shape else torch.tensor(3)
             for key, shape in reference.items()}
    model = build_model(zoo.get(name))
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.features[1].block[0][0].weight, state["features.1.block.0.0.weight"])


def test_v3_batch_norm_and_se_conventions():
    model = build_model(zoo.get("mobilenet_v3_large"))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())
    # make_divisible(exp // 4, 8) for exp = 72, 120, 480, 672, 960
    squeezes = [cfg["se_ch"] for cfg in layer_plan(zoo.get("mobilenet_v3_large"))["blocks"]
                if cfg["se_ch"]]
    assert squeezes == [24, 32, 32, 120, 168, 168, 240, 240]
    v2 = build_model(zoo.get("mobilenet_v2"))
    assert all(m.eps == 1e-5 and m.momentum == 0.1
               for m in v2.modules() if isinstance(m, nn.BatchNorm2d))


def test_mnasnet_uses_its_own_se_convention():
    plan = layer_plan(zoo.get("mnasnet_a1"))
    squeezes = {(cfg["in_ch"], cfg["se_ch"]) for cfg in plan["blocks"] if cfg["se_ch"]}
    assert squeezes == {(24, 6), (40, 10), (80, 20), (112, 28), (160, 40)}
    assert plan["se_gate"] == "sigmoid"
    v3_style = zoo.get("mnasnet_a1").__class__.from_dict(
        {**zoo.get("mnasnet_a1").to_dict(), "se_style": "v3"})
    assert count_params(v3_style) == 5_141_352  # why the convention matters (docs/zoo.md)


def test_width_multiplier_keeps_the_last_layer():
    large = zoo.get("mobilenet_v3_large", width_mult=0.75).scaled()
    assert large.head.hidden_ch == 1280 and large.head.conv_ch == 720
    assert large.stem.out_ch == 16
    small = zoo.get("mobilenet_v3_small", width_mult=0.75).scaled()
    assert small.head.hidden_ch == 1024
    v2_wide = zoo.get("mobilenet_v2", width_mult=1.4).scaled()
    assert v2_wide.head.conv_ch == 1792  # scaled up above 1.0, as in torchvision and timm


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_runs(name):
    spec = zoo.get(name, num_classes=7, input_size=64)
    model = build_model(spec).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_zoo_get_rejects_unknown_names_and_overrides():
    with pytest.raises(ValueError, match="unknown zoo model 'resnet50'"):
        zoo.get("resnet50")
    with pytest.raises(ValueError, match="cannot be overridden"):
        zoo.get("mobilenet_v2", depth=3)
    assert zoo.get("v3-large") == zoo.get("mobilenet_v3_large")


def test_build_is_seeded_and_stateless():
    spec = zoo.get("mobilenet_v3_small", input_size=32)
    a, b = build_model(spec, seed=3), build_model(spec, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))
    assert nas.spec_of(a) is spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch_specs())
def test_random_specs_build_and_run(spec):
    model = build_model(spec).eval()
    x = torch.randn(1, spec.stem.in_ch, spec.input_size, spec.input_size)
    with torch.no_grad():
        assert model(x).shape == (1, spec.num_classes)
    # The table's resolutions are the network's: the last block's output size is the pooled size.
    rows = spec.table_rows()
    pool = next(r for r in rows if r.operator.startswith("pool"))
    assert pool.input_hw == spec.resolutions()[-1]


# --------------------------------------------------------------------------- tables
def _rows_as_reference(spec):
    result = []
    for row in spec.table_rows():
        result.append({
            "input": f"{row.input_hw}x{row.input_hw}x{row.input_ch}",
            "operator": row.operator,
            "exp_size": row.exp_size,
            "out": "k" if row.operator == "conv2d 1x1, NBN" and row.nl is None else row.out,
            "se": row.se,
            "nl": row.nl,
            "stride": row.stride,
        })
    return result


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_tables_equal_the_paper_row_by_row(paper_tables, name):
    ours = _rows_as_reference(zoo.get(name))
    paper = paper_tables[name]
    assert len(ours) == len(paper)
    for index, (mine, theirs) in enumerate(zip(ours, paper, strict=True)):
        if name == "mobilenet_v3_small" and theirs["operator"] == "conv2d 1x1" and theirs["se"]:
            # The paper marks SE on V3-Small's last 1x1 conv; torchvision (whose weights must
            # load) and timm have none. Documented in docs/zoo.md.
            assert mine == {**theirs, "se": False}, index
        else:
            assert mine == theirs, index


def test_markdown_table():
    text = zoo.get("mobilenet_v3_large").table()
    lines = text.splitlines()
    assert lines[0] == "| Input | Operator | exp size | #out | SE | NL | s |"
    assert lines[2] == "| 224²×3 | conv2d 3x3 | - | 16 | - | HS | 2 |"
    assert "| 28²×40 | bneck 3x3 | 240 | 80 | - | HS | 2 |" in lines
    assert "| 7²×960 | pool 7x7 | - | - | - | - | 1 |" in lines
    assert lines[-1] == "| 1²×1280 | conv2d 1x1, NBN | - | 1000 | - | - | 1 |"
    assert len(lines) == 2 + 20


def assert_same_backward(reference, conv, x, x2, out=None, out2=None):
    """``conv`` on ``x2`` gives ``reference``'s output on ``x``, and the same gradients of the
    input and of every parameter for one random output gradient."""
    out = reference(x) if out is None else out
    out2 = conv(x2) if out2 is None else out2
    grad = torch.randn_like(out)
    out.backward(grad)
    out2.backward(grad)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(x2.grad, x.grad)
    for (name, mine), theirs in zip(conv.named_parameters(), reference.parameters(),
                                    strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, msg=name)


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 9])
def test_conv_skips_only_taps_that_meet_padding(kernel, stride, size):
    """nas.modules.Conv2d crops a kernel larger than its input: outputs and every gradient
    equal nn.Conv2d's, and the crop really happens on a 1x1 input."""
    from nas.modules import Conv2d, within_reach

    torch.manual_seed(0)
    plain = nn.Conv2d(8, 8, kernel, stride, kernel // 2, groups=8, bias=False)
    cropped = Conv2d(8, 8, kernel, stride, kernel // 2, groups=8, bias=False)
    cropped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, size, size, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    assert_same_backward(plain, cropped, x, x2)
    weight, padding = within_reach(plain.weight, plain.padding, (size, size))
    assert weight.shape[-1] == min(kernel, 2 * size - 1) and padding[0] == weight.shape[-1] // 2


@pytest.mark.parametrize(("size", "kernel", "stride"),
                         [(1, 5, 1), (2, 3, 1), (2, 5, 2), (3, 5, 1), (4, 5, 1), (4, 7, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_on_a_small_map_trains_by_its_own_path_with_the_same_gradients(
        size, kernel, stride, channels_last, monkeypatch):
    """Training a depthwise conv whose kernel exceeds its map takes depthwise_conv2d's own
    path (oneDNN's backward is slow there), not F.conv2d, with nn.Conv2d's outputs and
    gradients; without gradients (inference, latency, export) it is F.conv2d again."""
    from nas import modules

    torch.manual_seed(0)
    plain = nn.Conv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=True)
    mine = modules.Conv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=True)
    mine.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = plain(x1)
    calls = []
    real = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d",
                        lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    out2 = mine(x2)
    cropped = min(kernel, 2 * size - 1)
    assert calls == ([] if cropped > size else [x.shape])
    assert_same_backward(plain, mine, x1, x2, out, out2)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), out.detach())
    assert len(calls) == (1 if cropped > size else 2)
