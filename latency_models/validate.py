"""Predicted against measured latency: the check behind ``nas latency validate`` and
``bench/latency_validation.py``.

Random networks of the MobileNetV3 space and every zoo model are measured end to end (batch 1,
interleaved rounds, minimum) in one run, together with a disjoint set of calibration networks.
Three predictors are scored on the same measurements:

* ``plain_sum``: the sum of the table's layers (Once-for-All's predictor);
* ``calibrated``: the calibration stored with the table (fitted when it was profiled);
* ``recalibrated``: the calibration fitted on the disjoint networks measured in this run, as a
  search does when it starts (absorbs the drift of the machine since profiling).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
from rich.table import Table

from latency_models.predictor import LUTPredictor
from latency_models.profile import measure_specs
from latency_models.store import (
    LatencySetup,
    Progress,
    calibration_specs,
    load_predictor,
    task_reporter,
)
from nas.errors import LatencyError
from nas.spec import ArchSpec
from search_spaces import zoo
from search_spaces.mobilenetv3 import default_space

__all__ = ["metrics", "plot_report", "print_report", "repeatability", "throughput", "validate"]


def _ranks(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks


def metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    error = predicted / measured - 1
    spearman = float(np.corrcoef(_ranks(predicted), _ranks(measured))[0, 1])
    return {
        "within_5pct": float(np.mean(np.abs(error) <= 0.05)),
        "within_10pct": float(np.mean(np.abs(error) <= 0.10)),
        "rmse_pct": float(np.sqrt(np.mean(error ** 2)) * 100),
        "max_abs_error_pct": float(np.max(np.abs(error)) * 100),
        "mean_error_pct": float(np.mean(error) * 100),
        "spearman": spearman,
    }


def repeatability(first: np.ndarray, second: np.ndarray) -> dict:
    """The second pass against the first, as measured and with the machine's common drift
    between the passes removed.

    A shared machine's speed drifts by a few percent over minutes, for every network alike
    (docs/latency.md); ``drift_pct`` is that common factor (the median ratio of the passes),
    and ``drift_removed`` scores the second pass divided by it: what is left is the timer's
    disagreement network by network. A search removes the same common factor when it starts
    (``store.rescaled``).
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    drift = float(np.median(second / first))
    return {"raw": metrics(second, first), "drift_pct": (drift - 1) * 100,
            "drift_removed": metrics(second / drift, first)}


def throughput(predictor: LUTPredictor, batches: Sequence[Sequence[ArchSpec]]) -> dict:
    """Specs scored per second, from ArchSpec objects and from already-encoded arrays: one
    figure per batch of specs, reported as the median with the minimum and maximum.

    The first batch is scored once untimed (it fills the encoder's caches, as the first
    seconds of a search do); each timed batch holds specs never seen before, so nothing a
    pass remembers about its spec objects makes the next one faster. At least three batches.
    """
    if len(batches) < 3:
        raise ValueError("throughput needs at least 3 batches of specs")
    predictor.predict(predictor.encode(batches[0]))
    from_specs, encoded_rates = [], []
    for specs in batches:
        start = time.perf_counter()
        encoded = predictor.encode(specs)
        predictor.predict(encoded)
        from_specs.append(len(specs) / (time.perf_counter() - start))
        start = time.perf_counter()
        predictor.predict(encoded)
        encoded_rates.append(len(specs) / (time.perf_counter() - start))
    return {"specs": len(batches[0]), "runs": len(batches),
            "per_second_from_specs": float(np.median(from_specs)),
            "per_second_from_specs_min": float(np.min(from_specs)),
            "per_second_from_specs_max": float(np.max(from_specs)),
            "per_second_encoded": float(np.median(encoded_rates)),
            "per_second_encoded_min": float(np.min(encoded_rates)),
            "per_second_encoded_max": float(np.max(encoded_rates))}


def table_name(table) -> dict:
    """How a result names a latency table: its device fingerprint's key and its content's
    checksum (a path means nothing on another machine)."""
    return {"fingerprint_key": table.fingerprint.key(), "checksum": table.checksum(),
            "device": table.fingerprint.describe(), "layers": len(table)}


def validate(setup: LatencySetup, *, archs: int = 200, rounds: int = 30, seed: int = 1,
             calibration_archs: int | None = None, include_zoo: bool = True,
             throughput_specs: int = 20000, throughput_runs: int = 5,
             progress: Progress | None = None) -> dict:

    if archs < 0 or rounds < 1:
        raise LatencyError(f"--archs must be >= 0 and --rounds >= 1, got {archs} and {rounds}")
    space = default_space(setup.fingerprint.resolution)
    rng = np.random.default_rng(seed)
    specs = [space.sample(rng, name=f"random-{i}") for i in range(archs)]
    names = [s.name for s in specs]
    if include_zoo:
        for name in zoo.names():
            specs.append(zoo.get(name, input_size=setup.fingerprint.resolution))
            names.append(name)
    if calibration_archs is None:  # as many as a profile calibrates on
        calibration_archs = setup.calibration_archs
    fresh = calibration_specs(space, calibration_archs, seed=seed + 10_000)
    predictor, _ = load_predictor(setup, space, specs=specs, progress=progress)

    # Two separate passes over the same networks (each with its own warm-up and its own random
    # order): the second against the first is the measurement's repeatability, the ceiling of
    # any predictor's check; the measurement the predictors are scored on is the minimum of both.
    start = time.perf_counter()
    everything = specs + fresh
    per_pass = max(1, rounds // 2)
    passes = []
    for index in range(2):
        # one task per pass and phase: a log line per running phase, none for a finished one
        passes.append(measure_specs(
            everything, setup.backend,
            dataclasses.replace(setup.settings, seed=setup.settings.seed + index),
            rounds=per_pass,
            on_prepared=task_reporter(progress, f"pass {index + 1}: preparing", len(everything)),
            on_progress=task_reporter(progress, f"pass {index + 1}: end-to-end",
                                      len(everything))))
    measure_seconds = time.perf_counter() - start
    first_all, second_all = (np.array([t.min_ms for t in p]) for p in passes)
    measured_all = np.minimum(first_all, second_all)
    measured, measured_fresh = measured_all[:len(specs)], measured_all[len(specs):]
    first, second = first_all[:len(specs)], second_all[:len(specs)]
    # How noisy the machine was while it measured: per network, how far the median sample lies
    # above the minimum; a quiet machine keeps this at a few percent.
    spread = [float(np.median([t.median_ms / t.min_ms - 1 for t in p]) * 100) for p in passes]
    itself = repeatability(first, second)

    plain = LUTPredictor.plain_sum(predictor.table)
    recalibrated = plain.fitted_to(fresh, measured_fresh)
    predictions = {
        "plain_sum": plain.predict(specs),
        "calibrated": predictor.predict(specs),
        "recalibrated": recalibrated.predict(specs),
    }
    batches = [[space.sample(rng) for _ in range(throughput_specs)]
               for _ in range(throughput_runs)]
    return {
        "fingerprint": setup.fingerprint.to_dict(),
        "table": table_name(predictor.table),
        "settings": {"archs": archs, "zoo": include_zoo, "rounds": rounds, "seed": seed,
                     "calibration_archs": calibration_archs, "statistic": "min", "passes": 2,
                     "rounds_per_pass": per_pass,
                     "median_above_min_pct": spread,
                     "measure_seconds": measure_seconds},
        "stored_calibration": predictor.table.calibration,
        "recalibration": recalibrated.calibration.to_dict(),
        "calibration_measured_ms": measured_fresh.tolist(),  # the networks it was fitted on
        "metrics": {name: metrics(pred, measured) for name, pred in predictions.items()},
        "repeatability": itself["raw"],
        # the same without the common drift between the passes (the timer's own disagreement)
        "repeatability_drift_removed": itself["drift_removed"],
        "pass_drift_pct": itself["drift_pct"],
        "metrics_random_only": {name: metrics(pred[:archs], measured[:archs])
                                for name, pred in predictions.items()},
        "zoo": [{"model": n, "measured_ms": float(m),
                 **{k: float(v[i]) for k, v in predictions.items()}}
                for i, (n, m) in enumerate(zip(names, measured, strict=True)) if i >= archs],
        "throughput": throughput(predictor, batches),
        "networks": {"name": names, "blocks": [len(s.blocks) for s in specs],
                     "measured_ms": measured.tolist(),
                     # each pass's minimum (repeatability: the second against the first)
                     "first_pass_ms": first.tolist(), "second_pass_ms": second.tolist(),
                     **{f"{k}_ms": v.tolist() for k, v in predictions.items()}},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_report(report: dict, console) -> None:
    fp = report["fingerprint"]
    console.print(f"{report['settings']['archs']} random networks + zoo, batch {fp['batch']}, "
                  f"{fp['resolution']}², {fp['backend']}, {fp['threads']} thread(s), "
                  f"two passes of {report['settings'].get('rounds_per_pass')} interleaved rounds "
                  f"(min)")
    table = Table(title="predicted vs measured; last row: the second measuring pass against "
                        "the first", title_justify="left")
    for column in ("predictor", "within ±5%", "within ±10%", "RMSE %", "max |err| %",
                   "mean err %", "Spearman"):
        table.add_column(column, justify="left" if column == "predictor" else "right")
    rows = [*report["metrics"].items(), ("(measurement vs itself)", report["repeatability"])]
    if "repeatability_drift_removed" in report:
        rows.append((f"(itself, common drift {report['pass_drift_pct']:+.1f}% removed)",
                     report["repeatability_drift_removed"]))
    for name, m in rows:
        table.add_row(name, f"{m['within_5pct']:.1%}", f"{m['within_10pct']:.1%}",
                      f"{m['rmse_pct']:.2f}", f"{m['max_abs_error_pct']:.1f}",
                      f"{m['mean_error_pct']:+.2f}", f"{m['spearman']:.4f}")
    console.print(table)
    spread = report["settings"].get("median_above_min_pct")
    if spread:
        console.print("the machine's noise while measuring (per network, median sample above the "
                      "minimum; median over networks): "
                      + ", ".join(f"pass {i + 1} {x:.1f}%" for i, x in enumerate(spread)))
    zoo_table = Table(title="zoo models (ms)", title_justify="left")
    for column in ("model", "measured", "plain sum", "calibrated", "recalibrated"):
        zoo_table.add_column(column, justify="left" if column == "model" else "right")
    for row in report["zoo"]:
        zoo_table.add_row(row["model"], f"{row['measured_ms']:.2f}", f"{row['plain_sum']:.2f}",
                          f"{row['calibrated']:.2f}", f"{row['recalibrated']:.2f}")
    if report["zoo"]:
        console.print(zoo_table)
    tp = report["throughput"]
    console.print(f"predictor throughput (median of {tp['runs']} runs of {tp['specs']:,} specs, "
                  f"min-max): {tp['per_second_from_specs']:,.0f} specs/s from ArchSpec objects "
                  f"({tp['per_second_from_specs_min']:,.0f}-{tp['per_second_from_specs_max']:,.0f}"
                  f"), {tp['per_second_encoded']:,.0f} specs/s pre-encoded "
                  f"({tp['per_second_encoded_min']:,.0f}-{tp['per_second_encoded_max']:,.0f})")


def plot_report(report: dict, path) -> None:
    """Predicted against measured, one panel per predictor, with the ±10% band."""
    # lazy: pyplot takes ~1.0 s to import (-X importtime), and choosing the Agg backend is a
    # process-wide change made only when a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = report["networks"]
    measured = np.array(nets["measured_ms"])
    names = [k for k in report["metrics"]]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.6), sharey=True)
    low, high = measured.min() * 0.8, measured.max() * 1.25
    archs = report["settings"]["archs"]
    for ax, name in zip(axes, names, strict=True):
        predicted = np.array(nets[f"{name}_ms"])
        m = report["metrics"][name]
        ax.fill_between([low, high], [low * 0.9, high * 0.9], [low * 1.1, high * 1.1],
                        color="0.9", label="±10%")
        ax.plot([low, high], [low, high], color="0.5", lw=0.8)
        ax.scatter(measured[:archs], predicted[:archs], s=9, label="random networks")
        ax.scatter(measured[archs:], predicted[archs:], s=28, marker="D", color="C3",
                   label="zoo models")
        ax.set_title(f"{name}: {m['within_10pct']:.1%} within ±10%, "
                     f"ρ={m['spearman']:.3f}", fontsize=10)
        ax.set_xlabel("measured latency (ms)")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
    axes[0].set_ylabel("predicted latency (ms)")
    axes[0].legend(loc="upper left", fontsize=8)
    fp = report["fingerprint"]
    fig.suptitle(f"{fp['cpu']}, {fp['backend']}, {fp['threads']} thread(s), batch {fp['batch']}, "
                 f"{fp['resolution']}²", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
