"""Training steps with ``nas.modules.depthwise_conv2d``'s small-map path against F.conv2d
everywhere (oneDNN's depthwise), interleaved step by step in one process: V3-Small and
V3-Large at the fashion-mnist recipe's 28 px, batch 128, one thread (as the head-to-head
trains). Prints a table and writes ``bench/results/depthwise_small_maps.json``.

    python bench/depthwise_small_maps.py            # ~3 min
    python bench/depthwise_small_maps.py --smoke    # seconds; no JSON written
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from provenance import Provenance, write_result  # noqa: E402

import nas.modules as modules  # noqa: E402
from nas.accuracy import adapt_spec  # noqa: E402
from nas.build import build_model  # noqa: E402
from search_spaces import zoo  # noqa: E402

RESULT = ROOT / "bench" / "results" / "depthwise_small_maps.json"
SMALL_MAP_PATH = modules.depthwise_conv2d


def conv2d_everywhere(x, weight, bias, stride, padding):
    """What ``depthwise_conv2d`` did before: the taps within reach, then F.conv2d."""
    weight, padding = modules.within_reach(weight, padding, x.shape[-2:])
    return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])


def paired_steps(name: str, resolution: int, batch: int, steps: int) -> dict:
    """Median step times of both paths, their steps alternating (order flipped every pair)."""
    spec = adapt_spec(zoo.get(name), 10, resolution, 3)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, resolution, resolution, generator=generator)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    paths = {"small_map": SMALL_MAP_PATH, "conv2d": conv2d_everywhere}
    runs = {}
    for path in paths:
        model = build_model(spec, seed=0).to(memory_format=torch.channels_last).train()
        runs[path] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), [])

    def step(path: str) -> None:
        modules.depthwise_conv2d = paths[path]
        model, optimizer, times = runs[path]
        start = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)

    try:
        for index in range(steps + 3):  # the first 3 pairs warm up
            for path in (("small_map", "conv2d") if index % 2 else ("conv2d", "small_map")):
                step(path)
    finally:
        modules.depthwise_conv2d = SMALL_MAP_PATH
    mine, theirs = runs["small_map"][2][3:], runs["conv2d"][2][3:]
    ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
    return {"model": name, "resolution": resolution, "batch": batch, "steps": steps,
            "small_map_ms": statistics.median(mine) * 1e3,
            "conv2d_ms": statistics.median(theirs) * 1e3,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per path and model")
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--smoke", action="store_true", help="3 steps of batch 8; no JSON")
    args = parser.parse_args()
    provenance = Provenance.start(vars(args))
    steps, batch = (3, 8) if args.smoke else (args.steps, args.batch)
    torch.set_num_threads(1)
    rows = []
    print(f"{'model':<20} {'small-map ms':>12} {'conv2d ms':>10} {'ratio (median, min-max)':>26}")
    for name in ("mobilenet_v3_small", "mobilenet_v3_large"):
        row = paired_steps(name, args.resolution, batch, steps)
        rows.append(row)
        print(f"{name:<20} {row['small_map_ms']:12.1f} {row['conv2d_ms']:10.1f} "
              f"{row['ratio_median']:10.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})",
              flush=True)
    if not args.smoke:
        write_result(RESULT, {"threads": 1, "rows": rows,
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, provenance)
        print(f"wrote {RESULT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
