"""Figures of latency: the predictor against end-to-end measurement, the timer against
itself, and our V3 networks against torchvision's (and timm's) in weights and speed."""

from __future__ import annotations

from figures_common import Results, fmt_num, fmt_pct, missing, run_date, with_source


def _self_how(d: dict) -> str:
    """How a result's repeatability was measured (older files: halves of one pass)."""
    return "(second pass vs first)" if d["settings"].get("passes") == 2 \
        else "(odd vs even rounds)"


def _worst_zoo(d: dict) -> str:
    """The zoo model the recalibrated predictor misses most, with its signed error."""
    if not d.get("zoo"):
        return "–"
    worst = max(d["zoo"], key=lambda z: abs(z["recalibrated"] / z["measured_ms"] - 1))
    return f"{worst['model']} {100 * (worst['recalibrated'] / worst['measured_ms'] - 1):+.1f}%"


def _passes(spread: list[float]) -> str:
    return ", ".join(f"pass {i + 1} {x:.1f}%" for i, x in enumerate(spread))


def _drift_removed(d: dict) -> str:
    """Within ±5% once the passes' common drift is removed, and the drift (older files: –)."""
    if "repeatability_drift_removed" not in d:
        return "–"
    return (f"{fmt_pct(d['repeatability_drift_removed']['within_5pct'])} "
            f"(drift {d['pass_drift_pct']:+.1f}%)")


def _metric_row(name: str, m: dict) -> str:
    return (f"| {name.replace('_', ' ')} | {fmt_pct(m['within_5pct'])} | "
            f"{fmt_pct(m['within_10pct'])} | {fmt_num(m['rmse_pct'], 1)} | "
            f"{fmt_num(m.get('max_abs_error_pct'), 1)} | "
            f"{fmt_num(m.get('mean_error_pct'), 1)} | {fmt_num(m['spearman'], 3)} |")


def _rounds(s: dict) -> str:
    if s.get("passes") == 2:
        return (f"two passes of {s['rounds_per_pass']} interleaved rounds, {s['statistic']} of "
                f"both")
    return f"{s['rounds']} interleaved rounds, {s['statistic']}"


def _noise(s: dict) -> str:
    spread = s.get("median_above_min_pct")
    if not spread:
        return ""
    return (" The machine's noise while measuring (per network, the median sample above the "
            f"minimum, median over networks): {_passes(spread)}.")


def render_latency_validation(results: Results) -> list[str]:
    """The predictor against end-to-end measurement: the whole table, then one row per other
    backend and thread count validated (latency_validation-BACKEND-Nthreads.json)."""
    d = results.get("latency_validation")
    if d is None:
        return missing("latency_validation")
    s, fp = d["settings"], d["fingerprint"]
    table = d["table"]
    if isinstance(table, dict):  # named by fingerprint key and checksum (older files: file name)
        table = f"{table['fingerprint_key']}, checksum {table['checksum'][:12]}"
    lines = [f"{s['archs']} random networks{' + the zoo' if s.get('zoo') else ''}, each "
             f"measured end to end ({_rounds(s)}); "
             f"{fp['cpu']}, backend {fp['backend']}, {fp['threads']} thread(s), batch "
             f"{fp['batch']}, {fp['resolution']}²; table `{table}`.{_noise(s)}", "",
             "| predictor | within ±5% | within ±10% | RMSE % | max abs err % | mean err % | "
             "Spearman |", "|---|---|---|---|---|---|---|"]
    rows = dict(d["metrics"], **{f"measurement vs itself {_self_how(d)}": d["repeatability"]})
    if "repeatability_drift_removed" in d:
        rows[f"measurement vs itself, the common drift between the passes "
             f"({d['pass_drift_pct']:+.1f}%) removed"] = d["repeatability_drift_removed"]
    lines += [_metric_row(name, m) for name, m in rows.items()]
    best = max(d["metrics"], key=lambda k: d["metrics"][k]["within_10pct"])
    closer = d["metrics"][best]["within_10pct"] >= d["repeatability"]["within_10pct"]
    lines += ["", f"Within ±10%, the closest predictor ({best.replace('_', ' ')}) agrees with "
                  "the measurement " + ("at least as often as" if closer else "less often than")
                  + " the measurement agrees with itself"
                  + (": here the measurement itself limits how closely a predictor can be "
                     "checked." if closer else ".")]
    if d.get("zoo"):
        lines += ["", f"Zoo models (outside the space), recalibrated predictor: largest error "
                      f"{_worst_zoo(d)}."]
    t = d.get("throughput")
    if t and "runs" in t:
        lines += ["", f"Predictor throughput, median of {t['runs']} runs of {t['specs']:,} specs "
                      f"(min-max): {t['per_second_from_specs']:,.0f} specs/s from `ArchSpec` "
                      f"objects ({t['per_second_from_specs_min']:,.0f}-"
                      f"{t['per_second_from_specs_max']:,.0f}), {t['per_second_encoded']:,.0f}/s "
                      f"on encoded arrays ({t['per_second_encoded_min']:,.0f}-"
                      f"{t['per_second_encoded_max']:,.0f})."]
    elif t:
        lines += ["", f"Predictor throughput: {t['per_second_from_specs']:,.0f} specs/s from "
                      f"`ArchSpec` objects, {t['per_second_encoded']:,.0f}/s on encoded arrays."]
    others = results.names("latency_validation-*")
    if others:
        lines += ["", "Other backends and thread counts (same networks, recalibrated predictor "
                      "and the measurement against itself; each its own table):", "",
                  "| backend | threads | calibration networks | recalibrated ±5% | ±10% | "
                  "Spearman | worst zoo model | itself ±5% | ±10% | itself ±5%, drift removed "
                  "| noise (pass 1, 2) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in others:
            o = results.get(name)
            ofp, m, rep = o["fingerprint"], o["metrics"]["recalibrated"], o["repeatability"]
            noise = o["settings"].get("median_above_min_pct") or []
            lines.append(f"| {ofp['backend']} | {ofp['threads']} | "
                         f"{o['settings'].get('calibration_archs', '–')} | "
                         f"{fmt_pct(m['within_5pct'])} "
                         f"| {fmt_pct(m['within_10pct'])} | {fmt_num(m['spearman'], 3)} | "
                         f"{_worst_zoo(o)} | {fmt_pct(rep['within_5pct'])} | "
                         f"{fmt_pct(rep['within_10pct'])} | {_drift_removed(o)} | "
                         f"{', '.join(f'{x:.1f}%' for x in noise) or '–'} |")
    return with_source(results, "latency_validation", lines)


def render_latency_summary(results: Results) -> list[str]:
    """Two sentences for the pages that use the predictor: how close, how well it ranks."""
    d = results.get("latency_validation")
    if d is None:
        return missing("latency_validation")
    m, rep = d["metrics"], d["repeatability"]
    within = ", ".join(f"{name.replace('_', ' ')} {fmt_pct(x['within_10pct'])}"
                       for name, x in m.items())
    spearman = [x["spearman"] for x in m.values()]
    return [f"Latest validation ({run_date(d)}, {d['settings']['archs']} random networks"
            f"{' + the zoo' if d['settings'].get('zoo') else ''}): predictions within ±10% of "
            f"the end-to-end measurement: {within}; "
            f"the measurement against itself {_self_how(d)} agrees that closely for "
            f"{fmt_pct(rep['within_10pct'])}. Spearman rank "
            f"correlation with the measurement {min(spearman):.3f}-{max(spearman):.3f} (the "
            f"measurement with itself "
            f"{rep['spearman']:.3f}). Table and method: bench/README.md."]


def render_timer_variants(results: Results) -> list[str]:
    """The timer against itself: each variant's second pass over the same networks vs its first."""
    lines: list[str] = []
    # not the exploratory --tag runs
    for name in ("timer_variants", "timer_variants_2threads", "timer_variants_onnxruntime"):
        d = results.get(name)
        if d is None:
            continue
        fp = d["fingerprint"]
        lines += [f"{len(d['networks'])} networks ({d['archs']} random"
                  f"{' + the zoo' if d['zoo'] else ''}), each measured twice by every variant "
                  f"(pass 2 against pass 1, models built afresh); {fp['cpu']}, "
                  f"{'torch eager' if fp['backend'] == 'torch' else fp['backend']}, "
                  f"{fp['threads']} thread(s), batch {fp['batch']}, {fp['resolution']}²; the "
                  f"whole run {d['seconds'] / 60:.1f} min.", "",
                  "| variant | within ±10% | within ±5% | median gap % | max gap % | "
                  "mean shift % | within ±5%, shift removed | s per pass |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in d["rows"]:
            removed = r.get("shift_removed")
            lines.append(f"| {r['variant']} | {fmt_pct(r['within_10pct'])} | "
                         f"{fmt_pct(r['within_5pct'])} | {fmt_num(r['median_gap_pct'])} | "
                         f"{fmt_num(r['max_gap_pct'], 1)} | {fmt_num(r['mean_shift_pct'], 1)} | "
                         f"{fmt_pct(removed['within_5pct']) if removed else '–'} | "
                         f"{fmt_num(r['seconds_per_pass'], 0)} |")
        lines = with_source(results, name, lines) + [""]
    return lines[:-1] if lines else missing("timer_variants")


def render_torchvision_equivalence(results: Results) -> list[str]:
    """torchvision's weights in our V3 models, and the latency of both."""
    d = results.get("torchvision_equivalence")
    if d is None:
        return missing("torchvision_equivalence")
    fp = d["fingerprint"]
    lines = [f"torch {fp['torch']}, torchvision {fp['torchvision']}, {fp['threads']} threads, "
             f"batch {fp['batch']}, {fp['resolution']}², {fp['rounds']} rounds ({fp['method']}).",
             "", "| model | params ours / tv | max abs diff | median ms ours / tv | "
             "paired latency ratio ours/tv |", "|---|---|---|---|---|"]
    for r in d["v3"]:
        lines.append(f"| {r['model']} | {r['params_ours']:,} / {r['params_torchvision']:,} | "
                     f"{r['max_abs_diff']:.1e} | {r['median_ms_ours']:.2f} / "
                     f"{r['median_ms_torchvision']:.2f} | {r['ratio_paired']:.3f} |")
    same = ", ".join(f"{r['model']} {r['params_ours']:,}" + (
        "" if r["params_ours"] == r["params_torchvision"]
        else f" (torchvision {r['params_torchvision']:,})") for r in d.get("params", []))
    if same:
        lines += ["", f"Parameter counts of the rest of the zoo, equal to torchvision's unless "
                      f"given: {same}."]
    if d.get("timm"):
        lines += ["", f"`nas export --format timm`, built by timm {fp['timm']}'s decoder and "
                      f"MobileNetV3 (our weights copied in, outputs compared):", "",
                  "| network | params ours / timm | timm's own preset | max abs diff |",
                  "|---|---|---|---|"]
        for r in d["timm"]:
            preset = f"{r['timm_preset']} {r['params_timm_preset']:,}" if r["timm_preset"] \
                else "-"
            diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
            lines.append(f"| {r['network']} | {r['params_ours']:,} / {r['params_timm']:,} | "
                         f"{preset} | {diff} |")
    return with_source(results, "torchvision_equivalence", lines)
