"""Figures of the benchmark runs themselves: `make test` and `make demo` on a fresh clone, the
time limits and sessions of `make bench`, and which run wrote each result file."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks import BENCHMARKS, is_full
from figures_common import Results, fmt_minutes, run_date


def render_newcomer(results: Results) -> list[str]:
    """How long `make test` and `make demo` take on a fresh clone (the lead's benchmark)."""
    d = results.get("newcomer")
    if d is None:
        return ["How long `make test` and `make demo` take on a fresh clone: not measured yet "
                "(`bench/results/newcomer.json`)."]
    machine = d.get("machine")
    if isinstance(machine, Mapping):  # a fingerprint, or a plain description
        cores = machine.get("usable_cores") or machine.get("logical_cores")
        machine = ", ".join(str(x) for x in (machine.get("cpu"), cores and f"{cores} cores")
                            if x)
    parts = [f"`make test` {fmt_minutes(d.get('make_test_seconds'))}",
             f"`make demo` {fmt_minutes(d.get('make_demo_cold_seconds'))} on a fresh clone "
             "(installing, profiling the latency table and training the search's supernet "
             "included)",
             f"{fmt_minutes(d.get('make_demo_warm_seconds'))} once those are cached"]
    lines = [f"Measured {d.get('date') or run_date(d)} on {machine or 'an unrecorded machine'}: "
             + "; ".join(parts) + " (`bench/results/newcomer.json`)."]
    checks = d.get("bad_budgets") or []
    if checks:
        said = "; ".join(f"`nas-search --budget {c['budget']}` {c['seconds']:.1f} s, exit "
                         f"{c['exit_code']}" for c in checks)
        lines += ["", "A budget that is not a latency, or that no network reaches, is refused on "
                  f"the same fresh clone with an empty cache in: {said}."]
    return lines


def render_bench_bound(results: Results) -> list[str]:
    """The bound of `make bench` (the sum of its benchmarks' limits) and its last full run."""
    bound = sum(b.minutes for b in BENCHMARKS)
    lines = [f"`make bench` stops within {bound:g} min: the sum of the time limits of its "
             "benchmarks in `bench/benchmarks.py`."]
    full = _last_full(results.get("bench_run"))
    if full:
        lines[0] += (f" Its last full run took {fmt_minutes(full['seconds'])} "
                     f"({full['finished']}, {full['machine']['cpu']}, "
                     f"{full['machine']['usable_cores']} usable cores), when the limits added "
                     f"up to {full['bound_minutes']:g} min.")
    else:
        lines[0] += " No full run is on record."
    return lines


def _session(registry: Mapping | None) -> Mapping | None:
    return (registry or {}).get("make_bench")


def _last_full(registry: Mapping | None) -> Mapping | None:
    session = _session(registry)
    if not session:
        return None
    if is_full(session, BENCHMARKS):
        return session
    return session.get("last_full")


def _session_lines(session: Mapping, how: str) -> list[str]:
    m = session["machine"]
    lines = [f"{how}: {session['finished']} on {m['cpu']}, {m['usable_cores']} usable cores, "
             f"Python {m['python']}, torch {m['torch']}: {fmt_minutes(session['seconds'])} "
             f"(bound then {session['bound_minutes']:g} min).",
             "", "| benchmark | status | minutes (limit) |", "|---|---|---|"]
    for b in session["benchmarks"]:
        minutes = f"{b['seconds'] / 60:.1f}" if "seconds" in b else "–"
        lines.append(f"| {b['name']} | {b['status']} | {minutes} ({b['limit_seconds'] // 60}) |")
    return lines


def render_bench_run(results: Results) -> list[str]:
    """The time limits of `make bench`, its last full run and any later partial one."""
    limits = ", ".join(f"{b.name} {b.minutes:g}" for b in BENCHMARKS)
    lines = [f"Time limits in `bench/benchmarks.py` (min): {limits}; "
             f"{sum(b.minutes for b in BENCHMARKS):g} in all."]
    session = _session(results.get("bench_run"))
    full = _last_full(results.get("bench_run"))
    if full:
        lines += ["", *_session_lines(full, "Last full run of `make bench`")]
    if session and session is not full:
        ran = " ".join(b["name"] for b in session["benchmarks"])
        lines += ["", *_session_lines(session, f"Then `bench/run_all.py --only {ran}`")]
    if not session:
        lines += ["", "No run of `make bench` is on record."]
    return lines


def render_provenance(results: Results) -> list[str]:
    """Which run wrote each result file (from each file's own record)."""
    lines = ["| result file | finished | command | commit | machine | minutes |",
             "|---|---|---|---|---|---|"]
    for name in results.names("*"):
        data = results.get(name)
        p = (data or {}).get("provenance")
        if name == "bench_run" or not p:
            continue
        star = " (reconstructed)" if p.get("reconstructed") else ""
        commit = (p.get("commit") or "–")[:7] + star
        seconds = p.get("seconds")
        lines.append(f"| `{name}.json` | {run_date(data)} | `{p['command']}` | {commit} | "
                     f"{(p.get('machine') or {}).get('cpu', '–')} | "
                     f"{'–' if seconds is None else f'{seconds / 60:.1f}'} |")
    return lines
