"""Trials per minute of the search's executors: local worker processes against Ray nodes.

One run measures, side by side and with the same candidates (random search, one seed), for the
zero-cost estimator and the supernet estimator:

* the local executor with 1 and 2 workers (``nas-search --workers N``);
* Ray with 1 and 2 nodes of one CPU each: a ``ray.cluster_utils.Cluster`` on 127.0.0.1, this
  process its driver, as ``nas-search --executor ray --ray-address`` drives one.

Every worker gets one CPU and one torch thread, whichever executor, so that equal workers are
equal hardware. Each configuration first scores a warm-up batch (worker start, estimator
build, the object-store fetch), reported as start-up seconds; then ``trials`` candidates are
timed through the real search loop (``Runner``: ask, score, store, tell). Ray's overhead per
trial is stated twice: the extra wall time per trial against the local executor with as many
workers, and the round trip of an empty Ray task. The supernet's weights are untrained (what a
candidate costs does not depend on them), and latency is one millisecond per block (random
search never looks at the reward), so nothing is trained or timed beforehand.

Goals (issue 31): Ray with two nodes at least 1.6x Ray with one on the supernet estimator, and
within 15% of the local executor at equal workers.

    python bench/ray_throughput.py [--zero-cost-trials 40] [--supernet-trials 16] [--smoke]

Prints a table and writes bench/results/ray_throughput.json (``--smoke``: a temporary file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Read by Ray when it is imported: keep every Ray address on loopback (see ray_executor.py).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import Provenance, write_result  # noqa: E402

from nas.search.objective import AccuracyJob, Objective, job_inputs  # noqa: E402
from nas.search.reward import Reward  # noqa: E402
from nas.search.runner import ProcessPool, Runner  # noqa: E402
from nas.search.storage import RunStore  # noqa: E402
from nas.search.strategies import make_strategy  # noqa: E402
from search_spaces.mobilenetv3 import default_space  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


class BlockCount:
    """A stand-in latency predictor: 1 ms per block. Throughput is what is measured here, and
    random search proposes the same candidates whatever the reward."""

    def predict(self, specs) -> np.ndarray:
        return np.array([float(len(spec.blocks)) for spec in specs])


def untrained_supernet(path: Path, data: str, resolution: int) -> Path:
    from nas.accuracy.supernet import Supernet, SupernetRecipe, save_checkpoint
    from nas.data import load_data

    classes = load_data(data, resolution).num_classes
    save_checkpoint(path, Supernet(default_space().with_resolution(resolution, classes)), None,
                    1, SupernetRecipe(steps=1))
    return path


def jobs(args, scratch: Path) -> dict[str, AccuracyJob]:
    data, resolution = ("digits", 16) if args.smoke else ("digits-hard", 32)
    checkpoint = untrained_supernet(scratch / "supernet.pt", data, resolution)
    return {
        "zero-cost": AccuracyJob(data=data, resolution=resolution, estimator=args.zero_cost,
                                 threads=1),
        "supernet": AccuracyJob(data=data, resolution=resolution,
                                estimator=f"supernet:{checkpoint}",
                                finetune_steps=args.finetune_steps, threads=1),
    }


def warm_up(objective: Objective, pool, workers: int) -> float:
    """Seconds until every worker has scored a candidate (process start, estimator build,
    the object-store fetch): batches of warm-up candidates until each worker process (local)
    or node (Ray) has answered, for at most two minutes (a worker still starting leaves the
    batches to the ones already up, the more often the faster a candidate is scored)."""
    from nas.search.objective import estimate_accuracy

    strategy = make_strategy("random", default_space(), seed=1)
    started, seen = time.perf_counter(), set()
    while time.perf_counter() - started < 120:
        batch = [(i, strategy.ask()) for i in range(workers)]
        if pool is None:
            for _, spec in batch:
                objective(spec, 0)
            return time.perf_counter() - started
        if isinstance(pool, ProcessPool):  # which process answered is not in a TrialResult
            futures = [pool.executor.submit(estimate_accuracy, pool.job, spec.to_json())
                       for _, spec in batch]
            seen |= {future.result()["pid"] for future in futures}
        else:
            seen |= {result.node_id for result in pool.evaluate(batch)}
        if len(seen) >= workers:
            return time.perf_counter() - started
    raise SystemExit(f"only {len(seen)} of {workers} workers answered the warm-up")


def timed_run(objective: Objective, pool, workers: int, trials: int, scratch: Path,
              name: str) -> dict:
    """Warm-up, then ``trials`` candidates through the search loop."""
    space = default_space()
    startup = warm_up(objective, pool, workers)
    store = RunStore(scratch / f"{name}.db", space, objective.reward)
    runner = Runner(make_strategy("random", space, seed=0), objective, store, trials,
                    workers=workers)
    started = time.perf_counter()
    results = runner.run(pool=pool)
    seconds = time.perf_counter() - started
    failed = [r.reason for r in results if r.failed]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} candidate(s) failed, e.g. {failed[0]}")
    return {"trials": trials, "seconds": round(seconds, 2), "startup_seconds": round(startup, 2),
            "trials_per_minute": round(60 * trials / seconds, 2),
            # what the estimator itself took per candidate, inside the worker
            "scoring_seconds_mean": round(statistics.mean(r.cost_seconds for r in results), 3),
            "nodes": sorted({r.node_id for r in results if r.node_id})}


def noop_round_trip_ms(ray, rounds: int) -> float:
    @ray.remote(num_cpus=1)
    def noop() -> None:
        return None

    ray.get(noop.remote())
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        ray.get(noop.remote())
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def measure(args, scratch: Path) -> dict:
    import ray
    import torch
    from ray.cluster_utils import Cluster

    from nas.search.ray_executor import RayPool, connect

    torch.set_num_threads(1)  # the local executor's one worker scores in this process
    reward = Reward.from_preset("soft", 60.0)
    objectives = {name: Objective(job, BlockCount(), reward)
                  for name, job in jobs(args, scratch).items()}
    trials = {"zero-cost": args.zero_cost_trials, "supernet": args.supernet_trials}
    rows: dict[tuple[str, str, int], dict] = {}

    def record(estimator: str, executor: str, workers: int, pool) -> None:
        row = timed_run(objectives[estimator], pool, workers, trials[estimator], scratch,
                        f"{estimator}-{executor}-{workers}")
        rows[estimator, executor, workers] = row
        print(f"  {estimator:<10} {executor:<5} x{workers}: {row['trials_per_minute']:8.1f} "
              f"trials/min (start-up {row['startup_seconds']:.1f} s)", flush=True)

    print("local executor", flush=True)
    for name, objective in objectives.items():
        job_inputs(objective.job)  # loaded before the clock starts, as the CLI does
        record(name, "local", 1, None)
        pool = ProcessPool(objective, 2)
        try:
            record(name, "local", 2, pool)
        finally:
            pool.close()

    print("Ray: a head node of one CPU, then a second node", flush=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "object_store_memory": 300 * 2**20})
    try:
        connect(cluster.address, 1)
        round_trip = {}
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1",
                                 object_store_memory=300 * 2**20)
                cluster.wait_for_nodes()
            round_trip[nodes] = noop_round_trip_ms(ray, 10 if args.smoke else 50)
            for name, objective in objectives.items():
                # as run_on_ray: the inputs go to the object store once per run
                pool = RayPool(objective, ray.put(job_inputs(objective.job)))
                record(name, "ray", nodes, pool)
                if len(rows[name, "ray", nodes]["nodes"]) != nodes:
                    raise SystemExit(f"Ray with {nodes} node(s) ran {name} on "
                                     f"{len(rows[name, 'ray', nodes]['nodes'])}")
    finally:
        ray.shutdown()
        cluster.shutdown()
    return summary(args, rows, round_trip, objectives)


def summary(args, rows, round_trip, objectives) -> dict:
    from latency_models.device import cpu_model

    table = []
    for name in objectives:
        for executor, workers in CONFIGS:
            row = rows[name, executor, workers]
            local = rows[name, "local", workers]
            extra = None if executor == "local" else \
                round(1000 * (row["seconds"] - local["seconds"]) / row["trials"], 1)
            table.append({"estimator": name,
                          "estimator_setting": _shown(objectives[name].job.estimator),
                          "executor": executor, "workers": workers,
                          **{k: v for k, v in row.items() if k != "nodes"},
                          "nodes_used": len(row["nodes"]),
                          "ray_extra_ms_per_trial": extra})

    def tpm(name, executor, workers):
        return rows[name, executor, workers]["trials_per_minute"]

    ratios = {name: {"ray2_over_ray1": round(tpm(name, "ray", 2) / tpm(name, "ray", 1), 3),
                     "ray1_over_local1": round(tpm(name, "ray", 1) / tpm(name, "local", 1), 3),
                     "ray2_over_local2": round(tpm(name, "ray", 2) / tpm(name, "local", 2), 3)}
              for name in objectives}
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "smoke": args.smoke,
        "machine": {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"zero_cost": args.zero_cost, "zero_cost_trials": args.zero_cost_trials,
                     "supernet_trials": args.supernet_trials,
                     "finetune_steps": args.finetune_steps,
                     "data": objectives["supernet"].job.data,
                     "resolution": objectives["supernet"].job.resolution,
                     "threads_per_worker": 1, "strategy": "random (seed 0)"},
        "rows": table, "ratios": ratios,
        "ray_noop_round_trip_ms": {f"{n} node(s)": round(ms, 2) for n, ms in round_trip.items()},
        "goals": {"supernet_ray2_over_ray1_at_least": 1.6,
                  "ray_over_local_at_equal_workers_at_least": 0.85},
    }


def print_table(result: dict) -> None:
    print("\n| estimator | executor | workers | trials | trials/min | scoring s/trial | "
          "start-up s | Ray extra ms/trial |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        executor = f"ray, {r['workers']} node(s)" if r["executor"] == "ray" else "local"
        extra = "-" if r["ray_extra_ms_per_trial"] is None else f"{r['ray_extra_ms_per_trial']:.0f}"
        print(f"| {r['estimator']} | {executor} | {r['workers']} | {r['trials']} | "
              f"{r['trials_per_minute']:.1f} | {r['scoring_seconds_mean']:.2f} | "
              f"{r['startup_seconds']:.1f} | {extra} |")
    for name, ratio in result["ratios"].items():
        print(f"{name}: Ray 2 nodes / 1 node {ratio['ray2_over_ray1']:.2f}x; Ray / local at "
              f"1 worker {ratio['ray1_over_local1']:.2f}, at 2 workers "
              f"{ratio['ray2_over_local2']:.2f}")
    trips = ", ".join(f"{k} {v:.1f} ms" for k, v in result["ray_noop_round_trip_ms"].items())
    print(f"empty Ray task round trip (median): {trips}")


def _shown(estimator: str) -> str:
    """The estimator setting without the temporary checkpoint's absolute path."""
    kind, sep, path = estimator.partition(":")
    return f"{kind}:…/{Path(path).name}" if kind == "supernet" and sep else estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zero-cost", default="zero-cost:naswot",
                        choices=["zero-cost:params", "zero-cost:synflow", "zero-cost:naswot"])
    parser.add_argument("--zero-cost-trials", type=int, default=40)
    parser.add_argument("--supernet-trials", type=int, default=16)
    parser.add_argument("--finetune-steps", type=int, default=60,
                        help="the search's default: 60")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long: 4 trials each, tiny settings (writes no figures)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ray_throughput.json")
    args = parser.parse_args()
    # where the file goes is not a setting of the measurement (and may be an absolute path)
    provenance = Provenance.start({k: v for k, v in vars(args).items() if k != "out"})
    if args.smoke:
        args.zero_cost, args.zero_cost_trials, args.supernet_trials = "zero-cost:params", 4, 4
        args.finetune_steps = 1
        args.out = Path(tempfile.mkdtemp()) / "ray_throughput.json"
    if min(args.zero_cost_trials, args.supernet_trials) < 2:
        parser.error("at least 2 trials per configuration")
    # Ray's session files go to a temporary directory (short: socket paths must fit 107 bytes)
    temporary = {"ignore_cleanup_errors": True}  # Ray may still be writing a log
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp", **temporary) as ray_tmp, \
            tempfile.TemporaryDirectory(prefix="ray-bench-", **temporary) as scratch:
        os.environ.setdefault("RAY_TMPDIR", ray_tmp)
        result = measure(args, Path(scratch))
    print_table(result)
    write_result(args.out, result, provenance)  # --smoke: to a temporary directory
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
