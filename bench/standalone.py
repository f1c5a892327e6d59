"""The stand-alone reference of the ranking benchmarks: the proxy task, training each
architecture on it with one recipe and seed, and how far seeds agree with each other.

``bench/estimator_ranking.py`` scores the estimators against this reference;
``bench/reference_lr.py`` trains it again at a second learning rate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nas.accuracy.train import Recipe, TrainEstimator  # noqa: E402
from nas.data import load_data  # noqa: E402

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
# Per proxy task: resolution, reference epochs, training / validation images (None: all).
PROXIES = {"fashion-mnist": {"resolution": 28, "epochs": 6, "images": (5000, 5000)},
           "digits-hard": {"resolution": 32, "epochs": 10, "images": (None, None)}}


def proxy_data(source: str, smoke: bool):
    """The proxy task's data and its settings."""
    settings = dict(PROXIES.get(source, PROXIES["digits-hard"]))
    if smoke:  # a few hundred images: the smoke checks that the benchmark runs, nothing more
        settings.update(resolution=16, images=(300, 150))
    path = f"mnist:{FASHION_MNIST}" if source == "fashion-mnist" else source
    train, val = settings["images"]
    data = load_data(path, settings["resolution"]).subset(train, val, seed=0)
    return data, settings


def train_standalone(specs: list, data, recipe: Recipe,
                     console: Console) -> tuple[list[float], list[float]]:
    """One seed of the stand-alone reference: top-1 (NaN where training failed) and seconds
    per architecture, each printed as it comes."""
    estimator = TrainEstimator(data, recipe)
    top1, seconds = [], []
    for spec in specs:
        result = estimator.estimate(spec)
        top1.append(float("nan") if result.failed else result.score)
        seconds.append(result.cost_seconds)
        console.print(f"lr {recipe.lr:g} seed {recipe.seed} {spec.name}: {top1[-1]:.2f}% "
                      f"({result.cost_seconds:.1f} s)")
    return top1, seconds


def head_groups(specs: list) -> dict[str, np.ndarray]:
    """Masks of the architectures by kind of head: V3's (a hidden linear layer after the
    pool) and MnasNet-A1's (a 1x1 conv straight into the classifier)."""
    v3 = np.array([s.head.hidden_ch is not None for s in specs])
    return {"V3 heads": v3, "MnasNet head": ~v3}


def kendall(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall tau over the pairs where both are known; None for fewer than 3."""
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(kendalltau(a[ok], b[ok]).statistic) if ok.sum() >= 3 else None


def seed_agreement(standalone: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """How far stand-alone training agrees with itself: tau of every pair of seeds, and of
    each seed against the mean of the others (what one more independent stand-alone run would
    score against the reference), overall and within each head group."""
    seeds = standalone.shape[0]
    pairs = {f"{i}-{j}": kendall(standalone[i], standalone[j])
             for i in range(seeds) for j in range(i + 1, seeds)}
    others = [np.nanmean(np.delete(standalone, k, axis=0), axis=0) for k in range(seeds)]
    result = {"pairs": pairs,
              "mean_pair": float(np.mean(list(pairs.values()))) if pairs else None,
              "leave_one_out": [kendall(standalone[k], others[k]) for k in range(seeds)]
              if seeds > 2 else []}
    result["mean_leave_one_out"] = (float(np.mean(result["leave_one_out"]))
                                    if result["leave_one_out"] else None)
    result["within_head_mean_leave_one_out"] = {
        name: float(np.mean([kendall(standalone[k][mask], others[k][mask])
                             for k in range(seeds)])) if seeds > 2 and mask.sum() >= 3 else None
        for name, mask in groups.items()}
    return result
