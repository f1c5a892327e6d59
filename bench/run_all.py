"""Run every benchmark in a bounded time and regenerate the figures of bench/README.md.

    python bench/run_all.py                      # what `make bench` runs (~90 min on 2 cores)
    python bench/run_all.py --only latency_validation estimator_ranking
    python bench/run_all.py --readme-only        # the README table from the stored JSON
    python bench/run_all.py --smoke              # every benchmark's seconds-long mode

Benchmarks run one after another (never side by side: they time things), each under its own
time limit; one that fails or overruns is reported and the rest still run. The outcome of the
session (machine fingerprint, seconds and status per benchmark) goes to
``bench/results/bench_run.json``; then the "Latest figures" block of bench/README.md is
rewritten from ``bench/results/*.json``. The torchvision comparison needs its own venv
(`make bench-torchvision`); it runs here only when ``.venv-tv`` exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
LOGS = ROOT / "runs" / "bench-logs"
TV_PYTHON = ROOT / ".venv-tv" / "bin" / "python"
START, END = "<!-- figures:start (bench/run_all.py writes this block) -->", "<!-- figures:end -->"


@dataclass(frozen=True)
class Benchmark:
    name: str
    minutes: float  # time limit on this 2-core machine, about twice what a run took
    args: tuple[str, ...] = ()
    python: Path | None = None  # another interpreter (the torchvision venv)
    needs: Callable[[], str] | None = field(default=None, compare=False)  # why it cannot run
    path: Path | None = None  # default: bench/NAME.py

    @property
    def script(self) -> Path:
        return self.path or ROOT / "bench" / f"{self.name}.py"


def _torchvision_venv() -> str:
    return "" if TV_PYTHON.exists() else "needs .venv-tv: run `make bench-torchvision` once"


# Accuracy-bound benchmarks first, the pure timing ones last (the quietest stretch of a session).
BENCHMARKS = (
    Benchmark("estimator_ranking", 90),
    Benchmark("reference_lr", 150),  # retrains only when estimator_ranking's sample changed
    Benchmark("search_quality", 80),
    Benchmark("netadapt_vs_multiplier", 40),
    Benchmark("ray_throughput", 30),  # ~12 min expected on 2 quiet cores (not yet measured)
    Benchmark("latency_validation", 25),
    Benchmark("torchvision_equivalence", 10, python=TV_PYTHON, needs=_torchvision_venv),
)
BOUND_MINUTES = sum(b.minutes for b in BENCHMARKS)


def machine() -> dict:
    import torch

    from latency_models.device import cpu_model
    from nas.threads import usable_cores

    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "usable_cores": usable_cores(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def run(benchmark: Benchmark, smoke: bool) -> dict:
    python = benchmark.python or Path(sys.executable)
    command = [str(python), str(benchmark.script), *benchmark.args, *(["--smoke"] if smoke else [])]
    why = benchmark.needs() if benchmark.needs else ""
    record = {"name": benchmark.name, "command": " ".join(command[1:]),
              "limit_seconds": round(benchmark.minutes * 60)}
    if why:
        print(f"== {benchmark.name}: skipped ({why})", flush=True)
        return {**record, "status": "skipped", "why": why}
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{benchmark.name}.log"
    print(f"== {benchmark.name} (limit {benchmark.minutes} min; output also in {log})",
          flush=True)
    started = time.perf_counter()
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
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


# --------------------------------------------------------------------------- the README block
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _when(data: dict) -> str:
    return data.get("created") or data.get("final_redone_at") or "date not recorded"


def summary_latency(d: dict) -> list[str]:
    s = d["settings"]
    lines = [f"{s['archs']} random networks{' + the zoo' if s.get('zoo') else ''}, "
             f"{s['rounds']} interleaved rounds each; {_when(d)}", "",
             "| predictor | within ±5% | within ±10% | RMSE % | Spearman |",
             "|---|---|---|---|---|"]
    rows = dict(d["metrics"], **{"measurement vs itself": d["repeatability"]})
    for name, m in rows.items():
        lines.append(f"| {name.replace('_', ' ')} | {_pct(m['within_5pct'])} | "
                     f"{_pct(m['within_10pct'])} | {_num(m['rmse_pct'], 1)} | "
                     f"{_num(m['spearman'], 3)} |")
    t = d.get("throughput")
    if t:
        lines += ["", f"Predictor throughput: {t['per_second_from_specs']:,.0f} specs/s from "
                      f"ArchSpec objects, {t['per_second_encoded']:,.0f}/s on encoded arrays."]
    return lines


def summary_ranking(d: dict) -> list[str]:
    s = d["settings"]
    lr = f" at lr {s['lr']:g}" if "lr" in s else ""  # results before 2026-11-24 lack it
    agreement = d.get("seed_agreement", {})
    loo = agreement.get("mean_leave_one_out")
    loo = f"; one seed vs the mean of the others τ {loo:.3f}" if loo is not None else ""
    groups = list(d["ranking"][0].get("kendall_tau_within_head", {}))
    lines = [f"{s['archs']} architectures, stand-alone {s['epochs']} epochs{lr} × {s['seeds']} "
             f"seeds on {s['data']} {s['resolution']}²; seed-to-seed τ "
             f"{d['seed_to_seed_kendall_tau']:.3f}{loo}; {_when(d)}", "",
             "| estimator | Kendall τ | Spearman | s / candidate |"
             + "".join(f" τ, {g} |" for g in groups),
             "|---|---|---|---|" + "---|" * len(groups)]

    def fmt(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    for r in d["ranking"]:
        within = r.get("kendall_tau_within_head", {})
        lines.append(f"| {r['estimator']} | {r['kendall_tau']:.3f} | {r['spearman']:.3f} | "
                     f"{r['cost_seconds_per_candidate']:.2f} |"
                     + "".join(f" {fmt(within.get(g))} |" for g in groups))
    if loo:
        within = agreement.get("within_head_mean_leave_one_out", {})
        lines.append(f"| (stand-alone: one seed vs the mean of the others) | "
                     f"{agreement['mean_leave_one_out']:.3f} | | |"
                     + "".join(f" {fmt(within.get(g))} |" for g in groups))
    spread = _supernet_spread(d)
    if spread:
        lines.append(f"| ({spread}) | {d['supernet_seed_spread']['mean']:.3f} | | |"
                     + " |" * len(groups))
    lines += _other_samples()
    lines += ["", "| training throughput | plain eager img/s | TrainEstimator img/s | speed-up | "
              "+ torch.compile img/s (compile s) |", "|---|---|---|---|---|"]
    for r in d.get("throughput", []):
        compiled = r.get("compiled_images_per_s")
        compiled = "-" if compiled is None else f"{compiled:.0f} ({r['compile_seconds']:.0f} s)"
        lines.append(f"| {r['model']} (batch {r['batch']}) | {r['plain_images_per_s']:.0f} | "
                     f"{r['estimator_images_per_s']:.0f} | {r['speedup']:.2f}× | {compiled} |")
    return lines


def _supernet_spread(d: dict) -> str:
    """"<estimator>: mean over N supernets, min-max" when a run trained several; else ""."""
    spread = d.get("supernet_seed_spread")
    if not spread or len(spread["kendall_tau"]) < 2:
        return ""
    return (f"{spread['estimator']}: mean over {len(spread['kendall_tau'])} supernets, "
            f"{spread['min']:.3f}-{spread['max']:.3f}")


def _other_samples() -> list[str]:
    """One line per further sample of architectures (``estimator_ranking.py --arch-seed``)."""
    lines = []
    for path in sorted(RESULTS.glob("estimator_ranking-archs*.json")):
        d = json.loads(path.read_text())
        if "ranking" not in d:  # a stored reference whose run has not finished
            continue
        taus = ", ".join(f"{r['estimator']} {r['kendall_tau']:.3f}" for r in d["ranking"])
        loo = d["seed_agreement"].get("mean_leave_one_out")
        spread = _supernet_spread(d)
        lines += ["", f"Another sample of {d['settings']['archs']} architectures "
                      f"(`{path.name}`; {_when(d)}): Kendall τ {taus}"
                      + (f"; {spread}, mean {d['supernet_seed_spread']['mean']:.3f}"
                         if spread else "")
                      + (f"; one seed vs the mean of the others {loo:.3f}" if loo else "") + "."]
    return lines


def summary_reference_lr(d: dict) -> list[str]:
    lines = [f"A second stand-alone reference at lr {d['settings']['lr']:g} "
             f"({d['settings']['seeds']} seeds); each estimator's stored scores against each "
             f"reference; {_when(d)}"]
    for sample, e in d["samples"].items():
        if "ranking" not in e:  # training still under way
            continue
        refs = e["references"]
        lines += ["", f"Sample {sample} (`{e['source']}`): the two rates agree to τ "
                      f"{_num(e['tau_between_rates'], 3)}; mean top-1 "
                      + " / ".join(f"{r['mean_top1']:.1f}%" for r in refs.values())
                      + ", lowest single run "
                      + " / ".join(f"{r['lowest_top1']:.1f}%" for r in refs.values())
                      + ", one seed vs the others "
                      + " / ".join(_num(r["mean_leave_one_out"], 3) for r in refs.values())
                      + f" ({', '.join(refs)}).", ""]
        similar = e.get("similar_latency")  # absent from results written before 2026-11-25
        if similar:
            lines += [f"Last column: τ-a over the {similar['pairs']} pairs whose predicted "
                      f"latencies are within {similar['ratio']:g}× of each other, against the "
                      f"better rate (one stand-alone seed vs the others: "
                      f"{_num(similar['stand_alone_one_seed_vs_others'], 3)}).", ""]
        spread = e.get("finetuned_supernets_better_rate")
        if spread:
            lines += [f"Fine-tuned supernets against the better rate: mean τ "
                      f"{_num(spread['mean'], 3)} over {spread['supernets']} supernet(s) "
                      f"({_num(spread['min'], 3)}-{_num(spread['max'], 3)}).", ""]
        extra = [" τ-a, similar latency |"] if similar else []
        lines += ["| estimator |" + "".join(f" τ, {name} |" for name in refs) + "".join(extra),
                  "|---|" + "---|" * (len(refs) + len(extra))]
        for r in e["ranking"]:
            lines.append(f"| {r['estimator']} |"
                         + "".join(f" {_num(t, 3)} |" for t in r["kendall_tau"].values())
                         + (f" {_num(r.get('tau_similar_latency_better_rate'), 3)} |"
                            if similar else ""))
    return lines


def _budget_source(d: dict) -> str:
    if "v3_small_measured_ms" not in d:  # results written before the budget was predicted
        return "V3-Small measured"
    return f"V3-Small predicted by the searches' model; measured {d['v3_small_measured_ms']:.2f}"


def summary_search(d: dict) -> list[str]:
    s = d["settings"]
    lines = [f"{s['trials']} trials × {s['seeds']} seeds per strategy from {s['seed_arch']}, "
             f"budget {d['budget_ms']:.2f} ms ({_budget_source(d)}); {_when(d)}", "",
             "| strategy | mean best reward | mean best top-1 within budget | trial reaching it "
             "| wall s / run |", "|---|---|---|---|---|"]
    for name, r in d["summary"].items():
        lines.append(f"| {name} | {_num(r['best_reward_mean'])} | "
                     f"{_num(r['best_accuracy_within_budget_mean'])} | "
                     f"{_num(r['trial_reaching_it_mean'], 0)} | "
                     f"{_num(r['wall_seconds_mean'], 0)} |")
    f = d.get("final")
    if f:
        lines += ["", f"Found network measured {f['found_measured_ms']:.2f} ms against "
                      f"V3-Small's {f['v3_small_measured_ms']:.2f} ms, side by side."]
        for name, r in f.get("recipes", {}).items():  # both trained with the same recipe
            lines.append(f"Top-1 after {name} training (mean of {len(r['seeds'])} seeds): "
                         f"found {statistics.mean(r['found_accuracy']):.2f}%, V3-Small "
                         f"{statistics.mean(r['v3_small_accuracy']):.2f}%.")
    return lines


def summary_netadapt(d: dict) -> list[str]:
    lines = [f"{d['start']} on {d['data']}; NetAdapt δ {d['netadapt']['delta']:g}, "
             f"{d['netadapt']['short_steps']} short steps; from-scratch top-1 over "
             f"{len(d['seeds'])} seeds; {d.get('seconds', 0) / 60:.0f} min", "",
             "| NetAdapt measured ms | NetAdapt top-1 | width multiplier at that latency "
             "(interpolated) | carried weights + long fine-tune |", "|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['measured_ms']:.2f} | {r['top1_mean']:.2f} ± {r['top1_sd']:.2f} | "
                     f"{_num(r.get('interpolated_multiplier_top1'))} | "
                     f"{_num(r.get('carried_top1'))} |")
    return lines


def summary_torchvision(d: dict) -> list[str]:
    fp = d["fingerprint"]
    lines = [f"torch {fp['torch']}, torchvision {fp['torchvision']}, {fp['threads']} threads, "
             f"{fp['rounds']} interleaved rounds; {_when(d)}", "",
             "| model | params ours / tv | max abs diff | paired latency ratio ours/tv |",
             "|---|---|---|---|"]
    for r in d["v3"]:
        lines.append(f"| {r['model']} | {r['params_ours']:,} / {r['params_torchvision']:,} | "
                     f"{r['max_abs_diff']:.1e} | {r['ratio_paired']:.3f} |")
    return lines


def summary_ray(d: dict) -> list[str]:
    s = d["settings"]
    lines = [f"{s['zero_cost']} ({s['zero_cost_trials']} trials) and the supernet fine-tuned "
             f"{s['finetune_steps']} steps ({s['supernet_trials']} trials) on {s['data']} "
             f"{s['resolution']}²; one CPU and one torch thread per worker; {_when(d)}", "",
             "| estimator | executor | workers | trials/min | scoring s / trial | "
             "Ray extra ms / trial |", "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        executor = f"Ray, {r['workers']} node(s)" if r["executor"] == "ray" else "local"
        lines.append(f"| {r['estimator']} | {executor} | {r['workers']} | "
                     f"{r['trials_per_minute']:.1f} | {r['scoring_seconds_mean']:.2f} | "
                     f"{_num(r['ray_extra_ms_per_trial'], 0)} |")
    lines.append("")
    for name, ratio in d["ratios"].items():
        lines.append(f"{name}: Ray 2 nodes / 1 node {ratio['ray2_over_ray1']:.2f}×; Ray / "
                     f"local {ratio['ray1_over_local1']:.2f} at 1 worker, "
                     f"{ratio['ray2_over_local2']:.2f} at 2.")
    trips = ", ".join(f"{k} {v:.1f} ms" for k, v in d["ray_noop_round_trip_ms"].items())
    return lines + [f"Round trip of an empty Ray task (median): {trips}."]


SUMMARIES = {
    "latency_validation": ("Latency predictor vs measurement", summary_latency),
    "estimator_ranking": ("Accuracy estimators: ranking and cost", summary_ranking),
    "reference_lr": ("The reference's learning rate", summary_reference_lr),
    "search_quality": ("Search strategies at equal trials", summary_search),
    "netadapt_vs_multiplier": ("NetAdapt vs the width multiplier", summary_netadapt),
    "ray_throughput": ("Search throughput: local workers and Ray nodes", summary_ray),
    "torchvision_equivalence": ("Equivalence with torchvision", summary_torchvision),
}


def _is_full(session: dict) -> bool:
    return {b["name"] for b in session["benchmarks"]} >= {b.name for b in BENCHMARKS}


def merged_session(previous: dict | None, session: dict) -> dict:
    """What bench_run.json keeps: a full run replaces everything; a partial run (``--only``)
    is stored with the record of the last full run beside it, so the bound stays on record."""
    if _is_full(session):
        return session
    last_full = None
    if previous:
        last_full = previous if _is_full(previous) else previous.get("last_full")
    return {**session, "last_full": last_full}


def _session_lines(session: dict, how: str) -> list[str]:
    m = session["machine"]
    lines = [f"{how}: {session['finished']} on {m['cpu']}, {m['usable_cores']} usable cores, "
             f"Python {m['python']}, torch {m['torch']} ({session['seconds'] / 60:.0f} min; "
             f"bound {session['bound_minutes']} min).",
             "", "| benchmark | status | minutes (limit) |", "|---|---|---|"]
    for b in session["benchmarks"]:
        minutes = f"{b['seconds'] / 60:.1f}" if "seconds" in b else "–"
        lines.append(f"| {b['name']} | {b['status']} | {minutes} ({b['limit_seconds'] // 60}) |")
    return lines + [""]


def figures_block(session: dict | None) -> str:
    lines = [START, ""]
    if session and _is_full(session):
        lines += _session_lines(session, "Last run of `make bench`")
    elif session:
        if session.get("last_full"):
            lines += _session_lines(session["last_full"], "Last run of `make bench`")
        ran = " ".join(b["name"] for b in session["benchmarks"])
        lines += _session_lines(session, f"Then `bench/run_all.py --only {ran}` (its figures "
                                         f"below replace that run's)")
    for name, (title, summarise) in SUMMARIES.items():
        data = _load(name)
        lines += [f"#### {title} (`bench/{name}.py`)", ""]
        lines += summarise(data) if data else ["No result yet."]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_readme(session: dict | None, readme: Path = README) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no figures block ({START} … {END})")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + figures_block(session) + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--readme-only", action="store_true",
                        help="regenerate the README block from the stored JSON; run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="every benchmark's seconds-long mode (writes no figures)")
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    session_path = RESULTS / "bench_run.json"
    if args.readme_only:
        write_readme(json.loads(session_path.read_text()) if session_path.exists() else None,
                     args.readme)
        print(f"rewrote the figures block of {args.readme}")
        return
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    bound = sum(b.minutes for b in chosen)
    print(f"{len(chosen)} benchmark(s), one after another; at most {bound} min", flush=True)
    started = time.perf_counter()
    records = [run(b, args.smoke) for b in chosen]
    session = {"machine": machine(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "seconds": round(time.perf_counter() - started, 1), "bound_minutes": bound,
               "smoke": args.smoke, "benchmarks": records}
    for r in records:
        print(f"{r['name']:<26} {r['status']:<22} {r.get('seconds', 0) / 60:6.1f} min")
    if args.smoke:
        bad = [r for r in records if r["status"] not in ("ok", "skipped")]
        raise SystemExit(1 if bad else 0)
    from nas.export import write_text

    previous = json.loads(session_path.read_text()) if session_path.exists() else None
    session = merged_session(previous, session)
    write_text(session_path, json.dumps(session, indent=1) + "\n")
    write_readme(session, args.readme)
    print(f"wrote {session_path.relative_to(ROOT)} and the figures block of {args.readme}")
    if any(r["status"] not in ("ok", "skipped") for r in records):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
