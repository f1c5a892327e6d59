"""Training throughput (images/s) of ``TrainEstimator``'s loop (channels_last, all cores)
against a plain eager loop with PyTorch's defaults, and of the estimator's loop under
``torch.compile``: V3-Small and V3-Large side by side in one run (``bench/estimator_ranking.py``
reports it beside its ranking)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nas.accuracy import adapt_spec  # noqa: E402
from nas.build import build_model  # noqa: E402
from search_spaces import zoo  # noqa: E402


def train_throughput(data, steps: int, batch: int, compiled: bool = True) -> list[dict]:
    """Images/s of the estimator's loop vs a plain eager loop, interleaved per model; and of
    the estimator's loop under ``torch.compile`` (its compile time reported apart)."""
    if compiled:  # a cold compile, as a new candidate would get: not inductor's on-disk cache
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="nas-inductor-")
    rows = []
    for name in ("mobilenet_v3_small", "mobilenet_v3_large"):
        spec = adapt_spec(zoo.get(name), data.num_classes, data.resolution, data.channels)
        images, labels = next(data.batches("train", batch))
        results, compile_seconds = {}, None
        variants = ["plain", "estimator", "plain", "estimator"] + (["compiled"] if compiled else [])
        for variant in variants:  # twice each, best kept; compiled: two timed rounds
            model = build_model(spec, seed=0)
            x = images
            threads = torch.get_num_threads()
            if variant != "plain":
                torch.set_num_threads(os.cpu_count() or 1)
                model = model.to(memory_format=torch.channels_last)
                x = images.contiguous(memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            model.train()
            step_fn = torch.compile(model) if variant == "compiled" else model

            def step(step_fn=step_fn, x=x, labels=labels, optimizer=optimizer):
                loss = F.cross_entropy(step_fn(x), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            begin = time.perf_counter()
            for _ in range(2):  # warm-up (and compilation)
                step()
            if variant == "compiled":
                compile_seconds = time.perf_counter() - begin
            for _ in range(2 if variant == "compiled" else 1):
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                rate = steps * batch / (time.perf_counter() - start)
                results[variant] = max(results.get(variant, 0.0), rate)
            torch.set_num_threads(threads)
        rows.append({"model": name, "batch": batch, "plain_images_per_s": results["plain"],
                     "estimator_images_per_s": results["estimator"],
                     "speedup": results["estimator"] / results["plain"],
                     "compiled_images_per_s": results.get("compiled"),
                     "compile_seconds": compile_seconds})
    return rows
