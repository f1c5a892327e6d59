"""The estimator interface: ``estimate(spec) -> Estimate``; a failure is a result, not a raise."""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

from nas.spec import ArchSpec

__all__ = ["AccuracyEstimator", "Estimate", "adapt_spec"]


@dataclass(frozen=True)
class Estimate:
    """An estimator's score of one architecture (higher is better), or why there is none."""

    score: float | None
    cost_seconds: float
    failed: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, reason: str, cost_seconds: float, **details: Any) -> Estimate:
        return cls(None, cost_seconds, True, reason, details)


def adapt_spec(spec: ArchSpec, num_classes: int, resolution: int,
               in_channels: int | None = None) -> ArchSpec:
    """The same architecture for another data set (classes, input size, input channels)."""
    stem = spec.stem if in_channels in (None, spec.stem.in_ch) else \
        dataclasses.replace(spec.stem, in_ch=in_channels)
    return dataclasses.replace(spec, num_classes=num_classes, input_size=resolution, stem=stem)


class AccuracyEstimator(ABC):
    """Scores architectures. Subclasses implement ``_score``; ``estimate`` never raises for a
    bad candidate: an exception or a non-finite score becomes a failed ``Estimate``."""

    name: str = ""

    @abstractmethod
    def _score(self, spec: ArchSpec) -> tuple[float, dict[str, Any]]:
        """(score, details) for one architecture; may raise."""

    def estimate(self, spec: ArchSpec) -> Estimate:
        start = time.perf_counter()
        try:
            score, details = self._score(spec)
        except MemoryError:
            return Estimate.failure("out of memory", time.perf_counter() - start)
        except Exception as exc:  # a candidate may fail in any way; the caller goes on
            if _out_of_memory(exc):  # torch's CUDA OOM, or its CPU allocator giving up
                _release_cuda_memory()
                return Estimate.failure(f"out of memory ({str(exc).splitlines()[0][:160]})",
                                        time.perf_counter() - start)
            last = traceback.extract_tb(exc.__traceback__)[-1]
            return Estimate.failure(f"{type(exc).__name__}: {exc} ({last.filename}:"
                                    f"{last.lineno})", time.perf_counter() - start)
        cost = time.perf_counter() - start
        if score is None or not math.isfinite(score):
            return Estimate.failure(f"non-finite score {score!r}", cost, **details)
        return Estimate(float(score), cost, details=details)


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text)


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
