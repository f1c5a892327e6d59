"""Figures of the accuracy estimators: each sample's ranking against stand-alone training, the
second learning rate, the default estimator's verdict against the goal, and training
throughput."""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from figures_common import (
    Results,
    fmt_mean_sd,
    fmt_num,
    fmt_tau,
    missing,
    run_date,
    with_source,
)

GOAL_TAU = 0.5  # the ranking goal of the accuracy issue, fixed before the samples were measured


def _finetuned(d: Mapping) -> tuple[str, list[dict], list[dict]]:
    """(name, the fine-tuned supernets' rows, every other estimator's rows) of a ranking."""
    base = d["supernet_seed_spread"]["estimator"]
    mine = [r for r in d["ranking"] if r["estimator"] == base
            or r["estimator"].startswith(f"{base} (")]
    return base, mine, [r for r in d["ranking"] if r not in mine]


def _sample_of(name: str) -> str:
    match = re.search(r"-archs(\d+)$", name)
    return match.group(1) if match else "11"


def _ranking_name(sample: str) -> str:
    return "estimator_ranking" if sample == "11" else f"estimator_ranking-archs{sample}"


def render_estimator_ranking(results: Results, sample: str = "11") -> list[str]:
    """One sample of architectures: every estimator against stand-alone training at lr 0.05."""
    name = _ranking_name(sample)
    d = results.get(name)
    if d is None or "ranking" not in d:
        return missing(name)
    s = d["settings"]
    agreement = d.get("seed_agreement", {})
    groups = list(d["ranking"][0].get("kendall_tau_within_head", {}))
    lines = [f"Sample {sample}: {s['archs']} architectures, stand-alone {s['epochs']} epochs at "
             f"lr {s['lr']:g} × {s['seeds']} seeds on {s['data']} {s['resolution']}²; "
             f"{s.get('supernet_seeds', 1)} supernet(s) of {s['supernet']['steps']} steps.", "",
             "| estimator | Kendall τ | Spearman | s / candidate |"
             + "".join(f" τ, {g} |" for g in groups),
             "|---|---|---|---|" + "---|" * len(groups)]
    for r in d["ranking"]:
        within = r.get("kendall_tau_within_head", {})
        lines.append(f"| {r['estimator']} | {fmt_tau(r['kendall_tau'])} | "
                     f"{fmt_tau(r['spearman'])} | {r['cost_seconds_per_candidate']:.2f} |"
                     + "".join(f" {fmt_tau(within.get(g))} |" for g in groups))
    if agreement.get("mean_leave_one_out") is not None:
        within = agreement.get("within_head_mean_leave_one_out", {})
        lines.append(f"| (stand-alone: one seed vs the mean of the others) | "
                     f"{fmt_tau(agreement['mean_leave_one_out'])} | | |"
                     + "".join(f" {fmt_tau(within.get(g))} |" for g in groups))
    lines.append(f"| (stand-alone: seed vs seed, mean over pairs) | "
                 f"{fmt_tau(d['seed_to_seed_kendall_tau'])} | | |" + " |" * len(groups))
    spread = d.get("supernet_seed_spread")
    if spread and len(spread["kendall_tau"]) > 1:
        lines.append(f"| ({spread['estimator']}: mean over {len(spread['kendall_tau'])} "
                     f"supernets, {fmt_tau(spread['min'])}-{fmt_tau(spread['max'])}) | "
                     f"{fmt_tau(spread['mean'])} | | |" + " |" * len(groups))
    return with_source(results, name, lines)


def render_reference_lr(results: Results, sample: str = "11") -> list[str]:
    """One sample against the second learning rate and each architecture's better rate."""
    d = results.get("reference_lr")
    e = (d or {}).get("samples", {}).get(sample)
    if e is None or "ranking" not in e:
        return missing("reference_lr") if d is None else \
            [f"Sample {sample} has no finished second-rate reference yet."]
    refs = e["references"]
    counts = {rate: e["better_rate"].count(rate) for rate in dict.fromkeys(e["better_rate"])}
    lines = [f"Sample {sample} (`{e['source']}`), stand-alone again at lr "
             f"{d['settings']['lr']:g} ({d['settings']['seeds']} seeds): the two rates agree "
             f"to τ {fmt_tau(e['tau_between_rates'])}; the better rate is "
             + ", ".join(f"{rate} for {n}" for rate, n in counts.items())
             + " of the architectures.", "",
             "| reference |" + "".join(f" {r} |" for r in refs), "|---|" + "---|" * len(refs),
             "| mean top-1 |" + "".join(f" {r['mean_top1']:.1f}% |" for r in refs.values()),
             "| lowest single run |" + "".join(f" {r['lowest_top1']:.1f}% |"
                                               for r in refs.values()),
             "| one seed vs the mean of the others (τ) |"
             + "".join(f" {fmt_tau(r['mean_leave_one_out'])} |" for r in refs.values())]
    heads = list(dict.fromkeys(h for r in refs.values() for h in r.get("head_mean_top1", {})))
    for head in heads:
        lines.append(f"| mean top-1, {head} |" + "".join(
            f" {fmt_num((r.get('head_mean_top1') or {}).get(head), 1)}% |" for r in refs.values()))
    lines.append("")
    similar = e.get("similar_latency")
    extra = [" τ-a, similar latency, better rate |"] if similar else []
    lines += ["| estimator |" + "".join(f" τ, {name} |" for name in refs) + "".join(extra),
              "|---|" + "---|" * (len(refs) + len(extra))]
    for r in e["ranking"]:
        lines.append(f"| {r['estimator']} |"
                     + "".join(f" {fmt_tau(t)} |" for t in r["kendall_tau"].values())
                     + (f" {fmt_tau(r.get('tau_similar_latency_better_rate'))} |"
                        if similar else ""))
    if similar:
        lines += ["", f"τ-a, similar latency: over the {similar['pairs']} pairs whose predicted "
                      f"latencies are within {similar['ratio']:g}× of each other (one "
                      f"stand-alone seed vs the others on those pairs: "
                      f"{fmt_tau(similar['stand_alone_one_seed_vs_others'])})."]
    return with_source(results, "reference_lr", lines)


RETURNS = (("train-", "top-1 %"), ("supernet", "top-1 %"), ("zero-cost:params", "a count"),
           ("zero-cost:", "a score"), ("predicted latency", "ms"))  # what each estimator gives


def _returns(estimator: str) -> str:
    return next((what for prefix, what in RETURNS if estimator.startswith(prefix)), "?")


@dataclass(frozen=True)
class Scored:
    """Every estimator's τ on one sample against one reference."""

    sample: str
    reference: str
    tau: dict[str, float | None]
    finetuned: tuple[str, ...]  # the fine-tuned supernets' estimator names, supernet seed order


def _scored(results: Results) -> list[Scored]:
    """Per sample: against the benchmark's own rate, then each architecture's better rate."""
    out = []
    for name in results.names("estimator_ranking*"):
        d = results.get(name)
        if not d or "ranking" not in d or "supernet_seed_spread" not in d:
            continue
        sample = _sample_of(name)
        _, mine, _ = _finetuned(d)
        finetuned = tuple(r["estimator"] for r in mine)
        out.append(Scored(sample, f"lr {d['settings']['lr']:g}",
                          {r["estimator"]: r["kendall_tau"] for r in d["ranking"]}, finetuned))
        ref = ((results.get("reference_lr") or {}).get("samples") or {}).get(sample)
        if ref and "ranking" in ref:
            out.append(Scored(sample, "better rate",
                              {r["estimator"]: r["kendall_tau"]["better of the two"]
                               for r in ref["ranking"]}, finetuned))
    return out


def render_estimator_verdict(results: Results) -> list[str]:
    """The default estimator (the fine-tuned supernet) against the goal and every other
    estimator, sample by sample, against both references."""
    rows = _scored(results)
    if not rows:
        return missing("estimator_ranking")
    lines = [f"The supernet fine-tuned 60 steps (`{rows[0].finetuned[0]}`), one supernet per "
             "seed; \"better rate\": each architecture at the better of its two learning rates "
             f"(`bench/reference_lr.py`). The goal is τ ≥ {GOAL_TAU:g}.", "",
             "| sample | reference | τ of each supernet | mean (≥ goal?) | single supernets ≥ "
             "goal | best other estimator | best other returning a top-1 |",
             "|---|---|---|---|---|---|---|"]
    reached: dict[str, list[int]] = {}
    ahead = {"any": [0, 0], "top-1": [0, 0]}  # rows with the mean ahead, rows compared
    for row in rows:
        taus = [row.tau[name] for name in row.finetuned if row.tau.get(name) is not None]
        others = {k: v for k, v in row.tau.items() if k not in row.finetuned and v is not None}
        mean = statistics.mean(taus)
        goal = sum(t >= GOAL_TAU for t in taus)
        count = reached.setdefault(row.reference, [0, 0])
        count[0], count[1] = count[0] + goal, count[1] + len(taus)

        def against(pool: dict[str, float], taus: list[float] = taus) -> str:
            if not pool:
                return "–"
            name = max(pool, key=pool.get)
            below = sum(t < pool[name] for t in taus)
            said = ("every supernet above it" if below == 0 else "every supernet below it"
                    if below == len(taus) else f"{below} of {len(taus)} supernets below it")
            return f"{name} {fmt_tau(pool[name])}: {said}"

        top1 = {k: v for k, v in others.items() if _returns(k) == "top-1 %"}
        for kind, pool in (("any", others), ("top-1", top1)):
            if pool:
                ahead[kind][0] += mean > max(pool.values())
                ahead[kind][1] += 1
        lines.append(f"| {row.sample} | {row.reference} | {' / '.join(fmt_tau(t) for t in taus)} | "
                     f"{fmt_tau(mean)} ({'yes' if mean >= GOAL_TAU else 'no'}) | {goal} of "
                     f"{len(taus)} | {against(others)} | {against(top1)} |")
    lines += ["", "Single supernets reaching the goal: " + "; ".join(
        f"{n} of {total} against {reference}" for reference, (n, total) in reached.items())
        + f". The supernets' mean is above the best other estimator in {ahead['any'][0]} of "
        f"{ahead['any'][1]} rows, and above the best other returning a top-1 in "
        f"{ahead['top-1'][0]} of {ahead['top-1'][1]}."]
    return lines


def render_estimator_samples(results: Results) -> list[str]:
    """Every estimator on every sample, against each architecture at its better rate."""
    d = results.get("reference_lr")
    samples = {k: v for k, v in ((d or {}).get("samples") or {}).items() if "ranking" in v}
    if not samples:
        return missing("reference_lr")
    names = list(dict.fromkeys(r["estimator"] for e in samples.values() for r in e["ranking"]))
    order = " / ".join(samples)
    lines = [f"Against each architecture at its better rate, samples {order}; τ-a over the pairs "
             "of architectures whose predicted latencies are close (what a search under a "
             "budget compares); seconds per candidate from the samples' ranking runs (a "
             "supernet's training spread over their candidates).", "",
             f"| estimator | returns | τ, {order} | τ-a at similar latency, {order} | "
             "s / candidate |", "|---|---|---|---|---|"]
    for name in names:
        rows = {s: next((r for r in e["ranking"] if r["estimator"] == name), None)
                for s, e in samples.items()}
        taus = " / ".join(fmt_tau(r["kendall_tau"]["better of the two"]) if r else "–"
                          for r in rows.values())
        similar = " / ".join(fmt_tau(r.get("tau_similar_latency_better_rate")) if r else "–"
                             for r in rows.values())
        costs = [c["cost_seconds_per_candidate"] for s in samples
                 for c in (results.get(_ranking_name(s)) or {}).get("ranking", [])
                 if c["estimator"] == name]
        cost = f"{statistics.mean(costs):.2f}" if costs else "–"
        lines.append(f"| {name} | {_returns(name)} | {taus} | {similar} | {cost} |")
    ceiling = " / ".join(fmt_tau(e["references"]["better of the two"]["mean_leave_one_out"])
                         for e in samples.values())
    similar = " / ".join(fmt_tau((e.get("similar_latency") or {}).get(
        "stand_alone_one_seed_vs_others")) for e in samples.values())
    lines.append(f"| (one stand-alone seed vs the mean of the others) | top-1 % | {ceiling} | "
                 f"{similar} | |")
    return with_source(results, "reference_lr", lines)


def render_training_throughput(results: Results) -> list[str]:
    """Training throughput of every ranking run, and what torch.compile added."""
    lines = ["| run | model | plain eager loop img/s | TrainEstimator loop img/s | speed-up | "
             "+ torch.compile img/s (× the estimator's loop) | compile s (cold cache) |",
             "|---|---|---|---|---|---|---|"]
    ratios: dict[str, list[float]] = {}
    compile_seconds: list[float] = []
    for name in results.names("estimator_ranking*"):
        d = results.get(name)
        for r in (d or {}).get("throughput", []):
            compiled = r.get("compiled_images_per_s")
            ratio = None if compiled is None else compiled / r["estimator_images_per_s"]
            if ratio is not None:
                ratios.setdefault(r["model"], []).append(ratio)
                compile_seconds.append(r["compile_seconds"])
            lines.append(
                f"| `{name}.json`, {run_date(d)[:16]} | {r['model']} (batch {r['batch']}) | "
                f"{r['plain_images_per_s']:.0f} | {r['estimator_images_per_s']:.0f} | "
                f"{r['speedup']:.2f}× | "
                + ("–" if compiled is None else f"{compiled:.0f} ({ratio:.2f}×)") + " | "
                + ("–" if compiled is None else f"{r['compile_seconds']:.0f}") + " |")
    if len(lines) == 2:
        return missing("estimator_ranking")
    if ratios:
        spans = "; ".join(f"{model} {min(v):.2f}-{max(v):.2f}×" for model, v in ratios.items())
        lines += ["", f"`torch.compile` against the estimator's eager loop: {spans}; compiling "
                      f"took {min(compile_seconds):.0f}-{max(compile_seconds):.0f} s per model."]
    return lines


def render_depthwise_small_maps(results: Results) -> list[str]:
    """Training step time with depthwise_conv2d's small-map path against F.conv2d."""
    d = results.get("depthwise_small_maps")
    if d is None:
        return missing("depthwise_small_maps")
    lines = [f"`depthwise_small_maps.json`, {run_date(d)[:16]}, {d['threads']} thread, steps "
             "alternating between the two paths:", "",
             "| model | input | batch | step, small-map path (ms) | step, F.conv2d (ms) | "
             "time ratio, median (min-max over pairs) |", "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['model']} | {r['resolution']} px | {r['batch']} | "
                     f"{r['small_map_ms']:.0f} | {r['conv2d_ms']:.0f} | {r['ratio_median']:.2f}× "
                     f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) |")
    return lines


TRIALS = "trials/v3_headtohead-trainings.jsonl"


def _network_order(name: str) -> tuple[int, float]:
    """``v3-small_x0.75`` -> (0, 0.75): V3-Small before V3-Large, narrow before wide."""
    family, _, width = name.rpartition("_x")
    return (0 if family == "v3-small" else 1, float(width or 0))


def render_recipe_trials(results: Results) -> list[str]:
    """Every recipe trial of the Fashion-MNIST head-to-head (issue 28): each network's test
    top-1 over its seeds, and each step between neighbouring widths against twice the larger
    seed standard deviation (the discrimination rule of ``bench/v3_headtohead.py``)."""
    rows = results.lines(TRIALS)
    if rows is None:
        return [f"Not measured yet: no `bench/results/{TRIALS}`."]
    recipes: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows:
        recipe = row.get("recipe", "recipe not recorded")
        recipes.setdefault(recipe, {}).setdefault(row["name"], {})[row["seed"]] = row["test_top1"]
    lines = [f"From `bench/results/{TRIALS}` ({len(rows)} trainings): test top-1 (%), mean ± "
             "sample sd over the seeds (each seed's value in brackets). A step is separated when "
             "its gap exceeds twice the larger sd of its two networks.", "",
             "| recipe (trial) | network | seeds | test top-1 | step from the narrower | "
             "2 × larger sd | separated |", "|---|---|---|---|---|---|---|"]
    for recipe, networks in recipes.items():
        previous = None
        for name in sorted(networks, key=_network_order):
            accs = [networks[name][s] for s in sorted(networks[name])]
            mean = statistics.mean(accs)
            sd = statistics.stdev(accs) if len(accs) > 1 else None
            step = twice = separated = "–"
            if previous is not None and sd is not None and previous[1] is not None:
                gap = mean - previous[0]
                limit = 2 * max(sd, previous[1])
                step, twice = f"{gap:+.2f}", f"{limit:.2f}"
                separated = "yes" if gap > limit else "no"
            lines.append(f"| {recipe} | {name} | {len(accs)} | {fmt_mean_sd(accs)} | {step} | "
                         f"{twice} | {separated} |")
            previous = (mean, sd)
    return lines
