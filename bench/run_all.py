"""Run every benchmark in a bounded time, then regenerate the figures of the docs.

    python bench/run_all.py                      # what `make bench` runs
    python bench/run_all.py --only latency_validation estimator_ranking
    python bench/run_all.py --smoke              # every benchmark's seconds-long mode

The benchmarks of ``bench/benchmarks.py`` run one after another (never side by side: they time
things), each under its own time limit; one that fails or overruns is reported and the rest
still run. Each benchmark writes its result file with its provenance and lists its run in
``bench/results/bench_run.json`` (``bench/provenance.py``); this script adds the session
(machine, commit, minutes and status per benchmark) under ``"make_bench"``, then rewrites the
figures blocks of README.md, docs/*.md and bench/README.md from the result files
(``bench/render_docs.py``, which also runs alone). The torchvision comparison needs its own venv
(`make bench-torchvision`); it runs here only when ``.venv-tv`` exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LOGS = ROOT / "runs" / "bench-logs"
sys.path.insert(0, str(ROOT / "bench"))  # benchmarks.py, provenance.py, render_docs.py

import render_docs  # noqa: E402
from benchmarks import BENCHMARKS, Benchmark, is_full  # noqa: E402
from provenance import SESSION_ENV, commit, machine, now, update_registry  # noqa: E402


def run(benchmark: Benchmark, smoke: bool, session: str | None = None) -> dict:
    """Run one benchmark under its limit; ``session`` (the start of this `make bench`) goes
    into the provenance of the result file it writes."""
    python = benchmark.python or Path(sys.executable)
    command = [str(python), str(benchmark.script), *benchmark.args, *(["--smoke"] if smoke else [])]
    why = benchmark.needs() if benchmark.needs else ""
    record = {"name": benchmark.name,
              "command": " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c
                                  for c in command[1:]),
              "limit_seconds": round(benchmark.minutes * 60)}
    if why:
        print(f"== {benchmark.name}: skipped ({why})", flush=True)
        return {**record, "status": "skipped", "why": why}
    environment = {**os.environ, **({SESSION_ENV: session} if session else {})}
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{benchmark.name}.log"
    print(f"== {benchmark.name} (limit {benchmark.minutes} min; output also in {log})",
          flush=True)
    started = time.perf_counter()
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=environment)
        overran = threading.Event()

        def stop() -> None:
            overran.set()
            process.kill()

        timer = threading.Timer(benchmark.minutes * 60, stop)  # a silent hang is caught too
        timer.start()
        try:
            for line in process.stdout:  # shown as it comes, kept in the log
                sys.stdout.write(line)
                sink.write(line)
            code = process.wait()
        finally:
            timer.cancel()
    status = "over the time limit" if overran.is_set() else \
        "ok" if code == 0 else f"failed (exit {code})"
    seconds = round(time.perf_counter() - started, 1)
    print(f"== {benchmark.name}: {status}, {seconds:.0f} s", flush=True)
    return {**record, "status": status, "seconds": seconds,
            "log": os.path.relpath(log, ROOT)}


def merged_session(previous: dict | None, session: dict) -> dict:
    """What bench_run.json keeps: a full run replaces everything; a partial run (``--only``)
    is stored with the record of the last full run beside it, so the bound stays on record."""
    if is_full(session, BENCHMARKS):
        return session
    last_full = None
    if previous:
        last_full = previous if is_full(previous, BENCHMARKS) else previous.get("last_full")
    return {**session, "last_full": last_full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--smoke", action="store_true",
                        help="every benchmark's seconds-long mode (writes no figures)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    bound = sum(b.minutes for b in chosen)
    print(f"{len(chosen)} benchmark(s), one after another; at most {bound:g} min", flush=True)
    started_at, started = now(), time.perf_counter()
    head, dirty = commit()
    records = [run(b, args.smoke, started_at) for b in chosen]
    session = {"machine": machine(), "commit": head, "dirty": dirty, "started": started_at,
               "finished": now(), "seconds": round(time.perf_counter() - started, 1),
               "bound_minutes": bound, "smoke": args.smoke, "benchmarks": records}
    for r in records:
        print(f"{r['name']:<26} {r['status']:<22} {r.get('seconds', 0) / 60:6.1f} min")
    if args.smoke:
        bad = [r for r in records if r["status"] not in ("ok", "skipped")]
        raise SystemExit(1 if bad else 0)

    def keep(registry: dict) -> None:
        registry["make_bench"] = merged_session(registry.get("make_bench"), session)

    update_registry(RESULTS, keep)
    # Rendered even when a benchmark failed: the others' result files are new.
    rewritten = render_docs.render_docs(render_docs.doc_paths(), render_docs.Results(RESULTS),
                                        write=True)
    print(f"wrote {os.path.relpath(RESULTS / 'bench_run.json', ROOT)}; rewrote "
          f"{len(rewritten)} figures block(s) of the docs")
    if any(r["status"] not in ("ok", "skipped") for r in records):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
