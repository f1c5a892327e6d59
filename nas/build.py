"""Spec -> ``nn.Module``: a stateless function of the spec."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.errors import BuildError
from nas.modules import Network
from nas.spec import ArchSpec, plain_fields

__all__ = ["build_model", "count_params", "layer_plan", "spec_of"]


def layer_plan(spec: ArchSpec) -> dict[str, Any]:
    """Every layer of the scaled network, with all channel counts explicit (see nas.modules)."""
    concrete = spec.scaled()
    blocks = []
    for block in concrete.blocks:
        cfg = plain_fields(block)
        cfg.pop("se")
        cfg["se_ch"] = concrete.se_channels(block)
        blocks.append(cfg)
    stem = plain_fields(concrete.stem)
    in_ch = stem.pop("in_ch")
    return {
        "name": concrete.name,
        "in_ch": in_ch,
        "num_classes": concrete.num_classes,
        "bn_eps": concrete.bn_eps,
        "bn_momentum": concrete.bn_momentum,
        "se_gate": concrete.se_gate,
        "stem": stem,
        "blocks": blocks,
        "head": plain_fields(concrete.head),
    }


def build_model(spec: ArchSpec, *, seed: int | None = None) -> nn.Module:
    """Build the network. ``seed`` makes the initial weights reproducible.

    The module remembers its spec (``spec_of(model)``), so ``nas.save`` and the exporters can
    write it next to the weights.
    """
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"build_model takes an ArchSpec, got {type(spec).__name__}")
    if seed is not None and not -(2**63) <= seed < 2**64:  # what torch.manual_seed takes
        raise BuildError(f"the seed must be an integer in [-2^63, 2^64), got {seed}"[:120])
    plan = layer_plan(spec)
    if seed is None:
        model = Network(plan)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Network(plan)
    model.arch_spec = spec
    return model


def spec_of(model: nn.Module) -> ArchSpec:
    spec = getattr(model, "arch_spec", None)
    if not isinstance(spec, ArchSpec):
        raise BuildError("this model was not built by nas.build_model, so its spec is unknown")
    return spec


def count_params(spec_or_model: ArchSpec | nn.Module) -> int:
    model = build_model(spec_or_model) if isinstance(spec_or_model, ArchSpec) else spec_or_model
    return sum(p.numel() for p in model.parameters())
