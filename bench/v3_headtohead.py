"""MobileNetV3 head-to-head on Fashion-MNIST: the V3 width family against the search's networks.

Every network is trained from scratch with the data set's final recipe
(``nas.accuracy.final.FINAL_RECIPES``, docs/accuracy.md "Final training") and each of its
seeds, and scored once on the official test images. Deploy latency is the search's setting
(1 thread, batch 1, 224×224, end to end, minimum over interleaved rounds), every network timed
side by side in one session at the end of the run.

1. The family: V3-Small ×0.5/0.75/1.0/1.25 and V3-Large ×0.5/0.75/1.0 (``--family``).
2. The discrimination check: is each step of V3-Small ×0.5 < ×0.75 < ×1.0 < V3-Large ×1.0
   larger than twice the larger of the two seed standard deviations? Without it the task
   cannot tell the family apart, let alone a found network from it.
3. ``--found`` (optional): ``nas reproduce --search`` (block search, scored by a supernet
   trained on the same data or with ``--search-estimator train`` by training each candidate,
   then NetAdapt) with V3-Small's and V3-Large's latency (× ``--budget-fraction``) as budgets;
   each network found is trained with the same recipe and seeds and timed with the family.

Trainings are kept in ``--cache`` (one JSON line each, keyed by the network, the recipe and
the seed) as they finish; ``--resume`` reuses them, so the trainings can be run in chunks
(``--train-only --stop-after MINUTES``) and the timing on its own at the end.

    python bench/v3_headtohead.py [--seeds 3] [--found] [--smoke]
    python bench/v3_headtohead.py --epochs N --resolution PX --train-images N --train-only
                                  # a trial of the recipe: its name says what changed

Prints a table; writes bench/results/v3_headtohead.json and v3_headtohead.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import Provenance, portable, save_latency_plot, write_result  # noqa: E402

from latency_models.store import LatencySetup, measure_ms  # noqa: E402
from nas.accuracy.final import (  # noqa: E402
    FINAL_RECIPES,
    FinalRecipe,
    Trainings,
    recipe_setting,
    train_all,
    training_key,
)
from nas.build import count_params  # noqa: E402
from nas.errors import EstimatorError  # noqa: E402
from nas.flops import count_madds  # noqa: E402
from nas.spec import ArchSpec  # noqa: E402
from nas.threads import usable_cores  # noqa: E402
from search_spaces import zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FAMILY = ("v3-small:0.5", "v3-small:0.75", "v3-small:1.0", "v3-small:1.25",
          "v3-large:0.5", "v3-large:0.75", "v3-large:1.0")
# The chain the task must separate (issue 28): each step > 2 seed standard deviations.
CHAIN = ("v3-small_x0.50", "v3-small_x0.75", "v3-small_x1.00", "v3-large_x1.00")
TARGETS = {"v3-small": "mobilenet_v3_small", "v3-large": "mobilenet_v3_large"}


def family_spec(entry: str, input_size: int = 224) -> ArchSpec:
    """``v3-small:0.75`` -> V3-Small at width ×0.75, as a concrete (scaled) spec."""
    model, _, width = entry.partition(":")
    mult = float(width or 1.0)
    spec = zoo.get(model, width_mult=mult, input_size=input_size).scaled()
    return dataclasses.replace(spec, name=family_name(entry))


def family_name(entry: str) -> str:
    """``v3-small:0.75`` -> ``v3-small_x0.75``, the network's name in the result file."""
    model, _, width = entry.partition(":")
    return f"{model}_x{float(width or 1.0):.2f}"


def entry(spec: ArchSpec, final: FinalRecipe, trainings: Trainings, latency_ms: float) -> dict:
    rows = [trainings.get(training_key(spec, final, seed)) for seed in final.seeds]
    accs = [r["test_top1"] for r in rows]
    return {"name": spec.name, "latency_ms": latency_ms,
            "acc_mean": statistics.mean(accs),
            "acc_std": _sd(accs),
            "seeds": len(accs), "test_top1": accs, "val_top1": [r["val_top1"] for r in rows],
            "train_seconds": [r["seconds"] for r in rows],
            "params": count_params(spec), "madds": count_madds(spec)}


def discrimination(family: list[dict]) -> dict | None:
    """Each step of ``CHAIN``: the gap of test accuracy means and whether it exceeds twice the
    larger seed standard deviation of its two networks."""
    by_name = {f["name"]: f for f in family}
    if not all(name in by_name for name in CHAIN):
        return None
    steps = []
    for low, high in zip(CHAIN, CHAIN[1:], strict=False):
        a, b = by_name[low], by_name[high]
        gap = b["acc_mean"] - a["acc_mean"]
        sd = max(a["acc_std"], b["acc_std"])
        steps.append({"from": low, "to": high, "gap": gap, "larger_std": sd,
                      "separated": gap > 2 * sd})
    return {"chain": list(CHAIN), "steps": steps,
            "discriminative": all(s["separated"] for s in steps)}


def verdict(found: dict, family: list[dict]) -> dict | None:
    """Issue 28's goal for one found network against its V3 (``found["target"]`` at ×1.0, in
    ``family``): above the family's curve, i.e. at no more than the V3's measured latency a
    test accuracy at least the V3's plus twice the larger seed sd of the two; or the V3's
    accuracy at no more than 0.85 × its latency."""
    v3 = next((f for f in family if f["name"] == family_name(f"{found['target']}:1.0")), None)
    if v3 is None:
        return None
    sd = max(found["acc_std"], v3["acc_std"])
    gap = found["acc_mean"] - v3["acc_mean"]
    ratio = found["latency_ms"] / v3["latency_ms"]
    more_accurate = ratio <= 1 and gap >= 2 * sd
    as_accurate_faster = ratio <= 0.85 and gap >= 0
    return {"against": v3["name"], "latency_ratio": ratio, "acc_gap": gap, "larger_std": sd,
            "wins_by_seed": sum(a > b for a, b in zip(found["test_top1"], v3["test_top1"],
                                                      strict=False)),
            "more_accurate_at_its_latency": more_accurate,
            "as_accurate_at_085_latency": as_accurate_faster,
            "met": more_accurate or as_accurate_faster}


def search_settings(target: str, args, data_name: str, seed: int = 0):
    """The pipeline's settings of --found's search at ``target``'s latency with search seed
    ``seed`` (checked as they are built: a bad one is a ``NasError``)."""
    from nas.pipeline import PipelineSettings

    return PipelineSettings(
        model=TARGETS[target], strategy=args.strategy, trials=args.trials, data=data_name,
        supernet_steps=args.supernet_steps, estimator=getattr(args, "search_estimator",
                                                              "supernet"),
        epochs=getattr(args, "search_epochs", 1),
        resolution=args.final.resolution, init_epochs=args.init_epochs,
        short_steps=args.short_steps, long_epochs=args.long_epochs, delta=args.delta,
        rounds=args.rounds, population=getattr(args, "population", None),
        stage_moves=getattr(args, "stage_moves", 0.0),
        reward=getattr(args, "search_reward", None),
        budget_fraction=getattr(args, "budget_fraction", 1.0),
        seed=seed, rescore=getattr(args, "rescore", 0),
        seed_arch=TARGETS[target] if getattr(args, "search_from", "v3") == "v3" else None)


def found_name(target: str, seed: int) -> str:
    """The found network of ``target``'s search with ``seed`` (seed 0: as before seeds)."""
    return f"found_{target}" if seed == 0 else f"found_{target}_seed{seed}"


def found_dir(args, target: str, seed: int) -> Path:
    """That search's run directory: ``found-{target}``, ``found-{target}-seed{seed}``."""
    return args.run_dir / (f"found-{target}" if seed == 0 else f"found-{target}-seed{seed}")


def find(target: str, budget_ms: float, args, data_name: str, seed: int = 0,
         **options) -> ArchSpec:
    """Block search (seed ``seed``), then NetAdapt (``nas reproduce --search``) on the
    recipe's data, with ``budget_ms`` (the V3 network's latency measured in this run) as the
    target. ``options`` go to ``reproduce_search`` (tests: a synthetic device)."""
    from nas.cli.progress import netadapt_events, pipeline_events, progress
    from nas.pipeline import reproduce_search

    settings = search_settings(target, args, data_name, seed)
    with progress() as bar:  # as `nas reproduce --search` shows it: a terminal or a log
        task = bar.add_task(f"{target}: measuring", total=None)
        summary = reproduce_search(
            settings, found_dir(args, target, seed), target_ms=budget_ms,
            workers=getattr(args, "workers", 1),
            on_event=pipeline_events(bar, task, TARGETS[target]),
            on_search_result=lambda _result, done, _total: bar.update(task, completed=done),
            on_netadapt_event=netadapt_events(bar, task), **options)
    spec = ArchSpec.from_dict(summary["found"]["spec"])
    return dataclasses.replace(spec, name=found_name(target, seed), input_size=224)


def search_record(run_dir: Path) -> dict:
    """How the pipeline in ``run_dir`` chose its network: the search's winning trial, its
    search-time score and predicted latency, and the rescored finalists (if any)."""
    search = json.loads((run_dir / "summary.json").read_text())["search"]
    return {k: search.get(k) for k in ("trial", "predicted_ms", "proxy_accuracy", "rescored")}


def found_budgets(family: list[ArchSpec], args, input_size: int) -> dict[str, float]:
    """The search's budgets: V3-Small's and V3-Large's latency (those in ``family``), measured
    now, among the family. Kept in the run directory: with ``--resume`` a run continues with
    the budgets its searches started with (a budget measured again would differ by the timer's
    noise, and the searches would no longer resume); without it, earlier searches are removed."""
    path = args.run_dir / "budgets.json"
    if args.resume and path.exists():
        budgets = json.loads(path.read_text())["budgets_ms"]
        print(f"budgets as measured when these searches started: {budgets}", flush=True)
        return budgets
    for target in TARGETS:  # every search seed's
        for old in args.run_dir.glob(f"found-{target}*"):
            shutil.rmtree(old, ignore_errors=True)
    measured = dict(zip((s.name for s in family), (float(m) for m in measure_ms(
        LatencySetup(threads=1, resolution=input_size), family, rounds=args.rounds)),
        strict=True))
    budgets = {target: measured[family_name(f"{target}:1.0")] for target in TARGETS
               if family_name(f"{target}:1.0") in measured}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"budgets_ms": budgets, "resolution": input_size,
                                "threads": 1}, indent=2) + "\n")
    print(f"budgets measured: {budgets}", flush=True)
    return budgets


def netadapt_rows(path: Path, final: FinalRecipe) -> list[dict]:
    """Issue 28's ``netadapt_vs_multiplier`` rows from a ``bench/netadapt_vs_multiplier.py
    --recipe`` result trained with ``final``: each target's NetAdapt network against the
    width multiplier nearest to it in measured latency (same recipe and test images; its
    own seeds, each row saying how many)."""
    result = json.loads(path.read_text())

    def settings(recipe: dict | None) -> dict | None:
        return recipe and {k: v for k, v in recipe.items() if k != "seeds"}

    if settings(result.get("recipe")) != settings(final.to_dict()):
        raise SystemExit(f"{path} was not trained with this recipe ({final.name}): run "
                         f"bench/netadapt_vs_multiplier.py --recipe with the same settings")
    family = {r["width_mult"]: r for r in result["family"]}
    rows = []
    for r in result["rows"]:
        nearest = family[r["nearest_multiplier"]]
        rows.append({
            "target_ms": r["target_ms"], "netadapt_ms": r["measured_ms"],
            "netadapt_acc_mean": r["top1_mean"], "netadapt_acc_std": _sd(r["top1"]),
            "multiplier": nearest["width_mult"], "multiplier_ms": nearest["measured_ms"],
            "multiplier_acc_mean": nearest["top1_mean"], "multiplier_acc_std":
                _sd(nearest["top1"]), "seeds": len(r["top1"])})
    return rows


def seeds_by_target(entries: list[str], targets: list[str]) -> dict[str, list[int]]:
    """``--search-seeds``: each entry a seed for every target (``1``) or for one
    (``v3-small:1``); per target, its seeds in order, each once. A bad entry: ValueError."""
    seeds: dict[str, list[int]] = {target: [] for target in targets}
    for text in entries:
        target, _, number = text.rpartition(":")
        if target and target not in TARGETS:
            raise ValueError(f"--search-seeds {text}: no target {target!r} (known: "
                             f"{', '.join(TARGETS)})")
        try:
            seed = int(number)
        except ValueError:
            raise ValueError(f"--search-seeds takes SEED or TARGET:SEED, got {text!r}") from None
        for name in ([target] if target else targets):
            if name in seeds and seed not in seeds[name]:
                seeds[name].append(seed)
    return seeds


def reproduction(found: list[dict]) -> dict[str, dict]:
    """Per target: the search seeds run and how many of their found networks met the goal
    (a win is a claim once other search seeds find one too)."""
    out: dict[str, dict] = {}
    for row in found:
        if row.get("goal") is None:
            continue
        record = out.setdefault(row["target"], {"search_seeds": [], "met": 0})
        record["search_seeds"].append(row.get("search_seed", 0))
        record["met"] += bool(row["goal"]["met"])
    return out


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def print_table(family: list[dict], found: list[dict], disc: dict | None,
                reproduced: dict[str, dict] | None = None) -> None:
    print(f"\n{'network':<28} {'latency ms':>10} {'test top-1 (mean ± sd)':>24} "
          f"{'seeds':>5} {'params':>7} {'MAdds':>6}")
    for r in [*family, *found]:
        print(f"{r['name']:<28} {r['latency_ms']:10.2f} {r['acc_mean']:15.2f} ± "
              f"{r['acc_std']:4.2f}   {r['seeds']:5d} {r['params'] / 1e6:6.2f}M "
              f"{r['madds'] / 1e6:5.0f}M")
    if disc:
        print("\ndiscrimination (each step > 2 × the larger seed sd?):")
        for s in disc["steps"]:
            print(f"  {s['from']} -> {s['to']}: {s['gap']:+.2f} points, 2 sd = "
                  f"{2 * s['larger_std']:.2f}: {'yes' if s['separated'] else 'NO'}")
    for r in found:
        g = r.get("goal")
        if g:
            print(f"\n{r['name']} against {g['against']}: latency x{g['latency_ratio']:.3f}, "
                  f"{g['acc_gap']:+.2f} points (2 sd = {2 * g['larger_std']:.2f}), ahead on "
                  f"{g['wins_by_seed']} of {r['seeds']} seeds: goal "
                  f"{'met' if g['met'] else 'NOT met'}")
    for target, record in (reproduced or {}).items():
        print(f"\n{target}: the goal met by {record['met']} of {len(record['search_seeds'])} "
              f"search seeds ({', '.join(map(str, record['search_seeds']))})")


def plot(family: list[dict], found: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for model, label, colour in (("v3-small", "MobileNetV3-Small", "tab:gray"),
                                 ("v3-large", "MobileNetV3-Large", "black")):
        rows = sorted((r for r in family if r["name"].startswith(model)),
                      key=lambda r: r["latency_ms"])
        if not rows:
            continue
        ax.errorbar([r["latency_ms"] for r in rows], [r["acc_mean"] for r in rows],
                    yerr=[r["acc_std"] for r in rows], fmt="s-", color=colour, capsize=3,
                    label=f"{label} ×width")
        for r in rows:
            ax.annotate(f"×{r['name'].partition('_x')[2]}", (r["latency_ms"], r["acc_mean"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=7, color=colour)
    for r in found:
        ax.errorbar([r["latency_ms"]], [r["acc_mean"]], yerr=[r["acc_std"]], fmt="o",
                    color="tab:red", capsize=3, label=r["name"])
    save_latency_plot(fig, ax, path, title=title, ylabel="test top-1 (%)")


def smoke_recipe(final: FinalRecipe) -> FinalRecipe:
    """Seconds-long: 200 training images at 16×16, a few steps, two seeds."""
    return dataclasses.replace(final, name=f"{final.name} (smoke)", resolution=16,
                               train_images=200, seeds=(0, 1),
                               recipe=dataclasses.replace(final.recipe, epochs=1, batch_size=32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fashion-mnist", choices=sorted(FINAL_RECIPES))
    parser.add_argument("--family", nargs="+", default=list(FAMILY),
                        help="zoo name:width entries (default: the V3 width family)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="the recipe's first N seeds (default: all of them)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (a trial)")
    parser.add_argument("--resolution", type=int, help="override the recipe's resolution (px)")
    parser.add_argument("--train-images", type=int, metavar="N",
                        help="train on a stratified subset of N training images (a trial)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="settings", help="override a training-recipe field, e.g. "
                        "label_smoothing=0 or weight_decay=1e-5 (a trial; repeatable)")
    parser.add_argument("--dropout", type=float,
                        help="the head's dropout for every network (a trial)")
    parser.add_argument("--rounds", type=int, default=30, help="end-to-end timing rounds")
    parser.add_argument("--found", action="store_true",
                        help="also search (then NetAdapt) at V3-Small's and V3-Large's latency")
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS),
                        help="whose latency --found searches at (each needs its x1.0 in the "
                             "family; default: both)")
    parser.add_argument("--search-from", choices=("v3", "paper"), default="v3",
                        help="v3: each search starts from the V3 network whose latency is its "
                             "budget (evolution's first population is mutations of it); "
                             "paper: the paper's start "
                             "(V3-Large: MnasNet-A1, V3-Small: random networks)")
    parser.add_argument("--strategy", default="evolution")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--population", type=int, default=None,
                        help="evolution's population (default: a third of the trials, so that "
                             "the search selects; see nas.pipeline.PipelineSettings)")
    parser.add_argument("--stage-moves", type=float, default=0.0, metavar="P",
                        help="evolution: each stage of a mutant, with probability P, gets one "
                             "value of one block option in all its blocks (default 0: "
                             "Once-for-All's per-decision mutation)")
    parser.add_argument("--search-estimator", default="supernet",
                        help="the search's accuracy estimator, as nas-search's --estimator "
                             "(supernet, or train: each candidate trained from scratch)")
    parser.add_argument("--search-epochs", type=int, default=1,
                        help="with --search-estimator train: epochs per candidate")
    parser.add_argument("--search-reward", default=None,
                        help="the search's reward preset (default: the paper's: soft-small for "
                             "V3-Small, soft for V3-Large); hard with --budget-fraction 0.85 "
                             "asks for the goal's second route")
    parser.add_argument("--budget-fraction", type=float, default=1.0,
                        help="the search's budget and NetAdapt's target as this share of the "
                             "V3 network's latency (default 1.0)")
    parser.add_argument("--search-seeds", nargs="+", default=["0"], metavar="SEED",
                        help="one search (and NetAdapt) per seed and target, each found network "
                             "trained and timed (a win is a claim once other search seeds "
                             "find one too; default: 0); TARGET:SEED for one target only")
    parser.add_argument("--rescore", type=int, default=0, metavar="N",
                        help="the search's N best finalists (measured within the budget) "
                             "trained once more with the recipe (another seed than the "
                             "report's), the best validation top-1 winning (default 0: the "
                             "search's estimator decides)")
    parser.add_argument("--supernet-steps", type=int, default=400,
                        help="the search's estimator: a supernet trained on the recipe's data")
    parser.add_argument("--init-epochs", type=int, default=2)
    parser.add_argument("--short-steps", type=int, default=40)
    parser.add_argument("--long-epochs", type=int, default=0)
    parser.add_argument("--delta", type=float, default=0.03,
                        help="NetAdapt's latency cut per iteration (fraction)")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "v3_headtohead" /
                        "trainings.jsonl", help="finished trainings, one JSON line each")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the trainings in --cache (same network, recipe and seed)")
    parser.add_argument("--train-only", action="store_true",
                        help="train what is missing, then stop (no timing, no result file)")
    parser.add_argument("--stop-after", type=float, metavar="MINUTES",
                        help="with --train-only: start no training after this many minutes")
    parser.add_argument("--workers", type=int, default=usable_cores(),
                        help="trainings (and --found's search candidates) side by side, one "
                             "thread each")
    parser.add_argument("--netadapt", type=Path, metavar="JSON",
                        help="a bench/netadapt_vs_multiplier.py --recipe result with this "
                             "recipe: its rows become the result's netadapt_vs_multiplier")
    parser.add_argument("--out", type=Path, default=RESULTS / "v3_headtohead.json")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long check that everything runs (numbers meaningless)")
    args = parser.parse_args()
    try:
        args.search_seeds = seeds_by_target(args.search_seeds, args.targets)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    final = FINAL_RECIPES[args.recipe]
    input_size = 224
    if args.smoke:
        final = smoke_recipe(final)
        input_size, args.rounds = 64, 3
        args.family = ["v3-small:0.5", "v3-small:1.0"]
        scratch = Path(tempfile.mkdtemp(prefix="v3-headtohead-"))
        args.out, args.cache, args.resume = scratch / "v3_headtohead.json", \
            scratch / "trainings.jsonl", False
        if args.found or args.netadapt:  # make bench --smoke passes make bench's arguments
            print("smoke: --found and --netadapt skipped (a search needs minutes; a result "
                  "of another recipe)", flush=True)
            args.found, args.netadapt = False, None
    try:
        settings = dict(recipe_setting(text) for text in args.settings)
        final = final.trial(epochs=args.epochs, resolution=args.resolution, seeds=args.seeds,
                            train_images=args.train_images, dropout=args.dropout, **settings)
    except EstimatorError as error:
        raise SystemExit(f"error: {error}") from None
    args.final, args.run_dir = final, args.cache.parent
    if args.found:  # the search's settings, checked before the family trains
        from nas.errors import NasError
        try:
            for target in args.targets:
                for seed in args.search_seeds[target]:
                    search_settings(target, args, final.data, seed)
        except NasError as error:
            raise SystemExit(f"error: {error}") from None
    try:  # checked before any training
        netadapt = netadapt_rows(args.netadapt, final) if args.netadapt else []
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"--netadapt {args.netadapt}: not a netadapt_vs_multiplier result "
                         f"({error})") from None
    provenance = Provenance.start({k: v for k, v in vars(args).items() if k != "final"})
    started = time.perf_counter()

    family = [family_spec(e, input_size) for e in args.family]
    trainings = Trainings(args.cache, reuse=args.resume)
    print(f"recipe {final.name}: {json.dumps(final.to_dict())}", flush=True)
    deadline = time.monotonic() + 60 * args.stop_after if args.stop_after else None
    done = train_all(family, final, trainings, deadline if args.train_only else None,
                     args.workers)
    if args.train_only:
        print(f"trainings {'complete' if done else 'stopped at the time limit'}; "
              f"{len(trainings.rows)} in {args.cache}")
        return

    found_specs: list[tuple[str, int, ArchSpec]] = []
    if args.found:
        for target, budget in found_budgets(family, args, input_size).items():
            if target in args.targets:
                for seed in args.search_seeds[target]:
                    found_specs.append((target, seed, find(target, budget, args, final.data,
                                                           seed)))
        train_all([spec for _, _, spec in found_specs], final, trainings, None, args.workers)

    # Every network timed side by side, in one session.
    everything = [*family, *(spec for _, _, spec in found_specs)]
    latencies = [float(m) for m in measure_ms(LatencySetup(threads=1, resolution=input_size),
                                              everything, rounds=args.rounds)]
    family_rows = [entry(s, final, trainings, ms)
                   for s, ms in zip(family, latencies, strict=False)]
    found_rows = [{**entry(spec, final, trainings, ms), "target": target, "search_seed": seed,
                   "search": search_record(found_dir(args, target, seed)),
                   "spec": spec.to_dict()}
                  for (target, seed, spec), ms in zip(found_specs, latencies[len(family):],
                                                      strict=True)]
    for row in found_rows:
        row["goal"] = verdict(row, family_rows)
    disc = discrimination(family_rows)
    reproduced = reproduction(found_rows)
    print_table(family_rows, found_rows, disc, reproduced)
    data = final.load()
    summary = {
        "benchmark": "v3_headtohead", "smoke": args.smoke,
        "recipe": final.to_dict(), "data": data.describe(),
        "latency_setting": {"threads": 1, "batch": 1, "resolution": input_size,
                            "rounds": args.rounds, "statistic": "min over interleaved rounds"},
        "std": "sample standard deviation over the seeds (n - 1)",
        "family": family_rows, "found": found_rows, "discrimination": disc,
        "reproduction": reproduced,
        "netadapt_vs_multiplier": netadapt,
        "seconds": round(time.perf_counter() - started),
    }
    write_result(args.out, portable(summary), provenance)
    plot(family_rows, found_rows, args.out.with_suffix(".png"),
         f"V3 width family vs found on {final.data} ({final.recipe.epochs} epochs, "
         f"{len(final.seeds)} seeds, test top-1)")
    print(f"\nwrote {args.out} and its .png ({summary['seconds']} s)")


if __name__ == "__main__":
    main()
