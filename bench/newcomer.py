"""A newcomer's first ten minutes, timed as a newcomer meets them.

Clones this repository (its committed HEAD) into a temporary folder, points ``NAS_CACHE_DIR``
at an empty folder, and runs the README's two commands there with a stopwatch:

1. ``make test`` in a fresh clone (the install included);
2. ``make demo`` in a second fresh clone with a second empty cache (the install, the latency
   table, the supernet and the search included): the cold demo;
3. ``make demo`` again in that clone: the warm demo (everything cached);
4. in the first clone (installed), ``nas-search`` with a budget that is not a latency
   (``fast``) and one that nothing reaches (``0.001ms``), each on its own empty cache: both
   must fail within seconds, in one line, the second naming the smallest reachable latency.

Each command's output goes to a log, as in CI; the longest silence of each log (the most
seconds between two lines) shows whether a reader of the log sees progress. Writes
``bench/results/newcomer.json`` (the README's figures). Run it on a quiet machine: it takes
about half an hour, and nothing else may run meanwhile.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import ROOT, Provenance, machine, write_result  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "newcomer.json"
GOALS_SECONDS = {"make test": 600, "make demo (cold)": 600, "make demo (warm)": 300}
BAD_BUDGETS = ("fast", "0.001ms")
BAD_BUDGET_GOAL_SECONDS = 30


@dataclass
class Timed:
    command: str
    seconds: float
    exit_code: int
    max_silence_seconds: float  # the longest stretch without a line of output
    last_line: str


def run_logged(command: list[str], cwd: Path, env: dict[str, str], log: Path,
               timeout: float) -> Timed:
    """Run ``command`` with its output (stdout and stderr) going to ``log`` through a pipe,
    timing it and the gaps between its lines."""
    start = last = time.monotonic()
    silence = 0.0
    lines: list[str] = []
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                now = time.monotonic()
                silence, last = max(silence, now - last), now
                sink.write(f"[{now - start:8.1f}s] {line}")
                sink.flush()  # the log can be followed while the command runs
                if line.strip():
                    lines.append(line.strip())
            code = process.wait()
        finally:
            timer.cancel()
    seconds = time.monotonic() - start
    silence = max(silence, time.monotonic() - last)
    return Timed(" ".join(command), round(seconds, 1), code, round(silence, 1),
                 lines[-1] if lines else "")


def bad_budget(clone: Path, budget: str, env: dict[str, str], log: Path) -> dict:
    """``nas-search --budget BUDGET`` on an empty cache: seconds, exit code, lines of output,
    and the smallest reachable latency the message names (None: it names none)."""
    timed = run_logged([str(clone / ".venv" / "bin" / "nas-search"), "--budget", budget],
                       clone, env, log, timeout=600)
    lines = [line for line in log.read_text().splitlines() if line.split("] ", 1)[-1].strip()]
    return {"budget": budget, "seconds": timed.seconds, "exit_code": timed.exit_code,
            "lines": len(lines), "message": timed.last_line,
            "smallest_ms": smallest_named(timed.last_line)}


def smallest_named(message: str) -> float | None:
    """The smallest reachable latency an error names ("... reaches on this device: 3.63 ms")."""
    named = re.search(r"reaches[^:]*: (\d+(?:\.\d+)?) ?ms", message)
    return float(named.group(1)) if named else None


def fresh_clone(parent: Path, name: str) -> Path:
    target = parent / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-test", action="store_true",
                        help="time only the demo (prints the figures, writes no file)")
    parser.add_argument("--keep", action="store_true", help="keep the clones and logs")
    args = parser.parse_args()
    provenance = Provenance.start(vars(args))
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                      capture_output=True, text=True).stdout.strip():
        print("note: uncommitted changes are not in the clone; it times the committed HEAD")
    work = Path(tempfile.mkdtemp(prefix="nas-newcomer-"))
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("NAS_", "VIRTUAL_ENV", "PYTHON"))}
    timed: dict[str, Timed] = {}
    checks: list[dict] = []
    try:
        if not args.skip_test:
            clone = fresh_clone(work, "test")
            env = {**base_env, "NAS_CACHE_DIR": str(work / "cache-test")}
            timed["make test"] = run_logged(["make", "test"], clone, env, work / "test.log",
                                            timeout=3 * 3600)
            print(f"make test: {timed['make test'].seconds / 60:.1f} min, exit "
                  f"{timed['make test'].exit_code}: {timed['make test'].last_line}")
            for i, budget in enumerate(BAD_BUDGETS):
                env = {**base_env, "NAS_CACHE_DIR": str(work / f"cache-budget{i}")}
                checks.append(bad_budget(clone, budget, env, work / f"budget{i}.log"))
                print(f"nas-search --budget {budget}: {checks[-1]['seconds']:.1f} s, exit "
                      f"{checks[-1]['exit_code']}, {checks[-1]['lines']} line(s): "
                      f"{checks[-1]['message']}")
        clone = fresh_clone(work, "demo")
        env = {**base_env, "NAS_CACHE_DIR": str(work / "cache-demo")}
        for label in ("make demo (cold)", "make demo (warm)"):
            log = work / f"{label.split('(')[1].rstrip(')')}-demo.log"
            timed[label] = run_logged(["make", "demo"], clone, env, log, timeout=3 * 3600)
            print(f"{label}: {timed[label].seconds / 60:.1f} min, exit "
                  f"{timed[label].exit_code}, longest silence in the log "
                  f"{timed[label].max_silence_seconds:.0f} s")
    finally:
        if args.keep:
            print(f"clones and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = [label for label, t in timed.items() if t.exit_code != 0]
    failed += [f"--budget {c['budget']} (exit {c['exit_code']}, expected 2)" for c in checks
               if c["exit_code"] != 2]
    print("\n| command | minutes | goal | longest silence s |\n|---|---|---|---|")
    for label, t in timed.items():
        print(f"| {label} | {t.seconds / 60:.1f} | ≤ {GOALS_SECONDS[label] / 60:.0f} | "
              f"{t.max_silence_seconds:.0f} |")
    if failed:
        print(f"not written: {', '.join(failed)} failed (see the logs; --keep keeps them)")
        return 1
    if args.skip_test:
        return 0
    test = timed["make test"]
    summary = re.search(r"\d+ passed.*", test.last_line)
    payload = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "make_test_seconds": test.seconds,
        "make_test_summary": summary.group(0) if summary else None,
        "make_demo_cold_seconds": timed["make demo (cold)"].seconds,
        "make_demo_warm_seconds": timed["make demo (warm)"].seconds,
        "goals_seconds": GOALS_SECONDS,
        "bad_budgets": checks,
        "bad_budget_goal_seconds": BAD_BUDGET_GOAL_SECONDS,
        "runs": {label: {k: v for k, v in asdict(t).items() if k != "last_line"}
                 for label, t in timed.items()},
    }
    write_result(RESULTS, payload, provenance)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
