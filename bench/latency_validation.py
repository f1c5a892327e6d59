"""Latency predictor validation on this host: plain table sum vs calibrated predictor.

200 random networks of the MobileNetV3 space plus every zoo model, measured end to end (torch
eager, batch 1, 224x224, 1 thread, interleaved rounds, minimum) against the predictions, all
in one run. Prints the table and writes bench/results/latency_validation.json and .png
(other backends and thread counts: latency_validation-BACKEND-Nthreads.json).

    python bench/latency_validation.py [--archs 200] [--rounds 60] [--threads 1]
        [--backend torch|onnxruntime] [--smoke]

The first run profiles this device (a few minutes, cached under ~/.cache/nas).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import Provenance, write_result  # noqa: E402

from latency_models.profile import ProfileSettings  # noqa: E402
from latency_models.store import LatencySetup  # noqa: E402
from latency_models.validate import plot_report, print_report, validate  # noqa: E402
from nas.cli.progress import progress_bar  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def result_path(backend: str, threads: int) -> Path:
    """latency_validation.json for torch at 1 thread (the search's default setting); other
    backends and thread counts get their own file beside it."""
    if (backend, threads) == ("torch", 1):
        return RESULTS / "latency_validation.json"
    return RESULTS / f"latency_validation-{backend}-{threads}threads.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long run at 32x32 on a fresh cache; no JSON written")
    args = parser.parse_args()
    provenance = Provenance.start(vars(args))
    console = Console()
    if args.smoke:
        import os
        import tempfile

        os.environ["NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="nas-smoke-")
        setup = LatencySetup(args.backend, args.threads, 1, 32,
                             ProfileSettings(rounds=2, warmup=1, min_sample_ms=0.0,
                                             chunk_size=4000), calibration_archs=4)
        report = validate(setup, archs=6, rounds=3, calibration_archs=4, include_zoo=False,
                          throughput_specs=200)
    else:
        setup = LatencySetup(args.backend, args.threads, 1, 224)
        with progress_bar() as update:
            report = validate(setup, archs=args.archs, rounds=args.rounds, progress=update)
    print_report(report, console)
    if not args.smoke:
        path = result_path(args.backend, args.threads)
        write_result(path, report, provenance)  # the table named by fingerprint and checksum
        plot = path.with_suffix(".png")
        plot_report(report, plot)
        console.print(f"wrote {path.relative_to(ROOT)} and {plot.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
