"""NetAdapt's settings: what a run is asked to do, validated once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from nas.errors import NetAdaptError

__all__ = ["LATENCY_MODES", "SELECTIONS", "NetAdaptSettings"]

SELECTIONS = ("ratio", "accuracy")
LATENCY_MODES = ("paired", "table")
# Settings that decide what the finished iterations are; the others (target, the cut δ and its
# schedule, long fine-tune, device, iteration cap) may change when a run is resumed, e.g. to
# continue to a lower target with a smaller step.
_RUN_KEYS = ("short_steps", "short_lr", "init_epochs",
             "lr", "select", "divisor", "min_channels", "holdout", "batch_size", "seed", "data",
             "resolution", "latency", "latency_rounds")


@dataclass(frozen=True)
class NetAdaptSettings:
    target_ms: float
    delta: float = 0.01              # the latency cut of one iteration, × the current latency
    delta_ms: float | None = None    # ...or a fixed cut in ms
    delta_decay: float = 1.0         # schedule: the cut is multiplied by this every iteration
    short_steps: int = 40            # fine-tune steps per proposal (the paper: 10,000)
    short_lr: float = 0.01
    long_epochs: int = 10            # the final fine-tune
    lr: float = 0.05                 # learning rate of the first training and the long one
    init_epochs: int = 10            # training of a start network given without weights
    select: str = "ratio"            # "ratio": ΔAcc/|ΔLat| (MobileNetV3); "accuracy": NetAdapt
    divisor: int = 8
    min_channels: int = 8
    holdout: float = 0.2
    batch_size: int = 64
    seed: int = 0
    data: str = "digits"
    resolution: int = 16
    latency: str = "paired"
    latency_rounds: int = 7
    max_iterations: int = 1000
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        if not (self.target_ms > 0 and math.isfinite(self.target_ms)):
            raise NetAdaptError(f"the target latency must be a positive number of ms, got "
                                f"{self.target_ms}")
        if self.delta_ms is None and not 0 < self.delta < 1:
            raise NetAdaptError(f"--delta must be a fraction of the latency in (0, 1) or a time "
                                f"like 0.3ms, got {self.delta}")
        if self.delta_ms is not None and not self.delta_ms > 0:
            raise NetAdaptError(f"--delta must be positive, got {self.delta_ms} ms")
        if not 0 < self.delta_decay <= 1:
            raise NetAdaptError(f"--delta-decay must be in (0, 1], got {self.delta_decay}")
        if self.select not in SELECTIONS:
            raise NetAdaptError(f"--select must be ratio or accuracy, got {self.select!r}")
        if self.latency not in LATENCY_MODES:
            raise NetAdaptError(f"--latency must be paired or table, got {self.latency!r}")
        for name in ("short_steps", "divisor", "min_channels", "batch_size", "latency_rounds",
                     "max_iterations"):
            if getattr(self, name) < 1:
                raise NetAdaptError(f"{name.replace('_', '-')} must be at least 1")
        if self.long_epochs < 0 or self.init_epochs < 1:
            raise NetAdaptError("--long-epochs must be >= 0 and --init-epochs >= 1")
        if not 0 < self.holdout < 1:
            raise NetAdaptError(f"--holdout must be a fraction in (0, 1), got {self.holdout}")

    def delta_at(self, iteration: int, latency_ms: float) -> float:
        """The cut iteration ``iteration`` (1-based) must make, in ms."""
        base = self.delta_ms if self.delta_ms is not None else self.delta * latency_ms
        return base * self.delta_decay ** (iteration - 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetAdaptSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def run_key(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _RUN_KEYS}

