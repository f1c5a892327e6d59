"""What one evaluated candidate produced; the unit that strategies, runner and storage share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nas.spec import ArchSpec

__all__ = ["TrialResult"]


@dataclass(frozen=True)
class TrialResult:
    """A scored candidate (``reward`` set) or a failed one (``failed``, ``reason``)."""

    spec: ArchSpec
    index: int                      # ask order in the run: trial 0, 1, 2, ...
    latency_ms: float
    accuracy: float | None = None
    reward: float | None = None
    cost_seconds: float = 0.0
    failed: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Where it was scored, for a distributed run: the Ray node ("" in this machine's processes),
    # how many times it was started, and why the attempts before the last were lost.
    node_id: str = ""
    attempts: int = 1
    retried: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and self.reward is not None
