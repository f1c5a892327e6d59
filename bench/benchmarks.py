"""What `make bench` runs: every benchmark with its time limit, in the order they run.

``bench/run_all.py`` runs them; the docs' figures of its sessions (``figures_runs.py``) state
their limits and tell a full run from a partial one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TV_PYTHON = ROOT / ".venv-tv" / "bin" / "python"


@dataclass(frozen=True)
class Benchmark:
    name: str
    minutes: float  # time limit on this 2-core machine, about twice what a run took
    args: tuple[str, ...] = ()
    python: Path | None = None  # another interpreter (the torchvision venv)
    needs: Callable[[], str] | None = field(default=None, compare=False)  # why it cannot run
    path: Path | None = None  # default: bench/NAME.py

    @property
    def script(self) -> Path:
        return self.path or ROOT / "bench" / f"{self.name}.py"


def _torchvision_venv() -> str:
    return "" if TV_PYTHON.exists() else "needs .venv-tv: run `make bench-torchvision` once"


# Accuracy-bound benchmarks first, the pure timing ones last (the quietest stretch of a session).
BENCHMARKS = (
    # Issue 28's head-to-head: the chain the task must separate, both searches (each candidate
    # trained an epoch; the hard reward at 0.85x the V3's latency; stage moves; the best four
    # finalists trained again with the final recipe), V3-Small's with a second search seed.
    # From a cold cache on 2 cores, 2026-12-07: family 23 min, one search seed of each target +
    # NetAdapt + found + timing 65 min; 2026-12-08: rescoring ~10 min per V3-Small search and
    # ~15 per V3-Large, V3-Small's second seed ~35 min with its trainings (~125 min in all).
    # Issue 28's item 5, before the head-to-head that carries its rows: NetAdapt from V3-Small
    # against its width multiplier with the Fashion-MNIST final recipe, three seeds.
    Benchmark("netadapt_vs_multiplier-fashion-mnist", 90, args=(
        "--start", "v3-small", "--recipe", "fashion-mnist", "--seeds", "3", "--init-epochs", "3",
        "--long-epochs", "0", "--targets", "0.95", "0.9", "0.8",
        "--run-dir", "runs/bench-netadapt-fashion-mnist",
        "--out", "bench/results/netadapt_vs_multiplier-fashion-mnist.json"),
        path=ROOT / "bench" / "netadapt_vs_multiplier.py"),
    Benchmark("v3_headtohead", 180, args=(
        "--found", "--family", "v3-small:0.5", "v3-small:0.75", "v3-small:1.0", "v3-large:1.0",
        "--search-estimator", "train", "--search-reward", "hard", "--budget-fraction", "0.85",
        "--stage-moves", "0.2", "--trials", "40", "--rescore", "4",
        "--search-seeds", "0", "v3-small:1",
        "--netadapt", "bench/results/netadapt_vs_multiplier-fashion-mnist.json")),
    Benchmark("estimator_ranking", 90),
    Benchmark("reference_lr", 150),  # retrains only when estimator_ranking's sample changed
    Benchmark("search_quality", 80),
    Benchmark("netadapt_vs_multiplier", 40),
    Benchmark("ray_throughput", 30),  # ~12 min expected on 2 quiet cores (not yet measured)
    Benchmark("depthwise_small_maps", 5),  # ~1 min
    Benchmark("timer_variants", 30),  # bound to be set from its first full run
    Benchmark("latency_validation", 25),
    Benchmark("torchvision_equivalence", 10, python=TV_PYTHON, needs=_torchvision_venv),
)


def is_full(session: Mapping, benchmarks: Iterable[Benchmark]) -> bool:
    """Whether a session of `make bench` ran every one of ``benchmarks``."""
    return {b["name"] for b in session["benchmarks"]} >= {b.name for b in benchmarks}
