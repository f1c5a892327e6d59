"""NetAdapt versus the width multiplier, at the same measured latencies.

MobileNetV3 claims that NetAdapt's per-layer widths beat a uniform width multiplier. This
benchmark starts from MobileNetV3-Large on the proxy task, runs NetAdapt (as `nas netadapt`:
paired latency, ΔAcc/|ΔLat| selection) down to the lowest of several latency targets, and takes
the first iteration under each target. The width-multiplier family of V3-Large is measured
end to end in the same interleaved session as those networks; each NetAdapt network is paired
with the multiplier network nearest to it in measured latency. Every network is then trained
from scratch with one recipe and several seeds (the architecture comparison); the NetAdapt
networks are also reported with their carried weights after the long fine-tune.

``--recipe fashion-mnist``: NetAdapt runs on that data set at the recipe's resolution, and
the networks are trained with its final recipe (``nas.accuracy.final``) and scored on its
test images; otherwise ``--epochs`` of the proxy recipe on ``--data``, scored on validation.

    python bench/netadapt_vs_multiplier.py [--targets 0.9 0.8 0.7] [--seeds 3]
        [--recipe fashion-mnist [--epochs N --resolution PX]] [--smoke]

Prints a table; writes bench/results/netadapt_vs_multiplier.json and .png.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import Provenance, save_latency_plot, write_result  # noqa: E402

from latency_models.store import LatencySetup, load_predictor, measure_ms  # noqa: E402
from nas.accuracy.final import (  # noqa: E402
    FINAL_RECIPES,
    FinalRecipe,
    Trainings,
    train_all,
    train_final,
    training_key,
)
from nas.accuracy.train import Recipe, TrainEstimator  # noqa: E402
from nas.build import count_params  # noqa: E402
from nas.data import load_data  # noqa: E402
from nas.flops import count_madds  # noqa: E402
from nas.netadapt import NetAdapt, NetAdaptSettings, device_latency  # noqa: E402
from nas.spec import ArchSpec  # noqa: E402
from nas.threads import usable_cores  # noqa: E402
from search_spaces import zoo  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def multiplier_family(start: ArchSpec, widths) -> list[ArchSpec]:
    return [dataclasses.replace(start, name=f"{start.name}_x{w:.2f}", width_mult=w).scaled()
            for w in widths]


@dataclass(frozen=True)
class ProxyScoring:
    """Every network trained from scratch with the proxy recipe (``epochs``), once per seed,
    and scored by its validation top-1."""

    epochs: int
    seeds: tuple[int, ...]
    score = "validation top-1"

    def load(self, data: str, resolution: int):
        return load_data(data, resolution)

    def prepare(self, specs: list[ArchSpec], data) -> None:
        """Nothing ahead: ``train`` trains each network when asked."""

    def train(self, spec: ArchSpec, data) -> list[float]:
        scores = []
        for seed in self.seeds:
            estimate = TrainEstimator(data, Recipe(epochs=self.epochs, seed=seed)).estimate(spec)
            if estimate.failed:
                raise RuntimeError(f"{spec.name}: {estimate.reason}")
            scores.append(estimate.score)
        return scores

    @property
    def recipe_name(self) -> str:
        return f"{self.epochs} epochs"

    def record(self) -> dict:
        return {"seeds": list(self.seeds), "recipe": Recipe(epochs=self.epochs).to_dict(),
                "score": self.score}


@dataclass(frozen=True)
class FinalScoring:
    """Every network trained with a data set's final recipe, once per recipe seed, and scored
    by its test top-1 (issue 28's form). ``prepare`` trains them all on ``workers`` processes,
    each training kept in ``trainings`` as it finishes (a rerun with --resume reuses them)."""

    final: FinalRecipe
    trainings: Trainings
    workers: int = 1
    score = "test top-1"

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.final.seeds

    def load(self, data: str, resolution: int):
        return self.final.load()

    def prepare(self, specs: list[ArchSpec], data) -> None:
        """Train every network and seed not yet kept; ``workers`` 0: none ahead (``train``
        then trains in this process, on the data it is given: the smoke's subset)."""
        if self.workers > 0:
            train_all(specs, self.final, self.trainings, None, self.workers)

    def train(self, spec: ArchSpec, data) -> list[float]:
        rows = [self.trainings.get(training_key(spec, self.final, seed)) for seed in self.seeds]
        if any(row is None for row in rows):  # not prepared: train here
            return [train_final(spec, self.final, seed, data=data).test_top1
                    for seed in self.seeds]
        return [row["test_top1"] for row in rows]

    @property
    def recipe_name(self) -> str:
        return self.final.name

    def record(self) -> dict:
        return {"seeds": list(self.seeds), "recipe": self.final.to_dict(), "score": self.score}


def plot(rows, family_rows, path: Path, title: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    fam = sorted(family_rows, key=lambda r: r["measured_ms"])
    ax.errorbar([r["measured_ms"] for r in fam], [r["top1_mean"] for r in fam],
                yerr=[r["top1_sd"] for r in fam], fmt="s-", color="tab:gray", capsize=3,
                label="width multiplier (V3-Large ×w)")
    for r in fam:
        ax.annotate(f"×{r['width_mult']:.2f}", (r["measured_ms"], r["top1_mean"]),
                    textcoords="offset points", xytext=(3, -10), fontsize=7, color="tab:gray")
    na = sorted(rows, key=lambda r: r["measured_ms"])
    ax.errorbar([r["measured_ms"] for r in na], [r["top1_mean"] for r in na],
                yerr=[r["top1_sd"] for r in na], fmt="o-", color="tab:blue", capsize=3,
                label="NetAdapt (trained from scratch)")
    save_latency_plot(fig, ax, path, title=title, ylabel=ylabel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="v3-large")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.8, 0.7],
                        help="latency targets as fractions of the start network's")
    parser.add_argument("--data", default="digits-hard")
    parser.add_argument("--resolution", type=int, default=None,
                        help="NetAdapt's data resolution (default 16; with --recipe: its own)")
    parser.add_argument("--delta", type=float, default=0.03)
    parser.add_argument("--short-steps", type=int, default=20)
    parser.add_argument("--init-epochs", type=int, default=10)
    parser.add_argument("--long-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None,
                        help="from-scratch recipe's epochs (default 10; with --recipe: its own)")
    parser.add_argument("--recipe", choices=sorted(FINAL_RECIPES),
                        help="train and score with this data set's final recipe (test top-1)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=usable_cores(),
                        help="with --recipe: trainings side by side, one thread each")
    parser.add_argument("--rounds", type=int, default=30, help="end-to-end timing rounds")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-netadapt"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "netadapt_vs_multiplier.json")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny version that only checks the benchmark runs")
    args = parser.parse_args()
    final = None
    if args.recipe:  # NetAdapt on the recipe's data; --epochs/--resolution: a trial of it
        final = FINAL_RECIPES[args.recipe].trial(
            epochs=args.epochs, resolution=args.resolution, seeds=args.seeds)
        args.data, args.resolution = final.data, final.resolution
    else:
        args.epochs = 10 if args.epochs is None else args.epochs
        args.resolution = 16 if args.resolution is None else args.resolution
    if args.smoke:
        args.targets, args.seeds, args.rounds = [0.99], 1, 3  # one NetAdapt iteration
        args.init_epochs = args.long_epochs = args.epochs = 1
        if final is not None:  # 200 images at 16 px, one epoch, one seed
            final = final.trial(epochs=1, resolution=16, seeds=1)
            args.resolution = final.resolution
        args.short_steps, args.delta = 2, 0.03
        scratch = Path(tempfile.mkdtemp(prefix="netadapt-bench-"))
        args.out, args.run_dir = scratch / "netadapt_vs_multiplier.json", scratch / "run"
    provenance = Provenance.start(vars(args))
    scoring = FinalScoring(final, Trainings(args.run_dir / "trainings.jsonl", reuse=args.resume),
                           0 if args.smoke else args.workers) if final is not None \
        else ProxyScoring(args.epochs, tuple(range(100, 100 + args.seeds)))

    started = time.perf_counter()
    data = scoring.load(args.data, args.resolution)
    if args.smoke:  # a few hundred images: the smoke checks that the benchmark runs
        data = data.subset(300, 150, seed=0)
    start = zoo.get(args.start)
    setup = LatencySetup(resolution=start.input_size)
    if args.smoke:  # V3-Small at 64 px, its table calibrated on a tiny space: seconds
        start = zoo.get("v3-small", input_size=64)
        setup = LatencySetup(resolution=start.input_size)
        from search_quality import smoke_space  # bench/ is on sys.path for its scripts

        load_predictor(setup, smoke_space(start.input_size))
    latency, info, measure_networks = device_latency(start, args.run_dir, resume=args.resume,
                                                     recalibrate=not args.smoke)
    start_ms = latency(start)
    targets = [round(f * start_ms, 3) for f in args.targets]
    settings = NetAdaptSettings(
        target_ms=min(targets), delta=args.delta, short_steps=args.short_steps,
        init_epochs=args.init_epochs, long_epochs=0, data=args.data,
        resolution=args.resolution)
    print(f"NetAdapt from {start.name}: {start_ms:.2f} ms predicted; targets "
          f"{', '.join(f'{t:.2f}' for t in targets)} ms", flush=True)

    def on_event(kind, p):
        if kind == "accepted":
            print(f"  iteration {p['iteration']}: {p['latency_ms']:.2f} ms, {p['chosen']}, "
                  f"holdout {p['accuracy']:.2f}% ({p['seconds']:.0f} s)", flush=True)

    run = NetAdapt(settings, args.run_dir, start, data, latency, resume=args.resume,
                   overwrite=not args.resume, extra_info=info, on_event=on_event)
    result = run.run()
    its = result.iterations
    snapshots = []
    for target in targets:
        hit = next((r for r in its if r["latency_ms"] <= target), None)
        if hit is None:
            print(f"target {target:.2f} ms not reached ({result.stop_reason})")
            continue
        snapshots.append((target, hit))

    # The multiplier family and the NetAdapt networks, timed together.
    widths = [0.8, 0.9, 1.0] if args.smoke else \
        [round(w, 2) for w in np.arange(0.35, 1.001, 0.05)]
    family = multiplier_family(start, widths)
    load_predictor(setup, specs=family)  # profiles what the table lacks (not used to choose)
    nets = [ArchSpec.from_dict(hit["spec"]) for _, hit in snapshots]
    measured = [float(m) for m in measure_ms(setup, [start, *nets, *family],
                                             rounds=args.rounds)]
    start_measured, net_ms, family_ms = measured[0], measured[1:1 + len(nets)], \
        measured[1 + len(nets):]
    chosen = sorted({int(np.argmin([abs(f - m) for f in family_ms])) for m in net_ms}) \
        or [len(family) - 1]  # no target reached (a noisy machine): the table stays empty
    # the family around the chosen ones too, so the plot shows the curve
    lo, hi = max(0, min(chosen) - 1), min(len(family) - 1, max(chosen) + 1)
    train_family = list(range(lo, hi + 1))
    if len(family) - 1 not in train_family:
        train_family.append(len(family) - 1)  # ×1.00, the start network itself

    scoring.prepare([family[i] for i in train_family] + nets, data)
    family_rows = []
    for i in train_family:
        scores = scoring.train(family[i], data)
        family_rows.append({"width_mult": widths[i], "measured_ms": family_ms[i],
                            "params": count_params(family[i]), "madds": count_madds(family[i]),
                            "top1": scores, "top1_mean": float(np.mean(scores)),
                            "top1_sd": float(np.std(scores)), "spec": family[i].to_dict()})
        print(f"  ×{widths[i]:.2f}: {family_ms[i]:.2f} ms, {np.mean(scores):.2f}%", flush=True)
    rows = []
    for (target, hit), spec, ms in zip(snapshots, nets, net_ms, strict=True):
        scores = scoring.train(spec, data)
        carried = None
        if args.long_epochs:
            from nas.export import load
            from nas.netadapt import FineTuner

            model = load(args.run_dir / "iterations" / f"{hit['iteration']:04d}" / "model.pt")
            tuner = FineTuner(data, dataclasses.replace(settings, long_epochs=args.long_epochs))
            carried = tuner.long(model)
        nearest = min(family_rows, key=lambda r: abs(r["measured_ms"] - ms))
        rows.append({"target_ms": target, "iteration": hit["iteration"],
                     "predicted_ms": hit["latency_ms"], "measured_ms": ms,
                     "params": count_params(spec), "madds": count_madds(spec),
                     "top1": scores, "top1_mean": float(np.mean(scores)),
                     "top1_sd": float(np.std(scores)), "carried_top1": carried,
                     "nearest_multiplier": nearest["width_mult"],
                     "nearest_multiplier_ms": nearest["measured_ms"],
                     "nearest_multiplier_top1": nearest["top1_mean"],
                     "interpolated_multiplier_top1": interpolate(family_rows, ms),
                     "spec": spec.to_dict()})

    print()
    header = (f"{'target':>7} {'NetAdapt ms':>11} {'top-1':>13} {'carried':>8} {'params':>7} "
              f"{'MAdds':>6} | {'mult':>5} {'ms':>6} {'top-1':>7} | {'mult@same ms':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        carried = f"{r['carried_top1']:.2f}" if r["carried_top1"] is not None else "-"
        interp = r["interpolated_multiplier_top1"]
        print(f"{r['target_ms']:7.2f} {r['measured_ms']:11.2f} "
              f"{r['top1_mean']:7.2f}±{r['top1_sd']:4.2f} {carried:>8} "
              f"{r['params'] / 1e6:6.2f}M {r['madds'] / 1e6:5.0f}M | "
              f"{r['nearest_multiplier']:5.2f} {r['nearest_multiplier_ms']:6.2f} "
              f"{r['nearest_multiplier_top1']:7.2f} | "
              f"{'-' if interp is None else f'{interp:.2f}':>12}")
    summary = {
        "benchmark": "netadapt_vs_multiplier",
        "start": start.name, "start_predicted_ms": start_ms, "start_measured_ms": start_measured,
        "data": data.describe(), **scoring.record(),
        "netadapt": {**settings.to_dict(), "iterations": len(its) - 1,
                     "stop_reason": result.stop_reason,
                     "trajectory": [{"iteration": r["iteration"], "latency_ms": r["latency_ms"],
                                     "accuracy": r["accuracy"], "chosen": r.get("chosen")}
                                    for r in its]},
        "latency": info, "rows": rows, "family": family_rows,
        "seconds": round(time.perf_counter() - started),
        "smoke": args.smoke,
    }
    if "path" in summary["latency"].get("table", {}):  # where the cache is: not a result
        table = summary["latency"]["table"]
        summary["latency"]["table"] = {**table, "path": Path(table["path"]).name}
    write_result(args.out, summary, provenance)
    plot(rows, family_rows, args.out.with_suffix(".png"),
         f"NetAdapt vs width multiplier from {start.name} ({data.name}, "
         f"{scoring.recipe_name}, {len(scoring.seeds)} seeds)", f"{scoring.score} (%)")
    print(f"\nwrote {args.out} and its .png ({summary['seconds']} s)")



def interpolate(family_rows, ms: float) -> float | None:
    """The multiplier family's accuracy at ``ms`` (linear between the two neighbours)."""
    fam = sorted(family_rows, key=lambda r: r["measured_ms"])
    xs = [r["measured_ms"] for r in fam]
    if not fam or ms < xs[0] or ms > xs[-1]:
        return None
    return float(np.interp(ms, xs, [r["top1_mean"] for r in fam]))


if __name__ == "__main__":
    main()
