"""A spec as timm's ``arch_def``: block strings timm's own decoder reads, and a Python file
whose ``create_model()`` builds timm's ``MobileNetV3`` from them.

The grammar is timm's (``timm.models._efficientnet_builder``): one string per run of blocks,
``<type>_r<repeat>_k<kernel>_s<stride>_e<ratio>_c<out>[_se<ratio>][_n<act>][_noskip]``, where
the first block of a run has the stride and the others stride 1. Mapping of our blocks:

* ``bneck`` with an expansion conv -> ``ir`` (expansion as a ratio of the block input: timm
  rebuilds the width as ``make_divisible(in × ratio)``, so the ratio written is the shortest
  decimal that gives our width back exactly);
* ``bneck`` without one (``exp_ch == in_ch``) -> ``ds`` (depthwise, [SE], linear pointwise);
* ``dwsep`` (MobileNetV1) -> ``dsa`` (the pointwise conv activated) with ``noskip``;
* the head's 1x1 conv -> ``cn_r1_k1_s1``; the hidden linear is MobileNetV3's ``conv_head``.

Squeeze-excite is ``se0.25`` of the expanded width with a hard-sigmoid gate (our ``v3``
convention; timm rounds ``exp × 0.25`` to a multiple of 8 as we round ``exp // 4``).
Activations: ``nre`` ReLU, ``nr6`` ReLU6, ``nhs`` h-swish; a block's is written when it differs
from the network default, which timm's MobileNetV3 uses for both the stem and the hidden layer
of the head: it is the head's here, and a stem with another activation gets it set after the
build (activations hold no weights). What the grammar or timm's MobileNetV3 cannot say (a
ShuffleNet unit, a dilated block, a 5x5 stem, a head without its hidden layer, MnasNet's SE)
is an :class:`~nas.errors.ExportError` naming the part.

Pure Python: building the strings needs neither torch nor timm; the written file imports timm
only inside ``create_model``.
"""

from __future__ import annotations

from nas.errors import ExportError
from nas.spec import ArchSpec, BlockSpec, make_divisible

__all__ = ["TIMM_ACTIVATIONS", "arch_def", "block_string", "exp_ratio", "timm_source"]

# Our activation -> (timm's block option, timm's activation name for get_act_layer).
TIMM_ACTIVATIONS = {"RE": ("re", "relu"), "RE6": ("r6", "relu6"), "HS": ("hs", "hard_swish")}
_RATIO_DIGITS = 6  # the longest decimal tried for an expansion ratio


def _where(index: int, block: BlockSpec) -> str:
    return f"block {index} ({block.kind} {block.in_ch}->{block.out_ch}, stride {block.stride})"


def exp_ratio(in_ch: int, exp_ch: int) -> str:
    """The shortest decimal ``r`` with ``make_divisible(in_ch * float(r)) == exp_ch`` (timm's
    rule for the expanded width), as timm's grammar writes it (``4``, ``2.5``, ``3.67``);
    ``ExportError`` if none up to six decimals gives ``exp_ch`` back."""
    exact = exp_ch / in_ch
    for digits in range(_RATIO_DIGITS + 1):
        text = f"{round(exact, digits):.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if make_divisible(in_ch * float(text)) == exp_ch:
            return text
    raise ExportError(f"an expansion from {in_ch} to {exp_ch} channels has no ratio timm can "
                      f"read (timm makes make_divisible(in × ratio), a multiple of 8)")


def block_string(block: BlockSpec, default_act: str, *, index: int = 0,
                 repeat: int = 1) -> str:
    """timm's string for ``repeat`` blocks like ``block`` (the first with its stride)."""
    if block.kind == "shuffle":
        raise ExportError(f"{_where(index, block)}: timm's arch_def grammar has no ShuffleNet "
                          f"unit; export it as py, onnx or text")
    if block.dilation != 1:
        raise ExportError(f"{_where(index, block)}: a dilated block has no form in timm's "
                          f"arch_def (timm dilates whole stages through output_stride)")
    head = f"r{repeat}_k{block.kernel}_s{block.stride}"
    if block.kind == "dwsep":
        parts = ["dsa", head, f"c{block.out_ch}"]
    elif block.exp_ch == block.in_ch:
        parts = ["ds", head, "e1", f"c{block.out_ch}"]
    else:
        try:
            ratio = exp_ratio(block.in_ch, block.exp_ch)
        except ExportError as exc:
            raise ExportError(f"{_where(index, block)}: {exc}") from None
        parts = ["ir", head, f"e{ratio}", f"c{block.out_ch}"]
    if block.se:
        parts.append("se0.25")
    if block.act != default_act:
        parts.append("n" + TIMM_ACTIVATIONS[block.act][0])
    if block.kind == "dwsep":
        parts.append("noskip")
    return "_".join(parts)


def _check_frame(spec: ArchSpec) -> None:
    """The parts around the blocks that timm's MobileNetV3 builds one way only."""
    stem, head = spec.stem, spec.head
    if stem.kernel != 3 or stem.stride != 2 or stem.maxpool:
        raise ExportError(f"the stem ({stem.kernel}x{stem.kernel}, stride {stem.stride}"
                          f"{', max-pool' if stem.maxpool else ''}): timm's MobileNetV3 stem is "
                          f"a 3x3 stride-2 conv")
    if head.hidden_ch is None or head.conv_ch is None:
        raise ExportError("the head: timm's MobileNetV3 has a 1x1 conv and a hidden layer "
                          "after the blocks; this network's head lacks "
                          f"{'the hidden layer' if head.hidden_ch is None else 'the conv'}")
    if spec.se_style != "v3" and any(b.se for b in spec.blocks):
        raise ExportError(f"se_style {spec.se_style!r}: timm's MobileNetV3 exports here use "
                          f"V3's squeeze-excite (se_style 'v3')")


def arch_def(spec: ArchSpec) -> list[list[str]]:
    """The scaled network's blocks and head conv as timm's ``arch_def``: a new stage at every
    stride-2 block or change of width (as timm's presets group them), runs of like blocks
    folded into one string (``r3``), the head's 1x1 conv as the last stage."""
    spec = spec.scaled()
    default = spec.head.hidden_act
    for index, block in enumerate(spec.blocks):
        block_string(block, default, index=index)  # refuses what timm cannot say, by index
    _check_frame(spec)
    runs: list[list] = []  # [first block, its index, repeat, stage]
    stage = 0
    for index, block in enumerate(spec.blocks):
        if runs and block.stride == 1 and block == _as_later(runs[-1][0]):
            runs[-1][2] += 1
            continue
        if runs and (block.stride == 2 or block.out_ch != runs[-1][0].out_ch):
            stage += 1
        runs.append([block, index, 1, stage])
    stages: list[list[str]] = [[] for _ in range(stage + 1)] if runs else []
    for first, index, repeat, at in runs:
        stages[at].append(block_string(first, default, index=index, repeat=repeat))
    head = spec.head
    conv = f"cn_r1_k1_s1_c{head.conv_ch}"
    if head.conv_act != default:
        conv += "_n" + TIMM_ACTIVATIONS[head.conv_act][0]
    stages.append([conv])
    return stages


def _as_later(first: BlockSpec) -> BlockSpec:
    """How a block after ``first`` in one timm run looks: stride 1, input = output width, the
    same expansion ratio."""
    if first.kind != "bneck" or first.exp_ch == first.in_ch:
        exp_ch = first.out_ch if first.kind == "bneck" else None
    else:
        exp_ch = make_divisible(first.out_ch * float(exp_ratio(first.in_ch, first.exp_ch)))
    return BlockSpec(kind=first.kind, kernel=first.kernel, in_ch=first.out_ch, exp_ch=exp_ch,
                     out_ch=first.out_ch, se=first.se, act=first.act, stride=1,
                     dilation=first.dilation)


def _stage_row(stage: list[str]) -> str:
    """One stage of the written ``ARCH_DEF``: one line, or one string a line when long."""
    line = f"    {stage!r},"
    if len(line) <= 100:
        return line
    return "    [\n" + "".join(f"        {string!r},\n" for string in stage) + "    ],"


def timm_source(spec: ArchSpec) -> str:
    """A Python file holding ``spec`` as timm's ``arch_def`` and a ``create_model(**kwargs)``
    that builds it with timm's decoder and ``MobileNetV3`` (kwargs override the class's
    arguments, e.g. ``num_classes``)."""
    stages = arch_def(spec)
    concrete = spec.scaled()
    rows = "\n".join(_stage_row(stage) for stage in stages)
    act = TIMM_ACTIVATIONS[concrete.head.hidden_act][1]
    stem_act = TIMM_ACTIVATIONS[concrete.stem.act][1]
    norm = f"partial(nn.BatchNorm2d, eps={concrete.bn_eps!r}, momentum={concrete.bn_momentum!r})"
    fix_stem = "" if stem_act == act else f"""
    # timm's MobileNetV3 gives its stem the network default activation ({act}); this
    # network's stem uses {stem_act}
    model.bn1.act = get_act_layer({stem_act!r})(inplace=True)"""
    return f'''"""{spec.name} as timm's arch_def, written by `nas export --format timm`.

`create_model(**kwargs)` builds it with timm's own decoder (decode_arch_def) and MobileNetV3
class; keyword arguments override the class arguments below (e.g. num_classes=10).
"""

from functools import partial

NAME = {spec.name!r}
INPUT_SIZE = {concrete.input_size}
ARCH_DEF = [
{rows}
]


def _same_channels(channels):
    return channels  # the widths above are final: timm must not round them again


def create_model(**kwargs):
    import torch.nn as nn
    from timm.layers import get_act_layer
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.mobilenetv3 import MobileNetV3

    arguments = dict(
        block_args=decode_arch_def(ARCH_DEF),
        num_classes={concrete.num_classes},
        in_chans={concrete.stem.in_ch},
        stem_size={concrete.stem.out_ch},
        fix_stem=True,
        num_features={concrete.head.hidden_ch},
        head_bias=True,
        act_layer=get_act_layer({act!r}),
        norm_layer={norm},
        se_layer=partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU,
                         rd_round_fn=round_channels),
        se_from_exp=True,
        round_chs_fn=_same_channels,
        drop_rate={concrete.head.dropout!r},
    )
    arguments.update(kwargs)
    model = MobileNetV3(**arguments){fix_stem}
    return model


if __name__ == "__main__":
    model = create_model()
    print(NAME, sum(p.numel() for p in model.parameters()), "parameters")
'''
