"""Profiling: time every distinct layer (stem, block, head) in isolation, and whole networks.

Layers are measured in chunks; inside a chunk all layers are interleaved round by round.
The layer order is shuffled (seeded) before chunking, so a slow minute of the machine does not
fall on one stage or one kind of block. After every chunk the caller gets the results, which
is how an interrupted profile keeps what it measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from latency_models.backends import Backend, Timing
from latency_models.layers import BlockLayer, HeadLayer, Layer, StemLayer
from latency_models.timer import TimerSettings, measure_interleaved
from nas.build import build_model
from nas.modules import make_block, make_classifier, make_head_conv, make_stem
from nas.spec import ArchSpec

__all__ = ["ProfileSettings", "layer_module", "measure_specs", "profile_layers"]


@dataclass(frozen=True)
class ProfileSettings:
    """How layers and networks are timed (saved with the table). ``rounds``, ``warmup`` and
    ``min_sample_ms`` are the layers' (networks take their rounds from the caller); ``timer``
    is the rest of the project's one timer (pinning, clock, stop rule)."""

    rounds: int = 15
    warmup: int = 2
    min_sample_ms: float = 0.2
    chunk_size: int = 400
    batch: int = 1
    seed: int = 0
    timer: TimerSettings = TimerSettings()


def _plan(**overrides) -> dict:
    plan = {"in_ch": 3, "num_classes": 1000, "bn_eps": 1e-3, "bn_momentum": 0.01,
            "se_gate": "hardsigmoid"}
    plan.update(overrides)
    return plan


def layer_module(layer: Layer) -> tuple[nn.Module, tuple[int, int, int]]:
    """The layer as a module, and its input shape (C, H, W)."""
    if isinstance(layer, StemLayer):
        plan = _plan(in_ch=layer.in_ch, stem={"out_ch": layer.out_ch, "kernel": layer.kernel,
                                              "stride": layer.stride, "act": layer.act,
                                              "maxpool": layer.maxpool})
        return make_stem(plan), (layer.in_ch, layer.res, layer.res)
    if isinstance(layer, BlockLayer):
        plan = _plan(se_gate=layer.se_gate)
        return make_block(layer.config(), plan), (layer.in_ch, layer.res, layer.res)
    if isinstance(layer, HeadLayer):
        plan = _plan(num_classes=layer.num_classes,
                     head={"conv_ch": layer.conv_ch, "conv_act": layer.conv_act,
                           "hidden_ch": layer.hidden_ch, "hidden_act": layer.hidden_act,
                           "dropout": 0.0})
        parts: list[nn.Module] = []
        channels = layer.in_ch
        conv = make_head_conv(channels, plan)
        if conv is not None:
            parts.append(conv)
            channels = layer.conv_ch
        parts += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), make_classifier(channels, plan)]
        return nn.Sequential(*parts), (layer.in_ch, layer.res, layer.res)
    raise TypeError(f"not a layer: {layer!r}")


def profile_layers(
    layers: Sequence[Layer],
    backend: Backend,
    settings: ProfileSettings = ProfileSettings(),
    *,
    on_chunk: Callable[[dict[str, Timing]], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
    on_prepared: Callable[[int], None] | None = None,
) -> dict[str, Timing]:
    """Time every layer in isolation; returns key -> Timing.

    ``on_chunk`` receives each chunk's results as soon as they are measured;
    ``on_progress`` receives the number of layers finished so far (fractional within a chunk);
    ``on_prepared`` the number of layers built and prepared so far (ONNX Runtime exports each
    layer before a chunk's first round: minutes for a large chunk).
    """
    unique = list({layer.key: layer for layer in layers}.values())
    order = np.random.default_rng(settings.seed).permutation(len(unique))
    unique = [unique[i] for i in order]
    results: dict[str, Timing] = {}
    done = 0
    for start in range(0, len(unique), settings.chunk_size):
        chunk = unique[start:start + settings.chunk_size]
        inputs: dict[tuple[int, int, int], torch.Tensor] = {}
        runners = {}
        with torch.inference_mode():
            for layer in chunk:
                module, shape = layer_module(layer)
                if shape not in inputs:
                    inputs[shape] = torch.randn(settings.batch, *shape)
                runners[layer.key] = backend.prepare(module, inputs[shape])
                if on_prepared is not None:
                    on_prepared(done + len(runners))

        def progress(round_index: int, _done: int = done, _n: int = len(chunk)) -> None:
            if on_progress is not None:
                on_progress(_done + _n * (round_index + 1) / settings.rounds)

        timings = measure_interleaved(runners, backend, rounds=settings.rounds,
                                      warmup=settings.warmup,
                                      min_sample_ms=settings.min_sample_ms,
                                      seed=settings.seed + start, on_round=progress,
                                      timer=settings.timer)
        results.update(timings)
        done += len(chunk)
        if on_chunk is not None:
            on_chunk(timings)
    return results


def measure_specs(
    specs: Sequence[ArchSpec],
    backend: Backend,
    settings: ProfileSettings = ProfileSettings(),
    *,
    rounds: int | None = None,
    on_progress: Callable[[float], None] | None = None,
    on_prepared: Callable[[int], None] | None = None,
) -> list[Timing]:
    """End-to-end latency of whole networks, all interleaved.

    ``on_prepared`` receives the number of networks built and prepared so far (a backend such
    as ONNX Runtime exports each, which takes minutes for hundreds); ``on_progress`` the
    number measured (fractional within a round)."""
    runners = {}
    with torch.inference_mode():
        for index, spec in enumerate(specs):
            model = build_model(spec, seed=0)
            example = torch.randn(settings.batch, spec.stem.in_ch, spec.input_size,
                                  spec.input_size)
            runners[index] = backend.prepare(model, example)
            if on_prepared is not None:
                on_prepared(index + 1)
    rounds = rounds or settings.rounds

    def progress(round_index: int) -> None:
        if on_progress is not None:
            on_progress(len(specs) * (round_index + 1) / rounds)

    timings = measure_interleaved(runners, backend, rounds=rounds, warmup=settings.warmup,
                                  seed=settings.seed, on_round=progress, timer=settings.timer)
    return [timings[i] for i in range(len(specs))]
