"""The timer against itself: variants of the interleaved timer, each measuring the same networks
twice, side by side in one run.

Random networks of the MobileNetV3 space plus every zoo model (torch eager, batch 1, 224x224,
1 thread). Every variant measures the whole set in pass 1, then every variant again in pass 2
(models built afresh each time, as a profile and a later validation do); the table compares
each variant's pass 2 with its pass 1. Prints the table and writes
bench/results/timer_variants.json (or timer_variants_Nthreads.json for N > 1).

    python bench/timer_variants.py [--archs 30] [--threads 1] [--variants current pinned ...]
    python bench/timer_variants.py --smoke     # seconds, 32x32, nothing written
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import Provenance, write_result  # noqa: E402

from latency_models.backends import get_backend  # noqa: E402
from latency_models.device import fingerprint  # noqa: E402
from latency_models.timer import TimerSettings, measure_interleaved  # noqa: E402
from nas.build import build_model  # noqa: E402

RESULTS = ROOT / "bench" / "results"

VARIANTS: dict[str, TimerSettings] = {
    # what bench/latency_validation.py did before this benchmark: 60 rounds, min, wall clock
    "current": TimerSettings(rounds=60),
    "pinned": TimerSettings(rounds=60, pin=True),
    "pinned-warm": TimerSettings(rounds=60, pin=True, warm_until_stable=True),
    "pinned-blocked": TimerSettings(rounds=30, pin=True, min_sample_ms=25.0),
    "pinned-thread-clock": TimerSettings(rounds=60, pin=True, clock="thread"),
    "pinned-stop": TimerSettings(rounds=150, pin=True, stop_k=5, stop_tol=0.01, min_rounds=20),
    "thread-clock-stop": TimerSettings(rounds=150, pin=True, clock="thread", stop_k=5,
                                       stop_tol=0.01, min_rounds=20),
    # one pass of `nas latency validate` at its default 30 rounds (two passes of 15);
    # bench/latency_validation.py runs 60 (two passes of 30)
    "validation-pass": TimerSettings(rounds=15),
    # the same 15 rounds, then more (up to 60) for a network until its 3 smallest agree in 2%
    "validation-stop": TimerSettings(rounds=60, stop_k=3, stop_tol=0.02, min_rounds=15),
}


def networks(archs: int, resolution: int, zoo_models: bool, seed: int):
    from search_spaces import zoo
    from search_spaces.mobilenetv3 import default_space

    rng = np.random.default_rng(seed)
    space = default_space(resolution)
    specs = [space.sample(rng, name=f"random-{i}") for i in range(archs)]
    if zoo_models:
        specs += [zoo.get(name, input_size=resolution) for name in zoo.names()]
    return specs


def measure_pass(specs, backend, timer: TimerSettings, seed: int) -> tuple[list, float, float]:
    """(samples per spec, seconds measuring, mean samples per spec); models built afresh."""
    import torch

    runners = {}
    with torch.inference_mode():
        for index, spec in enumerate(specs):
            model = build_model(spec, seed=0)
            example = torch.randn(1, spec.stem.in_ch, spec.input_size, spec.input_size)
            runners[index] = backend.prepare(model, example)
    start = time.perf_counter()
    timings = measure_interleaved(runners, backend, seed=seed, timer=timer)
    seconds = time.perf_counter() - start
    return ([np.array(timings[i].raw_ms) for i in range(len(specs))], seconds,
            float(np.mean([timings[i].samples for i in range(len(specs))])))


# Statistics of one network's samples, each compared between the passes (the timer keeps min).
STATISTICS = {
    "min": lambda x: float(np.min(x)),
    "mean of 3 smallest": lambda x: float(np.mean(np.sort(x)[:3])),
    "p10": lambda x: float(np.percentile(x, 10)),
    "p25": lambda x: float(np.percentile(x, 25)),
    "median": lambda x: float(np.median(x)),
}


def statistic(samples: list, name: str) -> np.ndarray:
    return np.array([STATISTICS[name](x) for x in samples])


def gaps(first: np.ndarray, second: np.ndarray) -> dict:
    gap = np.abs(second / first - 1)
    return {"within_10pct": float(np.mean(gap <= 0.10)), "within_5pct": float(np.mean(gap <= 0.05)),
            "within_2pct": float(np.mean(gap <= 0.02)),
            "median_gap_pct": float(np.median(gap) * 100), "max_gap_pct": float(gap.max() * 100),
            "mean_shift_pct": float(np.mean(second / first - 1) * 100)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--no-zoo", action="store_true")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long run at 32x32, 3 rounds; no JSON written")
    args = parser.parse_args()
    provenance = Provenance.start(vars(args))
    resolution = 32 if args.smoke else 224
    specs = networks(3 if args.smoke else args.archs, resolution, not args.no_zoo and not
                     args.smoke, args.seed)
    variants = {name: VARIANTS[name] for name in args.variants}
    if args.smoke:
        import dataclasses

        variants = {name: dataclasses.replace(t, rounds=3, min_rounds=2, min_sample_ms=0.0)
                    for name, t in variants.items()}
    backend = get_backend(args.backend, args.threads)
    started = time.perf_counter()
    passes: dict[str, list] = {name: [] for name in variants}
    for pass_index in range(2):
        for offset, (name, timer) in enumerate(variants.items()):
            ms, seconds, samples = measure_pass(specs, backend, timer,
                                                seed=args.seed + 100 * pass_index + offset)
            passes[name].append({"ms": ms, "seconds": seconds, "samples": samples})
            note = ""
            if pass_index == 1:  # shown as it comes: a run cut short still tells something
                g = gaps(statistic(passes[name][0]["ms"], "min"), statistic(ms, "min"))
                note = (f"; within 10% {g['within_10pct']:.1%}, 5% {g['within_5pct']:.1%}, "
                        f"median {g['median_gap_pct']:.2f}%, max {g['max_gap_pct']:.1f}%")
            print(f"pass {pass_index + 1} {name}: {seconds:.1f} s{note}", file=sys.stderr,
                  flush=True)
    rows = []
    for name, (one, two) in passes.items():
        first, second = statistic(one["ms"], "min"), statistic(two["ms"], "min")
        shift = float(np.median(second / first))
        rows.append({"variant": name, "settings": dataclasses_dict(variants[name]),
                     **gaps(first, second),
                     # the machine's common drift between the passes taken out (the median
                     # ratio): what is left is the timer's disagreement network by network
                     "shift_removed": gaps(first, second / shift),
                     "other_statistics": {s: gaps(statistic(one["ms"], s), statistic(two["ms"], s))
                                          for s in STATISTICS if s != "min"},
                     "seconds_per_pass": (one["seconds"] + two["seconds"]) / 2,
                     "samples_per_network": (one["samples"] + two["samples"]) / 2,
                     "pass1_ms": first.round(4).tolist(), "pass2_ms": second.round(4).tolist()})
    print(f"{len(specs)} networks ({args.archs if not args.smoke else 3} random"
          f"{'' if args.no_zoo or args.smoke else ' + zoo'}), {args.backend}, batch 1, "
          f"{resolution}x{resolution}, {args.threads} thread(s); pass 2 against pass 1")
    print("| variant | within ±10% | within ±5% | within ±2% | median gap % | max gap % | "
          "mean shift % | ±5% shift removed | s per pass | samples per net |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['within_10pct']:.1%} | {r['within_5pct']:.1%} | "
              f"{r['within_2pct']:.1%} | {r['median_gap_pct']:.2f} | {r['max_gap_pct']:.1f} | "
              f"{r['mean_shift_pct']:+.2f} | {r['shift_removed']['within_5pct']:.1%} | "
              f"{r['seconds_per_pass']:.1f} | "
              f"{r['samples_per_network']:.0f} |")
    print("\nthe same samples, other statistics: within ±10% / within ±5% / median gap %")
    print("| variant | " + " | ".join(s for s in STATISTICS if s != "min") + " |")
    print("|---|" + "---|" * (len(STATISTICS) - 1))
    for r in rows:
        print(f"| {r['variant']} | " + " | ".join(
            f"{g['within_10pct']:.0%} / {g['within_5pct']:.0%} / {g['median_gap_pct']:.1f}"
            for g in r["other_statistics"].values()) + " |")
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    if not args.smoke:
        suffix = (f"_{args.backend}" if args.backend != "torch" else "") + \
            (f"_{args.threads}threads" if args.threads > 1 else "") + \
            (f"_{args.tag}" if args.tag else "")
        out = RESULTS / f"timer_variants{suffix}.json"
        write_result(out, {
            "fingerprint": fingerprint(args.backend, args.threads, 1, resolution).to_dict(),
            "networks": [s.name for s in specs], "archs": args.archs, "seed": args.seed,
            "zoo": not args.no_zoo, "seconds": total, "rows": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, provenance)
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


def dataclasses_dict(timer: TimerSettings) -> dict:
    import dataclasses

    return dataclasses.asdict(timer)


if __name__ == "__main__":
    sys.exit(main())
