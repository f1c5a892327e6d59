"""How much does the stand-alone reference depend on its learning rate, and what does that do to
the estimators' ranking quality?

``estimator_ranking.py`` trains every architecture of a sample stand-alone at one learning rate
(0.05) and scores each estimator against that. Networks with MnasNet's head train unstably at
that rate (a loss above chance for whole epochs; one seed can end far below the others), so
part of the reference ranks the recipe, not the architecture. This benchmark trains the same
architectures again at a second rate (``--lr``, default 0.025), with the same epochs and seeds,
and scores the estimators' stored scores (from the sample's ranking JSON, not recomputed)
against three references: the stored rate, the new rate, and each architecture at the better
of the two (its accuracy with a tuned learning rate, as a user training it for real would).

A search under a latency budget compares architectures of similar latency, where "bigger is
better" says little. So each estimator is also scored against the better-rate reference on the
pairs of architectures whose predicted latencies are within ``SIMILAR`` (1.5x) of each other
(Kendall's tau-a over those pairs), beside what one stand-alone seed reaches on the same pairs.

    python bench/reference_lr.py [--lr 0.025] [--samples 11 23] [--seeds 3] [--smoke]

The training is saved after every seed (``bench/results/reference_lr.json``); a run that stops
resumes where it stopped. Needs the samples' ranking JSONs (``estimator_ranking.py``,
``--arch-seed 23``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from estimator_ranking import results_path  # noqa: E402
from provenance import Provenance, write_result  # noqa: E402
from standalone import head_groups, kendall, proxy_data, seed_agreement, train_standalone  # noqa: E402

from latency_models.device import cpu_model  # noqa: E402
from nas.accuracy.train import Recipe  # noqa: E402
from nas.spec import ArchSpec  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reference_lr.json"
SIMILAR = 1.5  # two architectures whose predicted latencies are within this ratio


def similar_pairs(latency: list[float], ratio: float = SIMILAR) -> list[tuple[int, int]]:
    """The pairs of architectures whose latencies are within ``ratio`` of each other."""
    return [(i, j) for i, j in itertools.combinations(range(len(latency)), 2)
            if max(latency[i], latency[j]) <= ratio * min(latency[i], latency[j])]


def pair_tau(values: np.ndarray, target: np.ndarray,
             pairs: list[tuple[int, int]]) -> float | None:
    """Kendall's tau-a over ``pairs``: (concordant - discordant) / pairs, leaving out pairs
    with an unknown (NaN) value; None without a pair."""
    signs = [np.sign(values[i] - values[j]) * np.sign(target[i] - target[j])
             for i, j in pairs if not np.isnan([values[i], values[j], target[i],
                                                target[j]]).any()]
    return float(np.mean(signs)) if signs else None


def best_of(runs: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Per architecture, the seeds (seeds x archs) of the rate with the higher mean top-1, and
    which rate that was. Ties go to the first rate."""
    names = list(runs)
    means = np.stack([np.nanmean(runs[n], axis=0) for n in names])
    pick = np.argmax(means, axis=0)
    seeds = np.stack([runs[names[p]][:, i] for i, p in enumerate(pick)], axis=1)
    return seeds, [names[p] for p in pick]


FINETUNED = "supernet+finetune-60"  # the search's default estimator, one row per supernet


def finetuned_spread(ranking: list[dict], reference: str = "better of the two") -> dict | None:
    """The fine-tuned supernets' tau against ``reference``: one per supernet the sample's run
    trained, their mean, min and max (None if the run has none)."""
    taus = [row["kendall_tau"][reference] for row in ranking
            if row["estimator"].startswith(FINETUNED)
            and row["kendall_tau"].get(reference) is not None]
    if not taus:
        return None
    return {"supernets": len(taus), "kendall_tau": taus, "mean": float(np.mean(taus)),
            "min": float(min(taus)), "max": float(max(taus))}


def sample_entry(samples: dict, arch_seed: int, trained: dict) -> dict:
    """The stored entry of a sample, kept (with its finished seeds) only if it was trained
    with ``trained`` (epochs, data, architectures); otherwise a fresh one."""
    entry = samples.setdefault(str(arch_seed), {})
    if any(entry.get(key) != value for key, value in trained.items()):
        entry.clear()  # another sample or recipe: its training at the second rate is void
        entry.update(trained, top1=[])
    return entry


def describe(seeds: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """Mean, lowest single run, per-head means and self-agreement of one reference."""
    mean = np.nanmean(seeds, axis=0)
    agreement = seed_agreement(seeds, groups)
    return {"mean_top1": float(np.nanmean(seeds)), "lowest_top1": float(np.nanmin(seeds)),
            "head_mean_top1": {g: float(mean[m].mean()) for g, m in groups.items() if m.any()},
            "mean_leave_one_out": agreement["mean_leave_one_out"],
            "mean_pair": agreement["mean_pair"]}


def train_seeds(specs: list[ArchSpec], data, epochs: int, lr: float, done: list[list[float]],
                seeds: int, console: Console, save) -> list[list[float]]:
    """Stand-alone top-1 (seeds x archs), training only the seeds not in ``done``; ``save``
    is called with the rows after every seed."""
    rows = [list(r) for r in done]
    for seed in range(len(rows), seeds):
        rows.append(train_standalone(specs, data, Recipe(epochs=epochs, lr=lr, seed=seed),
                                     console)[0])
        save(rows)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr", type=float, default=0.025,
                        help="the second learning rate of the stand-alone reference")
    parser.add_argument("--samples", type=int, nargs="+", default=[11, 23],
                        help="arch seeds whose estimator_ranking JSON to take")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="3 architectures, 1 epoch at 16x16, 2 seeds; no JSON")
    args = parser.parse_args()
    if args.smoke:
        args.seeds = 2
    provenance = Provenance.start(vars(args))
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        stored = {} if args.smoke else json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        stored = {}
    settings = {"lr": args.lr, "seeds": args.seeds}
    if stored.get("settings") != settings:
        stored = {}
    samples = stored.get("samples", {})

    def save() -> None:
        if args.smoke:
            return
        payload = {"fingerprint": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                   "torch": torch.__version__},
                   "settings": settings, "samples": samples,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_result(RESULTS, payload, provenance)  # the same run, updated at every seed

    for arch_seed in args.samples:
        path = results_path(arch_seed)
        try:
            ranking = json.loads(path.read_text())
            archs, scores = ranking["architectures"], ranking["scores"]
            old_lr, epochs = ranking["settings"]["lr"], ranking["settings"]["epochs"]
        except (OSError, ValueError, KeyError) as exc:
            console.print(f"[red]{path.relative_to(ROOT)}: no finished ranking run ({exc}); "
                          f"run estimator_ranking.py --arch-seed {arch_seed} first[/red]")
            return 1
        if args.smoke:
            archs, epochs = archs[:3], 1
            scores = {k: v[:3] for k, v in scores.items()}
        data, _ = proxy_data(ranking["settings"]["data"], args.smoke)
        specs = [ArchSpec.from_text(a["text"]) for a in archs]
        entry = sample_entry(samples, arch_seed, {"epochs": epochs, "data": data.name,
                                                  "architectures": [a["text"] for a in archs]})
        entry.update(source=path.name, stored_lr=old_lr)

        def keep(rows, entry=entry):
            entry["top1"] = rows
            save()

        if args.smoke:  # the stored reference is not at 16x16: train both rates here
            old = np.array(train_seeds(specs, data, epochs, old_lr, [], args.seeds, console,
                                       lambda rows: None))
        else:
            old = np.array([a["standalone_top1"] for a in archs], dtype=float).T
        new = np.array(train_seeds(specs, data, epochs, args.lr, entry["top1"], args.seeds,
                                   console, keep), dtype=float)
        runs = {f"lr {old_lr:g}": old, f"lr {args.lr:g}": new}
        best, chosen = best_of(runs)
        runs["better of the two"] = best
        groups = head_groups(specs)
        references = {name: np.nanmean(seeds, axis=0) for name, seeds in runs.items()}
        entry["references"] = {name: describe(seeds, groups) for name, seeds in runs.items()}
        entry["better_rate"] = chosen
        first, second = list(references.values())[:2]
        entry["tau_between_rates"] = kendall(first, second)
        pairs = similar_pairs([a["predicted_latency_ms_224"] for a in archs])
        target = references["better of the two"]
        entry["similar_latency"] = {
            "ratio": SIMILAR, "pairs": len(pairs),
            "stand_alone_one_seed_vs_others": float(np.mean(
                [pair_tau(best[k], np.nanmean(np.delete(best, k, axis=0), axis=0), pairs)
                 for k in range(best.shape[0])])) if pairs and best.shape[0] > 1 else None}
        entry["ranking"] = []
        for name, values in scores.items():
            values = np.array(values, dtype=float)  # None (a failed candidate) becomes NaN
            entry["ranking"].append(
                {"estimator": name,
                 "kendall_tau": {ref: kendall(values, target)
                                 for ref, target in references.items()},
                 "kendall_tau_within_head_better_rate": {
                     g: kendall(values[m], target[m]) for g, m in groups.items()},
                 "tau_similar_latency_better_rate": pair_tau(values, target, pairs)})
        entry["finetuned_supernets_better_rate"] = finetuned_spread(entry["ranking"])
        save()

        table = Table(title=f"sample {arch_seed} ({len(specs)} architectures, {epochs} epochs, "
                            f"{args.seeds} seeds): Kendall τ against each reference; the two "
                            f"rates agree to τ {fmt(entry['tau_between_rates'])}",
                      title_justify="left")
        table.add_column("estimator")
        for ref in references:
            table.add_column(f"τ, {ref}", justify="right")
        for g, m in groups.items():
            table.add_column(f"τ {g} ({int(m.sum())}), better", justify="right")
        table.add_column(f"τ-a, {len(pairs)} pairs within {SIMILAR:g}× latency, better",
                         justify="right")
        for row in entry["ranking"]:
            table.add_row(row["estimator"], *(fmt(t) for t in row["kendall_tau"].values()),
                          *(fmt(t) for t in row["kendall_tau_within_head_better_rate"].values()),
                          fmt(row["tau_similar_latency_better_rate"]))
        described = entry["references"]
        table.add_row("(stand-alone: one seed vs the mean of the others)",
                      *(fmt(d["mean_leave_one_out"]) for d in described.values()),
                      *([""] * len(groups)),
                      fmt(entry["similar_latency"]["stand_alone_one_seed_vs_others"]))
        table.add_row("(stand-alone: mean top-1 %)",
                      *(f"{d['mean_top1']:.1f}" for d in described.values()))
        table.add_row("(stand-alone: lowest single run %)",
                      *(f"{d['lowest_top1']:.1f}" for d in described.values()))
        for g in groups:
            table.add_row(f"(stand-alone: mean top-1 %, {g})",
                          *(fmt(d["head_mean_top1"].get(g), "{:.1f}") for d in described.values()))
        console.print(table)
        counts = {name: chosen.count(name) for name in dict.fromkeys(chosen)}
        console.print("better rate: " + ", ".join(f"{n} for {c}" for n, c in counts.items()))
        spread = entry["finetuned_supernets_better_rate"]
        if spread:
            console.print(f"fine-tuned supernets against the better rate: mean τ "
                          f"{spread['mean']:.3f} over {spread['supernets']} supernet(s) "
                          f"({spread['min']:.3f}-{spread['max']:.3f})")
    if not args.smoke:
        console.print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


if __name__ == "__main__":
    sys.exit(main())
