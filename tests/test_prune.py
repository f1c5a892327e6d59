"""Channel pruning: proposals keep the network valid; weight surgery keeps the largest-L2 channels
and computes exactly what the original computes restricted to them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nas.build import build_model
from nas.netadapt.prune import (
    Proposal,
    PruneError,
    apply,
    candidate_widths,
    check_prunable,
    keep_indices,
    kept_channels,
    proposal_sites,
    prune_model,
    site_width,
    tensor_groups,
)
from search_spaces import zoo


def small(name: str, **kw):
    """A zoo network on 32 px, 10 classes: the same widths, cheap to run."""
    return dataclasses.replace(zoo.get(name, **kw), input_size=32, num_classes=10)


def test_tensor_groups_follow_the_residual_connections():
    v3l = zoo.get("v3-large")
    groups = [g.tensors for g in tensor_groups(v3l)]
    # stem 16 + block 0 (16->16 residual); 24 x2; 40 x3; 80 x4; 112 x2; 160 x3.
    assert groups == [(0, 1), (2, 3), (4, 5, 6), (7, 8, 9, 10), (11, 12), (13, 14, 15)]
    v3s = zoo.get("v3-small")
    assert [g.tensors for g in tensor_groups(v3s)] == [
        (0,), (1,), (2, 3), (4, 5, 6), (7, 8), (9, 10, 11)]


def test_sites_cover_every_expansion_and_the_head():
    v3l = zoo.get("v3-large")
    sites = proposal_sites(v3l)
    expands = [i for kind, i in sites if kind == "expand"]
    assert expands == list(range(1, 15))  # block 0 has no expansion conv
    assert ("head", "conv") in sites and ("head", "hidden") in sites
    assert len(sites) == 6 + 14 + 2


def test_no_width_changes_the_structure():
    # V3-Small block 6 is 40 -> 48 with stride 1: shrinking the 48 group to 40 would give it a
    # residual connection; block 7 (48 -> 48, expansion 144) is in that group.
    v3s = zoo.get("v3-small")
    widths = [w for w, _ in candidate_widths(v3s, ("tensor", 7))]
    assert 40 not in widths and 32 in widths and widths == sorted(widths, reverse=True)
    with pytest.raises(PruneError, match="residual"):
        apply(v3s, Proposal("tensor", 7, 40))
    # An expansion cannot shrink to its block's input width (that drops the expansion conv).
    block = v3s.blocks[4]  # 40 -> 40, expansion 240
    assert block.in_ch == 40
    assert 40 not in [w for w, _ in candidate_widths(v3s, ("expand", 4))]
    with pytest.raises(PruneError, match="no expansion"):
        apply(zoo.get("v3-large"), Proposal("expand", 0, 8))


def test_only_bneck_networks_are_prunable():
    with pytest.raises(PruneError, match="shuffle"):
        check_prunable(zoo.get("shufflenet_v2_x1_0"))
    assert check_prunable(zoo.get("v3-large", width_mult=0.75)).width_mult == 1.0


@pytest.mark.parametrize("name", ["v3-large", "v3-small", "mnasnet-a1", "mobilenet_v2"])
def test_every_site_prunes_to_a_valid_network_with_the_same_output(name):
    spec = small(name)
    model = build_model(spec, seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    for site in proposal_sites(spec):
        widths = list(candidate_widths(spec, site))
        assert widths, site
        width, pruned_spec = widths[-1]
        assert site_width(pruned_spec, site) == width
        pruned = prune_model(model, pruned_spec).eval()
        assert pruned(x).shape == (2, 10)


def _masked_forward(model, kept: dict, x):
    """The model's output with every channel outside ``kept[module]`` zeroed at that module's
    output."""
    handles = []
    for module, keep in kept.items():
        def hook(_m, _inp, output, keep=keep):
            mask = torch.zeros(output.shape[1], dtype=output.dtype)
            mask[keep] = 1
            return output * mask.view((1, -1) + (1,) * (output.ndim - 2))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for handle in handles:
            handle.remove()


def _randomise_bn(model, seed=1):
    """Non-trivial BN affine terms and statistics measured on random inputs, so that signals
    neither vanish nor hide a wrongly carried channel."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.5
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
        elif isinstance(m, torch.nn.Linear):  # init's 0.01 std would hide most differences
            m.weight.data = torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, 32, 32, generator=g))
    model.eval()


def _restriction(model, spec, kept):
    """Module -> kept output channels, for every activation the pruning restricts."""
    feats = model.features
    where = {feats[0]: kept.tensors[0]}
    for i, block in enumerate(spec.blocks):
        layers = feats[i + 1].block
        where[feats[i + 1]] = kept.tensors[i + 1]  # the block's output (after the residual add)
        inner = [layers[0], layers[1]] if block.exp_ch != block.in_ch else [layers[0]]
        for layer in inner:  # expansion and depthwise outputs
            where[layer] = kept.expand[i]
        if i in kept.squeeze:
            se = next(m for m in layers if hasattr(m, "fc1"))
            where[se.activation] = kept.squeeze[i]
    if kept.head_conv is not None:
        where[feats[len(spec.blocks) + 1]] = kept.head_conv
    if kept.hidden is not None:
        where[model.classifier[1]] = kept.hidden
    return where


@pytest.mark.parametrize("proposal", [
    Proposal("expand", 4, 48),    # V3-Large block 4: 40 -> 40, expansion 120, SE 32 -> 16
    Proposal("tensor", 4, 24),    # the 40-wide group: block 3 writes it, 4 and 5 add to it
    Proposal("tensor", 0, 8),     # stem + block 0, which has no expansion conv
    Proposal("tensor", 13, 96),   # the last group, feeding the head conv
    Proposal("head", "conv", 480),
    Proposal("head", "hidden", 640),
])
def test_pruned_model_equals_the_original_restricted_to_the_kept_channels(proposal):
    spec = small("v3-large")
    model = build_model(spec, seed=0)
    _randomise_bn(model)
    model.eval()
    new_spec = apply(spec, proposal)
    kept = kept_channels(model, new_spec)
    pruned = prune_model(model, new_spec, kept).eval()
    restriction = _restriction(model, spec, kept)
    x = torch.randn(4, 3, 32, 32)
    expected = _masked_forward(model, restriction, x)
    with torch.no_grad():
        assert torch.allclose(pruned(x), expected, atol=1e-5, rtol=1e-4)
        # ...and the restriction is not vacuous: the unmasked original differs.
        assert not torch.allclose(model(x), expected, atol=1e-3)


def test_kept_channels_are_exactly_the_largest_l2_ones():
    spec = small("v3-large")
    model = build_model(spec, seed=0)
    block = model.features[5].block  # block 4: expand 40 -> 120, depthwise, SE, project
    norms = torch.randperm(120, generator=torch.Generator().manual_seed(3)).float() + 1
    with torch.no_grad():
        unit = torch.randn(120, 40, 1, 1)
        unit /= unit.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        block[0][0].weight.copy_(unit * norms.view(-1, 1, 1, 1))
    largest = sorted(int(i) for i in torch.argsort(norms, descending=True)[:48])
    new_spec = apply(spec, Proposal("expand", 4, 48))
    assert kept_channels(model, new_spec).expand[4].tolist() == largest
    pruned = prune_model(model, new_spec).features[5].block
    idx = torch.tensor(largest)
    # the same channels in the expansion, the depthwise conv, the SE and the projection input
    assert torch.equal(pruned[0][0].weight, block[0][0].weight[idx])
    assert torch.equal(pruned[0][1].running_var, block[0][1].running_var[idx])
    assert torch.equal(pruned[1][0].weight, block[1][0].weight[idx])
    assert pruned[2].fc1.weight.shape[1] == 48
    assert torch.equal(pruned[2].fc2.bias, block[2].fc2.bias[idx])
    assert torch.equal(pruned[3][0].weight, block[3][0].weight[:, idx])
    # the SE squeeze (32 -> 16 by V3's rule) keeps its largest fc1 rows over the kept inputs
    rows = block[2].fc1.weight.detach()[:, idx].flatten(1).norm(dim=1)
    squeeze = sorted(int(i) for i in torch.argsort(rows, descending=True)[:16])
    assert torch.equal(pruned[2].fc1.weight, block[2].fc1.weight[squeeze][:, idx])


def test_a_residual_group_ranks_channels_by_all_its_producers():
    spec = small("v3-large")
    model = build_model(spec, seed=0)
    producers = [model.features[b + 1].block[-1][0].weight for b in (3, 4, 5)]  # into 40-wide
    with torch.no_grad():
        for w in producers:
            w.zero_()
        producers[0][5].fill_(1.0)   # channel 5 only written by block 3
        producers[2][7].fill_(2.0)   # channel 7 only written by block 5
        producers[1][2].fill_(0.5)
    kept = kept_channels(model, apply(spec, Proposal("tensor", 4, 8)))
    assert {5, 7, 2} <= set(kept.tensors[4].tolist())
    assert kept.tensors[4] is kept.tensors[5] is kept.tensors[6]


def test_keep_indices_breaks_ties_by_position_and_keeps_order():
    scores = torch.tensor([1.0, 5.0, 5.0, 0.5, 3.0])
    assert keep_indices(scores, 3).tolist() == [1, 2, 4]
    assert keep_indices(scores, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(PruneError):
        keep_indices(scores, 6)


def test_pruning_to_the_same_widths_changes_nothing():
    spec = small("v3-small")
    model = build_model(spec, seed=0).eval()
    same = prune_model(model, spec).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), same(x))


@pytest.mark.parametrize("fmt", ["pytorch", "py", "onnx"])
def test_a_pruned_network_exports_like_any_other(tmp_path, fmt):
    """NetAdapt's result is an ordinary spec with irregular widths: every exporter takes it."""
    import importlib.util

    from nas.export import export, load

    spec = small("v3-small")
    model = build_model(spec, seed=0)
    for proposal in (Proposal("expand", 4, 104), Proposal("tensor", 9, 56),
                     Proposal("head", "hidden", 712)):
        spec = apply(spec, proposal)
        model = prune_model(model, spec)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    path = export(model, fmt, tmp_path / {"pytorch": "m.pt", "py": "m.py", "onnx": "m.onnx"}[fmt])
    if fmt == "pytorch":
        again = load(path).eval()
        assert again.arch_spec.blocks[4].exp_ch == 104
    elif fmt == "py":
        module_spec = importlib.util.spec_from_file_location("pruned_standalone", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        again = module.build_model().eval()
        again.load_state_dict(model.state_dict(), strict=True)
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert (got - expected).abs().max().item() <= 1e-4
        return
    with torch.no_grad():
        assert torch.allclose(again(x), expected, atol=1e-6)


def test_unknown_names_are_errors_naming_the_known_ones():
    """The torch layers and NetAdapt's sites refuse a name they do not know (never a default)."""
    from nas import modules

    with pytest.raises(ValueError, match=r"unknown activation 'GELU' \(known: RE, HS, RE6\)"):
        modules.make_activation("GELU")
    with pytest.raises(ValueError, match=r"unknown SE gate 'tanh' \(known: sigmoid, hard"):
        modules.SqueezeExcitation(16, 4, gate="tanh")
    with pytest.raises(ValueError, match=r"unknown block kind 'fused' \(known: bneck, dwsep, "):
        modules.make_block({"kind": "fused"}, {"bn_eps": 1e-3, "bn_momentum": 0.1,
                                               "se_gate": "sigmoid"})
    with pytest.raises(PruneError, match=r"unknown proposal site \('stem', 0\)"):
        site_width(zoo.get("v3-small"), ("stem", 0))
