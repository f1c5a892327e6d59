"""Multiply-adds counted by torch's own ``FlopCounterMode`` (MAdds = FLOPs / 2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.build import build_model, spec_of
from nas.spec import ArchSpec

__all__ = ["count_madds"]


def count_madds(spec_or_model: ArchSpec | nn.Module, input_size: int | None = None) -> int:
    """MAdds of one image (batch 1) at the spec's input size, or ``input_size`` if given.

    Counts convolutions and matrix products, as the papers do; element-wise work
    (activations, BN in eval, SE gating, residual adds) is not counted.
    """
    if isinstance(spec_or_model, ArchSpec):
        spec, model = spec_or_model, build_model(spec_or_model)
    else:
        model = spec_or_model
        spec = getattr(model, "arch_spec", None)
    if input_size is None:
        input_size = spec_of(model).input_size if spec is not None else 224
    in_ch = spec.stem.in_ch if spec is not None else 3
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, in_ch, input_size, input_size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
