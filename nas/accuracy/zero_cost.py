"""Zero-cost proxies: a score from one batch at initialisation, no training.

* ``synflow`` (Tanaka et al. 2020; as a NAS proxy, Abdelfattah et al. 2021): sum over weights of
  |θ · ∂R/∂θ| with all weights made positive and an all-ones input; data-free.
* ``naswot`` (Mellor et al. 2021): log-determinant of the kernel of binary activation codes of
  a batch (which units are active for which image); higher means inputs are told apart.
* ``params``: the parameter count, the baseline every proxy must beat to be worth its cost.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.accuracy.base import AccuracyEstimator, adapt_spec
from nas.build import build_model, count_params
from nas.data import ImageData
from nas.errors import EstimatorError
from nas.spec import ArchSpec

__all__ = ["PROXIES", "ZeroCostEstimator", "naswot", "synflow"]

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish)


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    model = model.double().eval()  # eval: BN at initialisation is the identity
    signs = {}
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                signs[name] = torch.sign(tensor)
                tensor.abs_()
    model.zero_grad(set_to_none=True)
    output = model(torch.ones((1, *input_shape), dtype=torch.float64))
    torch.sum(output).backward()
    score = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters()
                if p.grad is not None)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in signs:
                tensor.mul_(signs[name])
    return score


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    codes: list[torch.Tensor] = []

    def record(_module, _inputs, output):
        codes.append((output.detach().flatten(1) > 0).double())

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, _ACTIVATIONS)]
    try:
        with torch.no_grad():
            model.train()  # batch statistics, as the method prescribes
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    binary = torch.cat(codes, dim=1)
    kernel = binary @ binary.T + (1 - binary) @ (1 - binary).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


PROXIES = ("synflow", "naswot", "params")


class ZeroCostEstimator(AccuracyEstimator):
    """One proxy score per architecture, from a single batch at initialisation."""

    def __init__(self, data: ImageData, proxy: str = "naswot", *, batch_size: int = 64,
                 seed: int = 0):
        if proxy not in PROXIES:
            raise EstimatorError(f"unknown zero-cost proxy {proxy!r} (known: {', '.join(PROXIES)})")
        self.data, self.proxy, self.seed = data, proxy, seed
        self.name = f"zero-cost:{proxy}"
        generator = torch.Generator().manual_seed(seed)
        self.images, _ = next(data.batches("train", batch_size, shuffle=True,
                                           generator=generator))

    def _score(self, spec: ArchSpec) -> tuple[float, dict[str, Any]]:
        spec = adapt_spec(spec, self.data.num_classes, self.data.resolution, self.data.channels)
        model = build_model(spec, seed=self.seed)
        if self.proxy == "params":
            score = float(count_params(model))
        elif self.proxy == "synflow":
            score = synflow(model, tuple(self.images.shape[1:]))
        else:
            score = naswot(model, self.images)
        return score, {"proxy": self.proxy}
