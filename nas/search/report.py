"""What a finished search leaves in its run directory.

``best.json`` (the spec), ``best.md`` (paper-format table), ``best.pt`` and ``best.py`` (PyTorch
export, ImageNet-shaped with fresh weights), ``pareto.png`` (accuracy against latency of every
trial, the Pareto front, the budget and MobileNetV3-Large/-Small at 1.0 and 0.75 trained with
the same recipe) and ``report.md`` (the best architecture against V3-Large and V3-Small on
predicted and measured latency and on accuracy).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.build import count_params
from nas.export import atomic_path, export, write_text
from nas.flops import count_madds
from nas.search.run import reference_specs
from nas.search.trial import TrialResult
from nas.spec import ArchSpec
from search_spaces import zoo

__all__ = ["best_result", "pareto_front", "proxy_label", "write_outputs"]


def proxy_label(unit: str) -> str:
    """What the estimator's number is: a top-1 in % (training, supernet) or a score."""
    return "proxy top-1" if unit == "%" else "proxy score"


def best_result(results: Sequence[TrialResult]) -> TrialResult | None:
    """The trial with the highest reward (in Pareto mode: the hard-budget reward)."""
    scored = [r for r in results if r.ok]
    return max(scored, key=lambda r: (r.reward, -r.index)) if scored else None


def pareto_front(results: Sequence[TrialResult]) -> list[TrialResult]:
    """Trials no other trial beats on both accuracy (higher) and latency (lower)."""
    front, best_accuracy = [], -np.inf
    for r in sorted((r for r in results if r.ok), key=lambda r: (r.latency_ms, -r.accuracy)):
        if r.accuracy > best_accuracy:
            front.append(r)
            best_accuracy = r.accuracy
    return front


def _references(run, progress) -> dict[str, dict[str, Any]]:
    """V3-Large/-Small at 1.0 and 0.75: predicted latency and accuracy under the run's
    estimator (kept in run.json, so a resumed or re-reported run does not train them again)."""
    cached = run.info.setdefault("references", {})
    specs = reference_specs()
    for number, spec in enumerate(specs):
        label = _label(spec)
        if label in cached:
            continue
        result = run.objective(spec, -1)
        cached[label] = {"latency_ms": result.latency_ms, "accuracy": result.accuracy,
                         "failed": result.failed, "reason": result.reason}
        if progress:
            progress("reference networks", number + 1, len(specs))
    run.save_info()
    return cached


def _label(spec: ArchSpec) -> str:
    name = {"mobilenet_v3_large": "V3-Large", "mobilenet_v3_small": "V3-Small"}.get(spec.name,
                                                                                spec.name)
    return f"{name} {spec.width_mult:g}x" if spec.width_mult != 1.0 else name


def plot_pareto(results: Sequence[TrialResult], references: dict[str, dict], budget_ms: float,
                path: Path, title: str, unit: str = "%",
                best: TrialResult | None = None) -> None:
    # lazy: pyplot takes ~1.0 s to import (-X importtime), and choosing the Agg backend is a
    # process-wide change made only when a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.ok]
    fig, ax = plt.subplots(figsize=(7, 4.8))
    ax.scatter([r.latency_ms for r in ok], [r.accuracy for r in ok], s=10, color="0.6",
               label=f"trials ({len(ok)})")
    front = pareto_front(ok)
    ax.plot([r.latency_ms for r in front], [r.accuracy for r in front], "-o", color="C0",
            ms=4, lw=1.2, label="Pareto front")
    best = best or best_result(results)
    if best is not None:
        ax.scatter([best.latency_ms], [best.accuracy], marker="*", s=240, color="gold",
                   edgecolors="k", zorder=5, label=f"best ({best.spec.name})")
    for number, (label, ref) in enumerate(references.items()):
        if ref.get("accuracy") is not None:
            ax.scatter([ref["latency_ms"]], [ref["accuracy"]], marker="D", s=45,
                       color=f"C{number + 1}", zorder=4, label=label)
    ax.axvline(budget_ms, color="C3", ls="--", lw=0.8, label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("proxy top-1 (%)" if unit == "%" else proxy_label(unit))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def measured_choice(run, results: Sequence[TrialResult], *, finalists: int = 5,
                    rounds: int = 60) -> tuple[TrialResult, dict[int, float], list[float]]:
    """MnasNet's last step, on this machine: the ``finalists`` best trials by predicted reward
    are timed end to end, interleaved with V3-Large and V3-Small, and the best by the reward
    of the *measured* latency wins (``measured_ranking``'s first).

    Returns (winner, measured ms by trial index, measured ms of V3-Large and V3-Small).
    """
    ranked, by_index, references, _reward = measured_ranking(run, results, finalists=finalists,
                                                             rounds=rounds)
    return ranked[0], by_index, references


def measured_ranking(run, results: Sequence[TrialResult], *, finalists: int = 5,
                     rounds: int = 60):
    """The ``finalists`` best trials by predicted reward, timed end to end interleaved with
    V3-Large and V3-Small, ranked by the reward of their *measured* latency (ties: the earlier
    trial). Per-architecture errors of the predictor (a few percent here, see docs/latency.md)
    then cannot decide the order of close candidates.

    A budget given as a network (``budget_of``) is that network's latency on each scale (times
    ``budget_fraction``): its prediction for the search, its measurement in this same session
    here (a budget on the predicted scale would let every finalist look faster or slower than
    it is, wherever the predictor and the timer disagree).

    Returns (ranked finalists, measured ms by trial index, measured ms of V3-Large and
    V3-Small, the reward on the measured scale).
    """
    ranked = sorted((r for r in results if r.ok), key=lambda r: (-r.reward, r.index))
    chosen = ranked[:finalists]
    references = [zoo.get("v3-large"), zoo.get("v3-small")]
    budget_of = getattr(run.settings, "budget_of", None)
    names = [spec.name for spec in references]
    if budget_of is not None and zoo.get(budget_of).name not in names:
        references.append(zoo.get(budget_of))
        names.append(references[-1].name)
    measured = run.measure_ms([r.spec for r in chosen] + references, rounds)
    by_index = {r.index: ms for r, ms in zip(chosen, measured, strict=False)}
    reward = run.reward
    if budget_of is not None:
        budget = getattr(run.settings, "budget_fraction", 1.0) * measured[
            len(chosen) + names.index(zoo.get(budget_of).name)]
        reward = dataclasses.replace(run.reward, target_ms=budget)
    order = sorted(chosen, key=lambda r: (-reward(r.accuracy, by_index[r.index]), r.index))
    return order, by_index, measured[len(chosen):len(chosen) + 2], reward


def write_outputs(run, results: Sequence[TrialResult], *, measure_rounds: int = 60,
                  finalists: int = 5,
                  progress: Callable[[str, float, float], None] | None = None) -> dict[str, Any]:
    """Write every output file of a finished run; returns the summary the CLI prints."""
    directory = run.dir
    unit = run.settings.job.unit
    best = best_result(results)
    failed = [r for r in results if r.failed]
    summary: dict[str, Any] = {"trials": len(results), "failed": len(failed), "best": None}
    references = _references(run, progress)

    def plot(chosen: TrialResult | None) -> None:
        plot_pareto(results, references, run.budget_ms, directory / "pareto.png",
                    f"{run.settings.strategy}, {len(results)} trials, "
                    f"{run.settings.job.describe()}", unit, chosen)

    if best is None:
        plot(None)
        write_text(directory / "report.md", "# Search report\n\nNo candidate finished; "
                   "see the failures in study.db.\n")
        return summary
    if progress:
        progress("measuring finalists", 0, 1)
    best, finalist_ms, reference_ms = measured_choice(run, results, finalists=finalists,
                                                      rounds=measure_rounds)
    if progress:
        progress("measuring finalists", 1, 1)
    plot(best)
    spec = dataclasses.replace(best.spec, name="best")
    export(spec, "json", directory / "best.json")
    export(spec, "pytorch", directory / "best.pt")
    export(spec, "py", directory / "best.py")
    params, madds = count_params(spec), count_madds(spec)
    write_text(directory / "best.md",
               f"# best: trial {best.index}\n\n"
               f"Measured latency {finalist_ms[best.index]:.2f} ms, predicted "
               f"{best.latency_ms:.2f} ms (budget "
               f"{run.budget_ms:g} ms), {proxy_label(unit)} {best.accuracy:.4g}{unit}, "
               f"reward "
               f"{best.reward:.3f}; {params / 1e6:.2f}M params, {madds / 1e6:.0f}M MAdds "
               f"(224x224, 1000 classes).\n\n{spec.table()}\n")

    compared = [spec, zoo.get("v3-large"), zoo.get("v3-small")]
    measured = [finalist_ms[best.index], *reference_ms]
    rows = [(f"best (trial {best.index})", spec, best.latency_ms, best.accuracy)]
    for reference in compared[1:]:
        ref = references[_label(reference)]
        rows.append((_label(reference), reference, ref["latency_ms"], ref["accuracy"]))
    lines = [f"| network | params | MAdds | predicted ms | measured ms | {proxy_label(unit)} |",
             "|---|---|---|---|---|---|"]
    table_rows = []
    for (label, net, predicted, accuracy), ms in zip(rows, measured, strict=True):
        net_params, net_madds = count_params(net), count_madds(net)
        accuracy_text = f"{accuracy:.4g}{unit}" if accuracy is not None else "failed"
        lines.append(f"| {label} | {net_params / 1e6:.2f}M | {net_madds / 1e6:.0f}M | "
                     f"{predicted:.2f} | {ms:.2f} | {accuracy_text} |")
        table_rows.append({"network": label, "params": net_params, "madds": net_madds,
                           "predicted_ms": predicted, "measured_ms": ms, "accuracy": accuracy})
    fingerprint = run.predictor.table.fingerprint.describe()
    front = pareto_front(results)
    report = [
        "# Search report", "",
        f"- budget: {run.budget_ms:g} ms; reward: {run.reward.describe()}",
        f"- strategy: {run.settings.strategy} (seed {run.settings.seed}"
        f"{', from ' + run.settings.seed_arch if run.settings.seed_arch else ''}); "
        f"{len(results)} trials, {len(failed)} failed",
        f"- accuracy: {run.settings.job.describe()}",
        f"- latency: predicted by the calibrated look-up table of {fingerprint}; measured "
        f"end to end, interleaved, minimum of {measure_rounds} rounds, batch 1, 224x224",
        "", *lines, "",
        f"Final choice: the {len(finalist_ms)} best trials by predicted reward, timed "
        f"together with V3-Large and V3-Small; the best reward on measured latency wins.", "",
        f"| trial | {proxy_label(unit)} | predicted ms | measured ms | reward (predicted) | "
        "reward (measured) |", "|---|---|---|---|---|---|",
        *(f"| {r.index}{' (chosen)' if r.index == best.index else ''} | "
          f"{r.accuracy:.4g}{unit} | {r.latency_ms:.2f} | {finalist_ms[r.index]:.2f} | "
          f"{r.reward:.3f} | {run.reward(r.accuracy, finalist_ms[r.index]):.3f} |"
          for r in results if r.index in finalist_ms), "",
        f"Pareto front: {len(front)} trials. Best architecture (224x224, 1000 classes):", "",
        spec.table(), "",
        "![accuracy against latency](pareto.png)", "",
    ]
    unscored = {label: ref for label, ref in references.items() if ref.get("failed")}
    if unscored:  # e.g. the 0.75x networks, which are not in a supernet's space
        report += ["Not in the plot: the estimator could not score these comparison networks.",
                   "", *(f"- {label}: {ref['reason']}" for label, ref in unscored.items()), ""]
    if failed:
        report += ["Failed candidates:", ""]
        report += [f"- trial {r.index}: {r.reason}" for r in failed[:20]]
    write_text(directory / "report.md", "\n".join(report) + "\n")
    summary.update({"best": best, "rows": table_rows, "front": len(front)})
    write_text(directory / "summary.json", json.dumps(
        {"trials": len(results), "failed": len(failed), "best_index": best.index,
         "best_reward": best.reward, "finalists_measured_ms": finalist_ms,
         "rows": table_rows}, indent=2) + "\n")
    return summary
