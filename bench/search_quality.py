"""Search quality: every strategy at equal trial counts under V3-Small's latency.

The budget is MobileNetV3-Small's latency on this machine (1 thread, batch 1, 224x224) as the
searches' latency model predicts it, once that model is re-fitted to the machine's speed now
(as every search does when it starts): "within the budget" means predicted no slower than
V3-Small by the same model, so the drift of a shared VM between two timing sessions cannot
move the goalposts. V3-Small is also measured, for the record. Each strategy searches with
the V3-Small reward (soft-small, w = -0.15) for the same number of trials with several seeds;
per run we report the best reward, the best accuracy at or under the budget, the trial that
reached it, and the wall time. Then the best architecture
found within the budget and V3-Small are trained side by side with the same longer recipe
(several seeds) and timed interleaved.

    python bench/search_quality.py [--trials 60] [--seeds 3] [--strategies ...] [--smoke]

Prints a table and writes bench/results/search_quality.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import Provenance, portable, write_result  # noqa: E402

from latency_models.store import (  # noqa: E402
    LatencySetup,
    calibration_specs,
    load_predictor,
    measure_ms,
    rescaled,
)
from nas.accuracy.train import Recipe, TrainEstimator  # noqa: E402
from nas.data import load_data  # noqa: E402
from nas.search.objective import AccuracyJob  # noqa: E402
from nas.search.run import (  # noqa: E402
    SearchRun,
    SearchSettings,
    default_workers,
    reference_specs,
)
from nas.search.strategies import STRATEGIES  # noqa: E402
from search_spaces import zoo  # noqa: E402
from search_spaces.mobilenetv3 import default_space  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def smoke_space(resolution: int = 224):
    """The default space cut to one kernel, ratio, SE and activation choice and one head: a few
    dozen layers, profiled in seconds even from nothing (the --smoke runs)."""
    space = default_space(resolution)
    return dataclasses.replace(space, heads=space.heads[1:2], stages=tuple(
        dataclasses.replace(s, kernels=(3,), exp_ratios=(3.0,), se=(False,), acts=("RE",))
        for s in space.stages))


def measure(specs, rounds: int) -> list[float]:
    """Min over ``rounds`` interleaved rounds, 1 thread, batch 1: the search's setting."""
    return [float(ms) for ms in measure_ms(LatencySetup(threads=1), specs, rounds=rounds)]


def search(strategy: str, seed: int, budget_ms: float, args, root: Path, shared: dict) -> dict:
    settings = SearchSettings(
        budget_ms=budget_ms, reward="soft-small", strategy=strategy, trials=args.trials,
        seed=seed, seed_arch=args.seed_arch,
        job=AccuracyJob(data=args.data, resolution=args.resolution,
                        estimator=args.estimator, seed=seed),
        strategy_options={"population": args.population} if strategy == "evolution" else {},
        recalibrate=not args.smoke)
    # One calibrated predictor for every run, so strategies are compared on the same latencies.
    run = SearchRun(settings, root / f"{strategy}-{seed}", overwrite=True,
                    predictor=shared["predictor"], space=args.space)
    start = time.perf_counter()
    results = run.run(workers=args.workers)
    wall = time.perf_counter() - start
    ok = [r for r in results if r.ok]
    within = [r for r in ok if r.latency_ms <= budget_ms]
    best_reward = max(ok, key=lambda r: r.reward)
    best_within = max(within, key=lambda r: (r.accuracy, -r.index)) if within else None
    return {
        "strategy": strategy, "seed": seed, "trials": len(results),
        "failed": len(results) - len(ok), "wall_seconds": wall,
        "best_reward": best_reward.reward,
        "best_accuracy_within_budget": best_within.accuracy if best_within else None,
        "trial_reaching_it": best_within.index if best_within else None,
        "best_within_latency_ms": best_within.latency_ms if best_within else None,
        "best_within_spec": best_within.spec.to_dict() if best_within else None,
        "rewards": [r.reward for r in results],
    }


def side_by_side(found, args, predictor) -> dict:
    """The best found architecture and V3-Small trained alike, with seeds the search did not
    use: the search's own 1-epoch recipe and a longer one; predicted and measured latency
    (interleaved, with V3-Large as a third network)."""
    v3s = zoo.get("v3-small")
    data = load_data(args.data, args.resolution, seed=0)
    result: dict = {"recipes": {}}
    for epochs in sorted({1, args.final_epochs}):
        scores = {}
        for label, spec in (("found", found), ("v3-small", v3s)):
            scores[label] = [TrainEstimator(data, Recipe(epochs=epochs, seed=100 + seed))
                             .estimate(spec).score for seed in range(args.final_seeds)]
        result["recipes"][f"{epochs}-epoch"] = {
            "recipe": Recipe(epochs=epochs).to_dict(), "seeds": [100 + s for s in
                                                               range(args.final_seeds)],
            "found_accuracy": scores["found"], "v3_small_accuracy": scores["v3-small"]}
    measured = measure([found, v3s, zoo.get("v3-large")], args.rounds)
    predicted = predictor.predict([found, v3s, zoo.get("v3-large")])
    result.update({"found_measured_ms": measured[0], "v3_small_measured_ms": measured[1],
                   "v3_large_measured_ms": measured[2],
                   "found_predicted_ms": float(predicted[0]),
                   "v3_small_predicted_ms": float(predicted[1]),
                   "v3_large_predicted_ms": float(predicted[2])})
    return result


def print_final(final: dict) -> None:
    print(f"\nbest found ({final['found_from']['strategy']}, seed "
          f"{final['found_from']['seed']}) vs V3-Small, fresh seeds:")
    for name, r in final["recipes"].items():
        print(f"  {name}: found {np.mean(r['found_accuracy']):.2f}% vs V3-Small "
              f"{np.mean(r['v3_small_accuracy']):.2f}%")
    for label, key in (("found", "found"), ("V3-Small", "v3_small"), ("V3-Large", "v3_large")):
        print(f"  {label}: {final[key + '_measured_ms']:.2f} ms measured, "
              f"{final[key + '_predicted_ms']:.2f} ms predicted")


def final_stage(runs: list[dict], args, predictor) -> dict | None:
    candidates = [r for r in runs if r["best_within_spec"]]
    if not candidates:
        return None
    from nas.spec import ArchSpec

    # As a search's report does: the finalists (each run's best within the predicted budget,
    # most accurate first) are timed together with V3-Small, and the most accurate of those
    # measured no slower than V3-Small is compared with it.
    finalists = sorted(candidates, key=lambda r: -r["best_accuracy_within_budget"])[:6]
    specs = [ArchSpec.from_dict(r["best_within_spec"]) for r in finalists]
    measured = measure([*specs, zoo.get("v3-small")], args.rounds)
    fast = [r for r, ms in zip(finalists, measured, strict=False) if ms <= measured[-1]]
    top = max(fast or finalists, key=lambda r: r["best_accuracy_within_budget"])
    found = dataclasses.replace(ArchSpec.from_dict(top["best_within_spec"]), name="found")
    final = side_by_side(found, args, predictor)
    final["found_from"] = {"strategy": top["strategy"], "seed": top["seed"]}
    final["finalists"] = [
        {"strategy": r["strategy"], "seed": r["seed"],
         "accuracy": r["best_accuracy_within_budget"],
         "predicted_ms": r["best_within_latency_ms"], "measured_ms": ms}
        for r, ms in zip(finalists, measured, strict=False)]
    final["finalists_v3_small_measured_ms"] = measured[-1]
    for r in final["finalists"]:
        print(f"  finalist {r['strategy']:9s} seed {r['seed']}: {r['accuracy']:.2f}%, "
              f"{r['predicted_ms']:.2f} ms predicted, {r['measured_ms']:.2f} ms measured "
              f"(V3-Small {measured[-1]:.2f})")
    print_final(final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--seed-arch", default="v3-small",
                        help="every strategy starts from this architecture ('none': random)")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--estimator", default="train")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--final-epochs", type=int, default=5)
    parser.add_argument("--final-seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--smoke", action="store_true",
                        help="a minute-long check that everything runs (numbers meaningless)")
    parser.add_argument("--out", type=Path, default=RESULTS / "search_quality.json")
    parser.add_argument("--final-only", type=Path, metavar="JSON",
                        help="redo only the side-by-side stage of an earlier result file")
    args = parser.parse_args()
    if args.final_only:
        redo_final(args)
        return
    args.seed_arch = None if args.seed_arch == "none" else args.seed_arch
    args.space = default_space()
    if args.smoke:
        args.space = smoke_space()
        args.seed_arch = None
        args.trials, args.seeds, args.strategies = 6, 1, ["random", "evolution"]
        args.population, args.estimator, args.final_epochs = 3, "zero-cost:params", 1
        args.final_seeds, args.rounds, args.workers = 1, 5, 1
        args.out = Path(tempfile.mkdtemp()) / "search_quality.json"
    provenance = Provenance.start({k: v for k, v in vars(args).items() if k != "space"})

    # Timed among other networks, as the latency table and its calibration are: a network
    # timed alone, back to back, keeps its weights in cache and runs faster than inside a mix.
    rng = np.random.default_rng(7)
    company = [zoo.get("v3-large"), *(args.space.sample(rng) for _ in range(6))]
    measured_ms = measure([zoo.get("v3-small"), *company], args.rounds)[0]
    # The searches' predictor, re-fitted to this machine's speed now as a search does at start.
    setup = LatencySetup(threads=1, resolution=args.space.input_size)
    predictor, _ = load_predictor(setup, args.space, specs=reference_specs())
    if not args.smoke:
        predictor, drift = rescaled(predictor, setup, [
            zoo.get("v3-large"), zoo.get("v3-small"), *calibration_specs(args.space, 6, 2024)])
        print(f"latency model re-fitted to this machine now: x{drift:.3f}")
    budget_ms = float(predictor.predict([zoo.get("v3-small")])[0])
    print(f"budget = V3-Small predicted by that model: {budget_ms:.2f} ms (measured now, "
          f"interleaved with 7 other networks: {measured_ms:.2f} ms; 1 thread, batch 1, "
          f"{args.space.input_size}x{args.space.input_size})")
    runs, shared = [], {"predictor": predictor}
    with tempfile.TemporaryDirectory(prefix="search-quality-") as root:
        for strategy in args.strategies:
            for seed in range(args.seeds):
                runs.append(search(strategy, seed, budget_ms, args, Path(root), shared))
                r = runs[-1]
                print(f"  {strategy:10s} seed {seed}: best reward {r['best_reward']:.2f}, "
                      f"best within budget {r['best_accuracy_within_budget']}, "
                      f"{r['wall_seconds']:.0f} s", flush=True)
    header = "| strategy | best reward | best acc <= budget | trial reaching it | wall s |"
    lines = [header, "|---|---|---|---|---|"]
    summary = {}
    for strategy in args.strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        accs = [r["best_accuracy_within_budget"] for r in mine
                if r["best_accuracy_within_budget"] is not None]
        summary[strategy] = {
            "best_reward_mean": float(np.mean([r["best_reward"] for r in mine])),
            "best_accuracy_within_budget_mean": float(np.mean(accs)) if accs else None,
            "trial_reaching_it_mean": float(np.mean([r["trial_reaching_it"] for r in mine
                                                     if r["trial_reaching_it"] is not None]))
            if accs else None,
            "wall_seconds_mean": float(np.mean([r["wall_seconds"] for r in mine])),
        }
        s = summary[strategy]
        acc_text = f"{s['best_accuracy_within_budget_mean']:.2f}" if accs else "none"
        reach = f"{s['trial_reaching_it_mean']:.0f}" if accs else "-"
        lines.append(f"| {strategy} | {s['best_reward_mean']:.2f} | {acc_text} | {reach} | "
                     f"{s['wall_seconds_mean']:.0f} |")
    print("\n".join(lines))
    predictor = shared["predictor"]
    final = final_stage(runs, args, predictor)
    write_result(args.out, {
        "settings": portable({k: v for k, v in vars(args).items() if k != "space"}),
        "budget_ms": budget_ms, "budget_source": "V3-Small predicted by the searches' model",
        "v3_small_predicted_ms": budget_ms, "v3_small_measured_ms": measured_ms,
        "calibration": predictor.calibration.to_dict(), "summary": summary, "runs": runs,
        "final": final, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, provenance)
    print(f"wrote {args.out}")


def redo_final(args) -> None:
    from latency_models.predictor import Calibration, LUTPredictor
    from latency_models.store import load_predictor

    provenance = Provenance.start(vars(args))
    data = json.loads(args.final_only.read_text())
    for key in ("data", "resolution", "final_epochs", "final_seeds", "rounds"):
        setattr(args, key, data["settings"][key] if key not in ("final_epochs", "final_seeds",
                                                                   "rounds")
                else getattr(args, key))
    table_predictor, _ = load_predictor(LatencySetup(threads=1), None)
    predictor = LUTPredictor(table_predictor.table, Calibration(**data["calibration"]))
    data["final"] = final_stage(data["runs"], args, predictor)
    data["final_redone_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    # This run wrote the file now; the searches it re-used keep their own record.
    data["searches_provenance"] = data.pop("provenance", None)
    write_result(args.final_only, data, provenance)
    print(f"wrote {args.final_only}")


if __name__ == "__main__":
    main()
