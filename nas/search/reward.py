"""MnasNet's reward: ``ACC * (LAT / T) ** w`` with ``w = alpha`` if ``LAT <= T`` else ``beta``.

Presets: ``soft`` (alpha = beta = -0.07, the MobileNetV3-Large search), ``soft-small``
(-0.15, the MobileNetV3-Small search, where accuracy changes more steeply with latency) and
``hard`` (alpha = 0, beta = -1: accuracy alone within the budget, a steep penalty above it).
``pareto`` is the multi-objective mode: (accuracy, latency) for a Pareto search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nas.errors import RewardError

__all__ = ["PRESETS", "Reward", "RewardError"]

PRESETS: dict[str, tuple[float, float]] = {
    "soft": (-0.07, -0.07),
    "soft-small": (-0.15, -0.15),
    "hard": (0.0, -1.0),
}


@dataclass(frozen=True)
class Reward:
    """A latency-aware objective for a budget of ``target_ms`` milliseconds."""

    target_ms: float
    alpha: float = -0.07
    beta: float = -0.07
    multi_objective: bool = False
    preset: str = "custom"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_ms) and self.target_ms > 0):
            raise RewardError(f"the latency target must be a positive number of ms, "
                              f"got {self.target_ms!r}")
        if self.alpha > 0 or self.beta > 0:
            raise RewardError("alpha and beta must be <= 0 (slower must never score higher)")

    @classmethod
    def from_preset(cls, name: str, target_ms: float) -> Reward:
        if name == "pareto":
            return cls(target_ms, 0.0, 0.0, multi_objective=True, preset=name)
        if name not in PRESETS:
            raise RewardError(f"unknown reward {name!r}; choose one of "
                              f"{', '.join([*PRESETS, 'pareto'])}")
        alpha, beta = PRESETS[name]
        return cls(target_ms, alpha, beta, preset=name)

    def __call__(self, accuracy: float, latency_ms: float) -> float:
        """The scalar reward (for ``pareto``, the hard-budget reward, used to pick a best)."""
        if latency_ms <= 0:
            raise RewardError(f"latency must be positive, got {latency_ms!r}")
        ratio = latency_ms / self.target_ms
        if self.multi_objective:
            weight = 0.0 if ratio <= 1 else -1.0
        else:
            weight = self.alpha if ratio <= 1 else self.beta
        return accuracy * ratio ** weight

    @property
    def directions(self) -> list[str]:
        """Optuna study directions of ``values``."""
        return ["maximize", "minimize"] if self.multi_objective else ["maximize"]

    def values(self, accuracy: float, latency_ms: float) -> list[float]:
        """What a study records: [reward], or [accuracy, latency] in multi-objective mode."""
        if self.multi_objective:
            return [accuracy, latency_ms]
        return [self(accuracy, latency_ms)]

    def describe(self) -> str:
        if self.multi_objective:
            return f"Pareto front of (accuracy, latency); best = most accurate within " \
                   f"{self.target_ms:g} ms"
        return f"ACC x (LAT/{self.target_ms:g}ms)^w, w = {self.alpha:g} if LAT <= T else " \
               f"{self.beta:g} ({self.preset})"
