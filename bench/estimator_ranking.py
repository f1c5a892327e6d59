"""How well does each accuracy estimator rank architectures? And how fast is training on CPU?

Architectures are picked across the latency range of the MobileNetV3 space (evenly spaced
predicted latencies from this device's cached table, drawn from size-biased samples: uniform
samples miss both ends of the range), trained stand-alone with one recipe and three seeds, and
compared with every estimator's score: Kendall tau and Spearman against the mean stand-alone
accuracy, overall and within each kind of head, and the cost per candidate. How far
stand-alone training agrees with itself bounds what any estimator can reach: each seed is
also scored against the mean of the other seeds, which is what one more independent
stand-alone run would score.

The proxy task (``--data digits-hard``, the default) is the bundled digits with fixed random
affine moves and noise, 32x32, 10 epochs at lr 0.05. ``--data fashion-mnist`` takes
stratified, seeded subsets of 5,000 training and 5,000 test images of Fashion-MNIST (Debian's
``dataset-fashion-mnist`` package; nothing downloads at run time), 28x28, 6 epochs. Fashion-
MNIST's larger validation set is less noisy, but on it architectures of every size reach
nearly the same accuracy, while on digits-hard accuracy grows with size (docs/accuracy.md). The
learning rate is 0.05, not the training default 0.1: at 0.1, SGD diverges early for
architectures with MnasNet's head (its classifier reads 1280 batch-normalised features
directly). At 0.05 some still train unstably; ``bench/reference_lr.py`` trains the samples
again at 0.025 and scores the stored estimator scores against each architecture at its better
rate.

Also: training throughput (images/s) of ``TrainEstimator``'s loop (channels_last, all cores)
against a plain eager loop with PyTorch's defaults, for V3-Small and V3-Large on digits at
32x32, side by side in the same run.

    python bench/estimator_ranking.py [--data digits-hard] [--archs 24] [--epochs N] [--lr 0.05]
                                      [--finetune-lr 0.05] [--supernet-steps 400]
                                      [--supernet-seeds 1] [--arch-seed 11] [--reuse-reference]
                                      [--smoke]

Run on a second, independent sample (its own JSON, estimator_ranking-archs23.json):
``--arch-seed 23 --supernet-seeds 3``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import Provenance, write_result  # noqa: E402
from standalone import head_groups, kendall, proxy_data, seed_agreement, train_standalone  # noqa: E402
from train_throughput import train_throughput  # noqa: E402

from latency_models.device import cpu_model  # noqa: E402
from nas.accuracy.supernet import (  # noqa: E402
    SupernetEstimator,
    SupernetRecipe,
    finetune_recipe,
    largest_spec,
    smallest_spec,
    train_supernet,
)
from nas.accuracy.train import Recipe, TrainEstimator  # noqa: E402
from nas.accuracy.zero_cost import ZeroCostEstimator  # noqa: E402
from nas.data import load_data  # noqa: E402
from nas.spec import ArchSpec  # noqa: E402
from search_spaces.mobilenetv3 import default_space  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "estimator_ranking.json"
ARCH_SEED = 11  # the committed sample of architectures; other seeds write their own JSON


def pick_architectures(count: int, seed: int, smoke: bool) -> tuple[list, list[float] | None]:
    """``count`` specs at evenly spaced predicted latencies (this device's cached table), each
    the nearest of 4,000 size-biased samples (``BlockwiseSpace.sample_sized``, biases
    log-uniform in [0.2, 5]); random in smoke mode. They reach both ends of the space's latency
    range, which uniform samples miss."""
    space = default_space()
    rng = np.random.default_rng(seed)
    if smoke:
        return [space.sample(rng, name=f"arch-{i}") for i in range(count)], None
    from latency_models.store import LatencySetup, load_predictor

    biases = np.exp(rng.uniform(np.log(0.2), np.log(5.0), 4000))
    pool = [space.sample_sized(rng, float(b), name=f"arch-{i}") for i, b in enumerate(biases)]
    predictor, _ = load_predictor(LatencySetup(threads=1), space)
    latency = predictor.predict(pool)
    chosen: list[int] = []
    for target in np.linspace(latency.min(), latency.max(), count):
        distance = np.abs(latency - target)
        distance[chosen] = np.inf  # distinct architectures
        chosen.append(int(np.argmin(distance)))
    return [pool[i] for i in chosen], [float(latency[i]) for i in chosen]


def stored_architectures(path: Path) -> tuple[list, list[float] | None]:
    """The architectures (and their predicted latencies) of a previous run's JSON."""
    try:
        archs = json.loads(path.read_text())["architectures"]
        specs = [ArchSpec.from_text(a["text"]) for a in archs]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--same-architectures: cannot read the architectures of {path}: "
                         f"{exc}") from None
    latencies = [a.get("predicted_latency_ms_224") for a in archs]
    return specs, (None if None in latencies else latencies)


def results_path(arch_seed: int) -> Path:
    """The JSON of a sample of architectures: the committed sample's, or one per other seed."""
    return RESULTS if arch_seed == ARCH_SEED else RESULTS.with_name(
        f"{RESULTS.stem}-archs{arch_seed}.json")


def stored_reference(specs: list, settings: dict,
                     path: Path | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The previous run's stand-alone top-1 and seconds (seeds x archs), if it trained these
    architectures with these settings: at most ``settings["seeds"]`` seeds, so that a run
    asking for more seeds trains only the missing ones. Else None."""
    try:
        old = json.loads((path or RESULTS).read_text())
        archs = old["architectures"]
        if (any(old["settings"].get(key) != value for key, value in settings.items()
                if key != "seeds")
                or [a["text"] for a in archs] != [s.to_text() for s in specs]):
            return None
        seeds = settings["seeds"]
        return (np.array([a["standalone_top1"][:seeds] for a in archs], dtype=float).T,
                np.array([a["standalone_seconds"][:seeds] for a in archs], dtype=float).T)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=None,
                        help="stand-alone reference epochs (default: the proxy task's)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="learning rate of the stand-alone reference training")
    parser.add_argument("--finetune-lr", type=float, default=0.05,
                        help="learning rate of the supernet's 60-step fine-tune")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--supernet-steps", type=int, default=400)
    parser.add_argument("--supernet-seeds", type=int, default=1,
                        help="supernets trained with seeds 0..N-1; each is scored with 60 "
                             "fine-tuning steps, and the spread of their tau is reported")
    parser.add_argument("--arch-seed", type=int, default=ARCH_SEED,
                        help=f"seed of the sample of architectures; other than {ARCH_SEED} "
                             "(the committed sample) results go to "
                             "estimator_ranking-archs<seed>.json")
    parser.add_argument("--data", default="digits-hard",
                        help="digits-hard, fashion-mnist (Debian's dataset-fashion-mnist) or any "
                             "nas data source")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="take the stand-alone results from the previous run's JSON when it "
                             "trained the same architectures with the same settings (only "
                             "missing seeds are trained)")
    parser.add_argument("--same-architectures", action="store_true",
                        help="score the architectures of the previous run's JSON again instead "
                             "of picking them from this device's latency table (with "
                             "--reuse-reference: a before/after comparison of the estimators "
                             "on one reference)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run; no JSON")
    args = parser.parse_args()
    # wide enough for the table's columns when written to a file or a pipe
    console = Console(width=None if sys.stdout.isatty() else 200)
    data, proxy = proxy_data(args.data, args.smoke)
    args.epochs = args.epochs or proxy["epochs"]
    if args.smoke:
        args.archs, args.epochs, args.seeds, args.supernet_steps = 3, 1, 3, 2
    provenance = Provenance.start(vars(args))
    resolution = data.resolution
    console.print(f"proxy task: {data.describe()}")
    results_file = results_path(args.arch_seed)
    if args.same_architectures:
        specs, latencies = stored_architectures(results_file)
        args.archs = len(specs)
    else:
        specs, latencies = pick_architectures(args.archs, seed=args.arch_seed, smoke=args.smoke)

    # Stand-alone training: the reference ranking, with its seed-to-seed agreement.
    reference_settings = {"epochs": args.epochs, "lr": args.lr, "seeds": args.seeds,
                          "data": data.name, "resolution": resolution}
    stored = (stored_reference(specs, reference_settings, results_file)
              if args.reuse_reference else None)
    standalone, seconds = np.zeros((args.seeds, len(specs))), np.zeros((args.seeds, len(specs)))
    first = 0
    if stored is not None:
        first = stored[0].shape[0]
        standalone[:first], seconds[:first] = stored
        console.print(f"stand-alone results of {first} seed(s) reused from "
                      f"{results_file.relative_to(ROOT)}")
    for seed in range(first, args.seeds):
        standalone[seed], seconds[seed] = train_standalone(
            specs, data, Recipe(epochs=args.epochs, lr=args.lr, seed=seed), console)
    train_cost = seconds.ravel().tolist()
    reference = np.nanmean(standalone, axis=0)

    scores: dict[str, tuple[list[float], float]] = {}
    one_epoch = TrainEstimator(data, Recipe(epochs=1, seed=100))
    results = [one_epoch.estimate(s) for s in specs]
    scores["train-1-epoch"] = ([r.score for r in results],
                               float(np.mean([r.cost_seconds for r in results])))
    for proxy in ("synflow", "naswot", "params"):
        estimator = ZeroCostEstimator(data, proxy)
        results = [estimator.estimate(s) for s in specs]
        scores[f"zero-cost:{proxy}"] = ([r.score for r in results],
                                        float(np.mean([r.cost_seconds for r in results])))
    finetuned_name = f"supernet+finetune-60-lr{args.finetune_lr:g}"
    supernet_seconds, extremes = [], {}
    for supernet_seed in range(args.supernet_seeds):
        start = time.perf_counter()
        recipe = SupernetRecipe(steps=args.supernet_steps, batch_size=32, random_subnets=1,
                                sort_every=max(1, args.supernet_steps // 3), seed=supernet_seed)
        supernet = train_supernet(default_space(), data, recipe,
                                  on_step=lambda s, n, loss, k=supernet_seed: s % 50 == 0
                                  and console.print(f"supernet {k} step {s}/{n}: loss {loss:.3f}"))
        supernet_seconds.append(time.perf_counter() - start)
        share = supernet_seconds[-1] / len(specs)  # its training, spread over the candidates
        # Inherited weights as they are, then plus a short fine-tune: about one epoch at a low
        # rate, and about three at a higher one. Further supernets: the latter only.
        variants = ((0, None, "supernet"), (20, 0.01, "supernet+finetune-20"),
                    (60, args.finetune_lr, finetuned_name))
        if supernet_seed:
            variants = ((60, args.finetune_lr,
                         f"{finetuned_name} (supernet seed {supernet_seed})"),)
        for steps, lr, name in variants:
            finetune = finetune_recipe(1 if args.smoke else steps, lr=lr) if steps else None
            estimator = SupernetEstimator(supernet, data, finetune=finetune)
            results = [estimator.estimate(s) for s in specs]
            scores[name] = ([r.score for r in results],
                            float(np.mean([r.cost_seconds for r in results])) + share)
            if not steps:  # the sandwich rule's own sub-networks, beside the sampled ones
                extremes = {which: estimator.estimate(pick(supernet.space)).score
                            for which, pick in (("largest", largest_spec),
                                                ("smallest", smallest_spec))}
    if latencies is not None:  # the baseline "slower is better", free
        scores["predicted latency"] = (list(latencies), 0.0)

    groups = head_groups(specs)
    agreement = seed_agreement(standalone, groups)
    rows = []
    for name, (values, cost) in scores.items():
        values = np.array([np.nan if v is None else v for v in values], dtype=float)
        ok = ~np.isnan(values) & ~np.isnan(reference)
        rows.append({"estimator": name,
                     "kendall_tau": float(kendalltau(values[ok], reference[ok]).statistic),
                     "spearman": float(spearmanr(values[ok], reference[ok]).statistic),
                     "kendall_tau_within_head": {group: kendall(values[mask], reference[mask])
                                                 for group, mask in groups.items()},
                     "cost_seconds_per_candidate": cost, "failed": int((~ok).sum())})
    # The fine-tuned supernet's tau over supernet seeds: how much one supernet's figure says.
    taus = [row["kendall_tau"] for row in rows if row["estimator"].startswith(finetuned_name)]
    spread = {"estimator": finetuned_name, "kendall_tau": taus, "mean": float(np.mean(taus)),
              "min": float(np.min(taus)), "max": float(np.max(taus))}
    # Throughput on 32x32 digits whatever the proxy task, as the issue asks and to compare runs.
    throughput_data = load_data("digits-hard", 16 if args.smoke else 32)
    throughput = train_throughput(throughput_data, steps=3 if args.smoke else 20, batch=64,
                                  compiled=not args.smoke)

    table = Table(title=f"ranking of {len(specs)} architectures vs stand-alone training "
                        f"({args.epochs} epochs at lr {args.lr:g}, {args.seeds} seeds, {data.name} "
                        f"{resolution}×{resolution})", title_justify="left")
    sizes = {group: int(mask.sum()) for group, mask in groups.items()}
    for column in ("estimator", "Kendall τ", "Spearman", "s / candidate",
                   *(f"τ, {group} ({n})" for group, n in sizes.items())):
        table.add_column(column, justify="left" if column == "estimator" else "right")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for row in rows:
        table.add_row(row["estimator"], f"{row['kendall_tau']:.3f}", f"{row['spearman']:.3f}",
                      f"{row['cost_seconds_per_candidate']:.2f}",
                      *(fmt(row["kendall_tau_within_head"][g]) for g in groups))
    if args.seeds > 2:
        table.add_row("(stand-alone: one seed vs the mean of the others)",
                      fmt(agreement["mean_leave_one_out"]), "", f"{np.mean(train_cost):.2f}",
                      *(fmt(agreement["within_head_mean_leave_one_out"][g]) for g in groups))
    if len(taus) > 1:
        table.add_row(f"({finetuned_name}: mean over {len(taus)} supernets; "
                      f"{spread['min']:.3f}-{spread['max']:.3f})", f"{spread['mean']:.3f}")
    table.add_row("(stand-alone: seed vs seed, mean over pairs)", fmt(agreement["mean_pair"]),
                  "", f"{np.mean(train_cost):.2f}")
    console.print(table)
    side = throughput_data.resolution
    speed = Table(title=f"training throughput, images/s (batch 64, {side}×{side})",
                  title_justify="left")
    for column in ("model", "plain eager loop", "TrainEstimator loop", "speed-up",
                   "+ torch.compile", "compile s"):
        speed.add_column(column, justify="left" if column == "model" else "right")
    for row in throughput:
        compiled = row["compiled_images_per_s"]
        speed.add_row(row["model"], f"{row['plain_images_per_s']:.0f}",
                      f"{row['estimator_images_per_s']:.0f}", f"{row['speedup']:.2f}×",
                      "-" if compiled is None else f"{compiled:.0f}",
                      "-" if compiled is None else f"{row['compile_seconds']:.0f}")
    console.print(speed)
    if not args.smoke:
        payload = {
            "fingerprint": {"cpu": cpu_model(), "cores": os.cpu_count(),
                            "torch": torch.__version__},
            "settings": {"archs": len(specs), "epochs": args.epochs, "lr": args.lr,
                         "finetune_lr": args.finetune_lr,
                         "seeds": args.seeds, "data": data.name, "resolution": resolution,
                         "supernet": dataclasses.asdict(dataclasses.replace(recipe, seed=0)),
                         "supernet_seeds": args.supernet_seeds,
                         "supernet_train_seconds": supernet_seconds[0],
                         "supernet_train_seconds_each": supernet_seconds},
            "supernet_extremes_top1": extremes,
            "architectures": [{"name": s.name, "text": s.to_text(),
                               "predicted_latency_ms_224": lat,
                               "standalone_top1": standalone[:, i].tolist(),
                               "standalone_seconds": seconds[:, i].tolist()}
                              for i, (s, lat) in enumerate(zip(specs, latencies,
                                                               strict=True))],
            "scores": {k: v[0] for k, v in scores.items()},
            "ranking": rows, "seed_to_seed_kendall_tau": agreement["mean_pair"],
            "seed_agreement": agreement,
            "supernet_seed_spread": spread,
            "throughput": throughput,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_result(results_file, payload, provenance)
        console.print(f"wrote {results_file.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
