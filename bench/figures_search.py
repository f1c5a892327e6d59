"""Figures of search and NetAdapt: every strategy under V3-Small's latency and the found
network's final comparison, NetAdapt against the width multipliers, and the trial throughput
of the local and Ray executors."""

from __future__ import annotations

from collections.abc import Mapping

from figures_common import Results, fmt_mean_sd, fmt_num, missing, with_source


def seed_verdict(found: list[float], other: list[float]) -> str:
    """"wins"/"loses" seed by seed (the same seeds for both networks)."""
    wins = sum(a > b for a, b in zip(found, other, strict=True))
    if wins == len(found):
        return "wins on every seed"
    if wins == 0:
        return "loses on every seed"
    return f"wins on {wins} of {len(found)} seeds, loses on the others"


def search_final_lines(d: Mapping) -> list[str]:
    f = d.get("final")
    if not f:
        return ["No final stage in this result."]
    found = f.get("found_from", {})
    lines = [f"The found network ({found.get('strategy', '?')}, seed {found.get('seed', '?')}) "
             f"and V3-Small, trained with the same recipes and seeds, timed side by side:", "",
             "| | found | V3-Small | the found network |", "|---|---|---|---|"]
    faster = f["found_measured_ms"] < f["v3_small_measured_ms"]
    change = 100 * (f["found_measured_ms"] / f["v3_small_measured_ms"] - 1)
    lines.append(f"| measured latency, one session | {f['found_measured_ms']:.2f} ms | "
                 f"{f['v3_small_measured_ms']:.2f} ms | {'faster' if faster else 'slower'} "
                 f"({change:+.1f}%) |")
    for recipe, r in f.get("recipes", {}).items():
        seeds = ", ".join(str(s) for s in r["seeds"])
        lines.append(f"| top-1 after {recipe} training, seeds {seeds} | "
                     f"{fmt_mean_sd(r['found_accuracy'])} | "
                     f"{fmt_mean_sd(r['v3_small_accuracy'])} | "
                     f"{seed_verdict(r['found_accuracy'], r['v3_small_accuracy'])} |")
    recipes = f.get("recipes", {})
    if recipes:  # the last recipe is the longest training
        longest, r = list(recipes.items())[-1]
        verdict = seed_verdict(r["found_accuracy"], r["v3_small_accuracy"])
        met = faster and verdict == "wins on every seed"
        lines += ["", f"The goal, a network faster than V3-Small and more accurate after the "
                      f"longest training ({longest}), is {'met' if met else 'not met'}: the "
                      f"found network is {'faster' if faster else 'slower'} and "
                      f"{verdict.replace('seeds, loses', 'seeds and loses')} at {longest}."]
    return lines


def render_search_quality(results: Results) -> list[str]:
    """Every strategy at equal trials under V3-Small's latency, and the final comparison."""
    d = results.get("search_quality")
    if d is None:
        return missing("search_quality")
    s = d["settings"]
    lines = [f"{s['trials']} trials × {s['seeds']} seeds per strategy, each starting from "
             f"{s['seed_arch']} (trial 0); accuracy: {s['estimator']} on {s['data']} "
             f"{s['resolution']}²; budget {d['budget_ms']:.2f} ms "
             f"({d.get('budget_source', 'V3-Small measured')}; V3-Small measured "
             f"{d['v3_small_measured_ms']:.2f} ms at the start).", "",
             "| strategy | mean best reward | runs whose best network within budget is trial 0 "
             f"({s['seed_arch']} itself) | mean best top-1 within budget | mean trial reaching "
             "it | wall s / run |", "|---|---|---|---|---|---|"]
    trial0 = 0
    for name, r in d["summary"].items():
        runs = [x for x in d["runs"] if x["strategy"] == name]
        seeded = sum(x["trial_reaching_it"] == 0 for x in runs)
        trial0 += seeded
        lines.append(f"| {name} | {fmt_num(r['best_reward_mean'])} | {seeded} of {len(runs)} | "
                     f"{fmt_num(r['best_accuracy_within_budget_mean'])} | "
                     f"{fmt_num(r['trial_reaching_it_mean'], 0)} | "
                     f"{fmt_num(r['wall_seconds_mean'], 0)} |")
    if s.get("seed_arch"):  # trial 0 is the seed architecture only when there is one
        lines += ["", f"In {trial0} of {len(d['runs'])} runs no searched network was more "
                      f"accurate within the budget than the seed architecture, {s['seed_arch']}."]
    f = d.get("final")
    if f and f.get("finalists"):
        ref = f.get("finalists_v3_small_measured_ms")
        lines += ["", f"Finalists: the {len(f['finalists'])} most accurate of the runs' best "
                      "networks within the predicted budget (one per run), timed together with "
                      f"V3-Small{f', which measured {ref:.2f} ms' if ref else ''}:", "",
                  "| finalist | proxy top-1 | predicted ms | measured ms |", "|---|---|---|---|"]
        for r in f["finalists"]:
            slower = " (slower than V3-Small)" if ref and r["measured_ms"] > ref else ""
            lines.append(f"| {r['strategy']}, seed {r['seed']} | {r['accuracy']:.2f}% | "
                         f"{r['predicted_ms']:.2f} | {r['measured_ms']:.2f}{slower} |")
    lines += ["", *search_final_lines(d)]
    return with_source(results, "search_quality", lines)


def render_search_final(results: Results) -> list[str]:
    """The search benchmark's final comparison alone (for docs/search.md)."""
    d = results.get("search_quality")
    if d is None:
        return missing("search_quality")
    return with_source(results, "search_quality", search_final_lines(d))


def render_netadapt_vs_multiplier(results: Results,
                                  name: str = "netadapt_vs_multiplier") -> list[str]:
    """NetAdapt's networks against the width-multiplier family at the same measured latency
    (``name``: the result file; with a final recipe, its test top-1)."""
    d = results.get(name)
    if d is None:
        return missing(name)
    n = d["netadapt"]
    recipe = d["recipe"]
    trained = (f"the {recipe['name']} final recipe ({recipe['recipe']['epochs']} epochs at "
               f"{recipe['resolution']} px), {d.get('score', 'test top-1')}"
               if "recipe" in recipe else f"{recipe['epochs']} epochs")
    lines = [f"{d['start']} on {d['data']}; NetAdapt δ {n['delta']:g}, {n['short_steps']} "
             f"short steps, {n['iterations']} iterations ({n['stop_reason']}); top-1 from "
             f"scratch, {trained}, seeds "
             f"{', '.join(str(s) for s in d['seeds'])} (mean ± sd). Start network: "
             f"{d['start_predicted_ms']:.2f} ms predicted, {d['start_measured_ms']:.2f} ms "
             "measured.", "",
             "| NetAdapt iteration | predicted ms | measured ms | params | MAdds | top-1 from "
             "scratch | multiplier family at that latency (interpolated) | NetAdapt minus "
             "family | carried weights + long fine-tune |", "|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        family = r.get("interpolated_multiplier_top1")
        gap = None if family is None else r["top1_mean"] - family
        diff = "–" if gap is None else f"{gap:+.2f} points" + (
            f" ({gap / r['top1_sd']:+.1f} sd)" if r["top1_sd"] else "")
        lines.append(f"| {r['iteration']} | {r['predicted_ms']:.2f} | {r['measured_ms']:.2f} | "
                     f"{r['params'] / 1e6:.2f}M | {r['madds'] / 1e6:.0f}M | "
                     f"{r['top1_mean']:.2f} ± {r['top1_sd']:.2f} | {fmt_num(family)} | {diff} | "
                     f"{fmt_num(r.get('carried_top1'))} |")
    compared = [r for r in d["rows"] if r.get("interpolated_multiplier_top1") is not None]
    if compared:
        above = sum(r["top1_mean"] > r["interpolated_multiplier_top1"] for r in compared)
        within = sum(abs(r["top1_mean"] - r["interpolated_multiplier_top1"]) <= r["top1_sd"]
                     for r in compared)
        lines += ["", f"At the {len(compared)} latencies the family spans, NetAdapt from "
                      f"scratch is above the family at {above} and below it at "
                      f"{len(compared) - above}; {within} of the {len(compared)} gaps are "
                      "within one seed standard deviation of NetAdapt's networks."]
    last = d["rows"][-1] if d["rows"] else None
    if last:
        lines += ["", f"From the start network to the last row, predicted latency fell "
                      f"{100 * (1 - last['predicted_ms'] / d['start_predicted_ms']):.0f}% and "
                      f"measured latency "
                      f"{100 * (1 - last['measured_ms'] / d['start_measured_ms']):.0f}%."]
    whole = next((r for r in d["family"] if r["width_mult"] == 1.0), None)
    if whole:
        lines += ["", f"The start network measured {d['start_measured_ms']:.2f} ms as the "
                      f"first network of the timing session and {whole['measured_ms']:.2f} ms as "
                      "the family's ×1.00 in the same rounds: the noise of one end-to-end "
                      "measurement on this machine."]
    lines += ["", "| width multiplier | measured ms | top-1 from scratch |", "|---|---|---|"]
    for r in sorted(d["family"], key=lambda r: r["width_mult"]):
        lines.append(f"| ×{r['width_mult']:.2f} | {r['measured_ms']:.2f} | "
                     f"{r['top1_mean']:.2f} ± {r['top1_sd']:.2f} |")
    return with_source(results, name, lines)


def render_ray_throughput(results: Results) -> list[str]:
    """Trials per minute of the local executor and of Ray, side by side, and Ray's overhead."""
    d = results.get("ray_throughput")
    if d is None:
        return missing("ray_throughput")
    s = d["settings"]
    lines = [f"{s['zero_cost']} ({s['zero_cost_trials']} trials) and the supernet fine-tuned "
             f"{s['finetune_steps']} steps ({s['supernet_trials']} trials) on {s['data']} "
             f"{s['resolution']}²; one CPU and one torch thread per worker.", "",
             "| estimator | executor | workers | trials/min | scoring s / trial | "
             "Ray extra ms / trial |", "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        executor = f"Ray, {r['workers']} node(s)" if r["executor"] == "ray" else "local"
        lines.append(f"| {r['estimator']} | {executor} | {r['workers']} | "
                     f"{r['trials_per_minute']:.1f} | {r['scoring_seconds_mean']:.2f} | "
                     f"{fmt_num(r['ray_extra_ms_per_trial'], 0)} |")
    lines.append("")
    for name, ratio in d["ratios"].items():
        lines.append(f"{name}: Ray 2 nodes / 1 node {ratio['ray2_over_ray1']:.2f}×; Ray / "
                     f"local {ratio['ray1_over_local1']:.2f} at 1 worker, "
                     f"{ratio['ray2_over_local2']:.2f} at 2.")
    trips = ", ".join(f"{k} {v:.1f} ms" for k, v in d["ray_noop_round_trip_ms"].items())
    return with_source(results, "ray_throughput",
                        [*lines, f"Round trip of an empty Ray task (median): {trips}."])


def render_v3_headtohead(results: Results) -> list[str]:
    """The V3 width family and the found networks on Fashion-MNIST: test top-1 over the
    recipe's seeds, deploy latency from one timing session, the chain's steps and each found
    network's verdict against issue 28's goal."""
    d = results.get("v3_headtohead")
    if d is None:
        return missing("v3_headtohead")
    r, s = d["recipe"], d["latency_setting"]
    lines = [f"Recipe `{r['name']}`: {r['recipe']['epochs']} epochs at {r['resolution']} px, "
             f"seeds {', '.join(str(x) for x in r['seeds'])}; test top-1 on the 10,000 test "
             f"images, mean ± sample sd (each seed). Latency: batch {s['batch']}, "
             f"{s['resolution']} px, {s['threads']} thread, {s['statistic']} "
             f"({s['rounds']} rounds), every network in one session.", "",
             "| network | latency ms | test top-1 | params | MAdds |", "|---|---|---|---|---|"]
    for row in [*d["family"], *d["found"]]:
        name = row["name"] + (f" (budget: {row['target']})" if "target" in row else "")
        lines.append(f"| {name} | {row['latency_ms']:.2f} | {fmt_mean_sd(row['test_top1'])} | "
                     f"{row['params'] / 1e6:.2f}M | {row['madds'] / 1e6:.0f}M |")
    disc = d.get("discrimination")
    if disc:
        lines += ["", "The chain, each step against twice the larger seed sd: " + "; ".join(
            f"{st['from']} → {st['to']} {st['gap']:+.2f} vs {2 * st['larger_std']:.2f} "
            f"({'separated' if st['separated'] else 'not separated'})" for st in disc["steps"])
            + "."]
    for row in d["found"]:
        g = row.get("goal")
        if not g:
            continue
        lines += ["", f"{row['name']} against {g['against']}: {g['latency_ratio']:.3f} × its "
                      f"latency, {g['acc_gap']:+.2f} points (twice the larger sd: "
                      f"{2 * g['larger_std']:.2f}), ahead on {g['wins_by_seed']} of "
                      f"{row['seeds']} seeds. Goal (≥ +2 sd at ≤ its latency, or as accurate "
                      f"at ≤ 0.85 × its latency): {'met' if g['met'] else 'not met'}."]
    for target, record in (d.get("reproduction") or {}).items():
        seeds = record["search_seeds"]
        lines += ["", f"Budget {target}: the goal met by {record['met']} of {len(seeds)} "
                      f"search seed{'s' if len(seeds) > 1 else ''} "
                      f"({', '.join(map(str, seeds))})."]
    return with_source(results, "v3_headtohead", lines)
