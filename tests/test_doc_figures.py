"""Docs that cannot drift from the measurements.

* Every ``<!-- figures:NAME -->`` block of README.md, docs/*.md and bench/README.md is exactly
  what ``bench/render_docs.py`` renders from ``bench/results/*.json``.
* Outside those blocks the pages state no measured figure: no percentage, time, τ, Spearman
  or speed-up, except the few facts of ``ALLOWED`` (each with its reason). Fenced code blocks
  (commands and example transcripts, run by tests/test_docs.py) and inline code (commands,
  options, names) are not prose and are not scanned.
* Every result file records its provenance, holds no absolute path, and its run is listed
  in ``bench/results/bench_run.json``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def load(name: str):
    """A script of bench/ as a module (bench/ is not a package)."""
    sys.path.insert(0, str(ROOT / "bench"))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


render_docs = load("render_docs")
figures_search = load("figures_search")  # imported by render_docs
provenance = load("provenance")
PAGES = render_docs.doc_paths()

# --------------------------------------------------------------------------- figures in prose
NUMBER = r"[−+-]?\d[\d,]*(?:\.\d+)?"
FIGURES = {
    "percentage": re.compile(rf"{NUMBER}\s?(?:%|percent\b|per cent\b)"),
    "time": re.compile(rf"{NUMBER}\s?(?:ms|μs|s|sec|seconds?|min|minutes?|h|hours?)\b"),
    "τ": re.compile(r"(?:τ|\btau\b|Kendall)(?:-a)?[^\d|]{0,25}?[−-]?\d*\.\d+"),
    "Spearman": re.compile(r"Spearman[^\d|]{0,25}?[−-]?\d*\.\d+"),
    "correlation to three decimals": re.compile(r"(?<![\w.])[−-]?[01]\.\d{3}(?!\d|\.\d)"),
    "speed-up": re.compile(rf"{NUMBER}\s?×\s?(?:faster|slower|speed)|\d\.\d+\s?×(?!\s?\d)"),
}

# Facts that are not measurements of this project. Keep this short: a measured figure belongs
# in a rendered block, not here.
ALLOWED = [
    (re.compile(r"\b(?:75\.2|67\.4)\s?%"),
     "the MobileNetV3 paper's Table 3: ImageNet top-1 of V3-Large and V3-Small 1.0"),
    (re.compile(r"within\s+[36]%\s+of\s+(?:Table\s+3|its\s+rounded\s+figures)"),
     "tolerances that tests/test_zoo.py asserts between our (exact, deterministic) MAdds and "
     "parameter counts and the paper's rounded ones"),
    (re.compile(r"\blr\s+0\.\d+"),
     "a learning rate: a setting of a recipe, not a measurement"),
    (re.compile(r"\b0\.85\s?×\s+(?:the|its)\s+latency"),
     "issue 28's goal for a found network (as accurate as its V3 at 0.85 × the latency): a "
     "threshold, not a measurement"),
]

CODE_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`(?:[^`\n]|\n(?!\n))+`")  # may wrap, never across paragraphs


def prose(text: str) -> str:
    """The page without its figures blocks, fenced code and inline code; line numbers kept."""
    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    text = render_docs.BLOCK.sub(blank, text)
    text = CODE_FENCE.sub(blank, text)
    text = INLINE_CODE.sub(blank, text)
    for pattern, _why in ALLOWED:
        text = pattern.sub(blank, text)
    return text


def unmarked_figures(text: str) -> list[tuple[int, str, str]]:
    """(line, kind, figure) of every measured-looking figure outside the marked blocks."""
    text = prose(text)
    found = []
    for kind, pattern in FIGURES.items():
        for match in pattern.finditer(text):
            found.append((text.count("\n", 0, match.start()) + 1, kind, match.group(0).strip()))
    return sorted(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_measured_figure_outside_a_marked_block(page):
    found = unmarked_figures(page.read_text(encoding="utf-8"))
    assert not found, (
        f"{page.relative_to(ROOT)} states figures outside a <!-- figures:NAME --> block "
        "(put them in a block rendered from bench/results, or remove them):\n"
        + "\n".join(f"  line {line}: {kind} {figure!r}" for line, kind, figure in found))


def test_every_allowed_pattern_is_still_needed():
    """An entry no page uses any more goes: the list stays short."""
    texts = [CODE_FENCE.sub("", render_docs.BLOCK.sub("", p.read_text(encoding="utf-8")))
             for p in PAGES]
    unused = [why for pattern, why in ALLOWED if not any(pattern.search(t) for t in texts)]
    assert not unused, f"allow-list entries no page needs: {unused}"


def test_the_scan_finds_figures_in_prose_only():
    page = ("The search took 18 min 39 s and ranks at τ 0.515 (Spearman 0.98), 9–12% faster,\n"
            "1.45× the estimator's loop, or ranked at 0.432 and 0.297.\n"
            "<!-- figures:newcomer -->\nmake demo: 22.4 min, 95.0%\n<!-- /figures -->\n"
            "```console\n$ nas-search --budget 60ms\nmeasured: 6.48 ms\n```\n"
            "Run `nas-search --budget 60ms` (or `--budget 0.06s`): trained at lr 0.05.\n"
            "Table 3 says 75.2% top-1; 24 architectures, 600 steps, lr 0.05, 224×224, ×0.75.\n"
            "Or 3 percent.\n")
    found = unmarked_figures(page)
    figures = [figure for _, _, figure in found]
    assert {line for line, _, _ in found} == {1, 2, 12}
    for expected in ("18 min", "39 s", "τ 0.515", "Spearman 0.98", "12%", "1.45×", "0.432",
                     "0.297"):
        assert any(expected in f for f in figures), (expected, figures)


# --------------------------------------------------------------------------- marked blocks
def test_every_marked_block_is_what_its_json_renders():
    stale = render_docs.render_docs(PAGES, render_docs.Results(RESULTS), write=False)
    assert not stale, ("stale figures blocks (run `python bench/render_docs.py`):\n"
                       + "\n".join(f"  {block}" for block in stale))


def test_every_page_with_figures_names_known_renderers():
    used = set()
    for page in PAGES:
        used |= {b.name for b in render_docs.find_blocks(page, page.read_text(encoding="utf-8"))}
    assert used <= set(render_docs.RENDERERS)
    assert {"search_quality", "estimator_verdict", "bench_bound", "newcomer"} <= used


def test_a_block_edited_by_hand_is_stale_and_rendering_restores_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n<!-- figures:torchvision_equivalence -->\nold\n<!-- /figures -->\n"
                    "\nprose\n", encoding="utf-8")
    results = render_docs.Results(RESULTS)
    stale = render_docs.render_docs([page], results, write=False)
    assert [b.name for b in stale] == ["torchvision_equivalence"] and "old" in page.read_text()
    assert render_docs.render_docs([page], results, write=True)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n") and text.endswith("\n<!-- /figures -->\n\nprose\n")
    data = json.loads((RESULTS / "torchvision_equivalence.json").read_text())
    assert f"{data['v3'][0]['ratio_paired']:.3f}" in text
    assert not render_docs.render_docs([page], results, write=False)
    # a figure changed by hand inside the block is caught
    page.write_text(text.replace(f"{data['v3'][0]['ratio_paired']:.3f}", "0.500"))
    assert render_docs.render_docs([page], results, write=False)


def test_check_exits_non_zero_listing_the_stale_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- figures:bench_bound -->\nstale\n<!-- /figures -->\n", encoding="utf-8")
    script = ROOT / "bench" / "render_docs.py"
    done = subprocess.run([sys.executable, str(script), "--check", str(page)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "figures:bench_bound" in done.stdout
    assert "stale" in page.read_text()
    done = subprocess.run([sys.executable, str(script), str(page)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "stale" not in page.read_text()
    done = subprocess.run([sys.executable, str(script), "--check", str(page)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("text", [
    "<!-- figures:no_such_renderer -->\nx\n<!-- /figures -->\n",
    "<!-- figures:search_quality sample=3 -->\nx\n<!-- /figures -->\n",
    "<!-- figures:search_quality -->\nno end marker\n",
])
def test_a_malformed_block_is_one_line_and_exit_2(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "render_docs.py"), str(page)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1 and page.read_text() == text


def test_the_newcomer_block_says_not_measured_until_its_file_exists(tmp_path):
    results = render_docs.Results(tmp_path)
    assert "not measured yet" in "\n".join(render_docs.render_newcomer(results))
    (tmp_path / "newcomer.json").write_text(json.dumps({
        "make_test_seconds": 750.0, "make_demo_cold_seconds": 1344.0,
        "make_demo_warm_seconds": 600.0, "date": "2026-12-01",
        "machine": {"cpu": "AMD EPYC", "usable_cores": 2}}))
    text = "\n".join(render_docs.render_newcomer(render_docs.Results(tmp_path)))
    assert "not measured" not in text and "2026-12-01 on AMD EPYC, 2 cores" in text
    assert "`make test` 12.5 min" in text and "`make demo` 22.4 min" in text
    assert "10.0 min once those are cached" in text


def test_a_win_is_stated_seed_by_seed_and_a_loss_as_a_loss():
    assert figures_search.seed_verdict([70.0, 72.0], [60.0, 61.0]) == "wins on every seed"
    assert figures_search.seed_verdict([90.0, 89.0], [94.0, 95.0]) == "loses on every seed"
    assert figures_search.seed_verdict([90.0, 96.0, 80.0], [94.0, 95.0, 81.0]) == \
        "wins on 1 of 3 seeds, loses on the others"
    d = json.loads((RESULTS / "search_quality.json").read_text())
    lines = "\n".join(figures_search.search_final_lines(d))
    for recipe, r in d["final"]["recipes"].items():
        verdict = figures_search.seed_verdict(r["found_accuracy"], r["v3_small_accuracy"])
        assert f"top-1 after {recipe} training" in lines and verdict in lines


def test_the_verdict_counts_supernets_below_the_best_other_estimator(tmp_path):
    ranking = {"settings": {"lr": 0.05},
               "supernet_seed_spread": {"estimator": "ft"},
               "ranking": [{"estimator": "params", "kendall_tau": 0.33},
                           {"estimator": "ft", "kendall_tau": 0.43},
                           {"estimator": "ft (supernet seed 1)", "kendall_tau": 0.30},
                           {"estimator": "ft (supernet seed 2)", "kendall_tau": 0.29}]}
    (tmp_path / "estimator_ranking.json").write_text(json.dumps(ranking))
    text = "\n".join(render_docs.render_estimator_verdict(render_docs.Results(tmp_path)))
    assert "| 11 | lr 0.05 | 0.430 / 0.300 / 0.290 | 0.340 (no) | 0 of 3 | params 0.330: " \
           "2 of 3 supernets below it | – |" in text
    assert "0 of 3 against lr 0.05" in text
    assert "above the best other estimator in 1 of 1 rows" in text
    assert "returning a top-1 in 0 of 0" in text  # params is a count, not a top-1


def test_the_bench_run_block_shows_the_last_full_run_beside_a_later_partial_one(tmp_path):
    run_all = load("run_all")
    machine = {"cpu": "cpu", "usable_cores": 2, "python": "3", "torch": "2"}

    def session(names, finished):
        return {"machine": machine, "finished": finished, "seconds": 600.0,
                "bound_minutes": 10 * len(names),
                "benchmarks": [{"name": n, "status": "ok", "seconds": 60.0, "limit_seconds": 600}
                               for n in names]}

    full = session([b.name for b in run_all.BENCHMARKS], "T-full")
    later = run_all.merged_session(full, session(["latency_validation"], "T-2"))
    (tmp_path / "bench_run.json").write_text(json.dumps({"make_bench": later, "runs": []}))
    results = render_docs.Results(tmp_path)
    text = "\n".join(render_docs.render_bench_run(results))
    assert "Last full run of `make bench`: T-full" in text
    assert "Then `bench/run_all.py --only latency_validation`: T-2" in text
    bound = sum(b.minutes for b in run_all.BENCHMARKS)
    assert f"{bound:g} in all" in text
    short = "\n".join(render_docs.render_bench_bound(results))
    assert f"stops within {bound:g} min" in short and "10.0 min (T-full" in short


def test_a_sample_renders_only_once_its_run_finished(tmp_path):
    finished = {"settings": {"archs": 2, "epochs": 1, "lr": 0.05, "seeds": 3, "data": "d",
                             "resolution": 8, "supernet": {"steps": 4}, "supernet_seeds": 2},
                "ranking": [{"estimator": "params", "kendall_tau": 0.25, "spearman": 0.3,
                             "cost_seconds_per_candidate": 0.1}],
                "seed_to_seed_kendall_tau": 0.6,
                "seed_agreement": {"mean_leave_one_out": 0.7},
                "supernet_seed_spread": {"estimator": "ft", "kendall_tau": [0.5, 0.3],
                                         "mean": 0.4, "min": 0.3, "max": 0.5}}
    (tmp_path / "estimator_ranking-archs23.json").write_text(json.dumps(finished))
    (tmp_path / "estimator_ranking-archs5.json").write_text(json.dumps({"settings": {}}))
    results = render_docs.Results(tmp_path)
    text = "\n".join(render_docs.render_estimator_ranking(results, sample="23"))
    assert "| params | 0.250 | 0.300 | 0.10 |" in text
    assert "| (ft: mean over 2 supernets, 0.300-0.500) | 0.400 |" in text
    assert "| (stand-alone: one seed vs the mean of the others) | 0.700 |" in text
    assert "Not measured yet" in render_docs.render_estimator_ranking(results, sample="5")[0]


def test_the_second_reference_renders_finished_samples_only(tmp_path):
    refs = {"lr 0.05": {"mean_top1": 87.8, "lowest_top1": 73.5, "mean_leave_one_out": 0.66},
            "lr 0.025": {"mean_top1": 88.2, "lowest_top1": 83.3, "mean_leave_one_out": 0.7},
            "better of the two": {"mean_top1": 89.9, "lowest_top1": 80.0,
                                  "mean_leave_one_out": None}}
    d = {"settings": {"lr": 0.025, "seeds": 3},
         "samples": {"11": {"source": "estimator_ranking.json", "references": refs,
                            "tau_between_rates": 0.4, "better_rate": ["lr 0.05", "lr 0.025"],
                            "ranking": [{"estimator": "params", "kendall_tau": {
                                "lr 0.05": 0.33, "lr 0.025": 0.25, "better of the two": None}}]},
                     "23": {"source": "estimator_ranking-archs23.json", "top1": [[1.0]]}}}
    (tmp_path / "reference_lr.json").write_text(json.dumps(d))
    results = render_docs.Results(tmp_path)
    text = "\n".join(render_docs.render_reference_lr(results, sample="11"))
    assert "the two rates agree to τ 0.400; the better rate is lr 0.05 for 1, lr 0.025 for 1" \
        in text
    assert "| mean top-1 | 87.8% | 88.2% | 89.9% |" in text
    assert "| one seed vs the mean of the others (τ) | 0.660 | 0.700 | – |" in text
    assert "| params | 0.330 | 0.250 | – |" in text and "similar latency" not in text
    assert "no finished" in render_docs.render_reference_lr(results, sample="23")[0]


# --------------------------------------------------------------------------- provenance
RESULT_FILES = sorted(p for p in RESULTS.glob("*.json") if p.name != provenance.REGISTRY)
FIELDS = {"command", "settings", "commit", "machine", "started", "finished", "seconds"}


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: p.name)
def test_every_result_file_records_its_provenance(path):
    data = json.loads(path.read_text())
    p = data.get("provenance")
    assert p, f"{path.name} has no provenance"
    record = provenance.Provenance.from_dict(p)
    assert FIELDS <= set(p)
    assert record.command.startswith("python bench/")
    assert record.machine or "machine: not recorded" in " ".join(record.sources)
    assert record.commit and re.fullmatch(r"[0-9a-f]{40}", record.commit)
    assert record.finished and (record.started or record.reconstructed)
    if record.reconstructed:  # says where every field came from
        assert record.sources
    else:
        assert record.seconds is not None and record.dirty is not None
    assert not provenance.absolute_paths(data), f"{path.name}: absolute paths"


def test_bench_run_lists_the_run_of_every_result_file():
    registry = json.loads((RESULTS / provenance.REGISTRY).read_text())
    assert not provenance.absolute_paths(registry)
    listed = {(r["result"], r["command"], r["finished"]) for r in registry["runs"]}
    for path in RESULT_FILES:
        p = json.loads(path.read_text())["provenance"]
        assert (path.name, p["command"], p["finished"]) in listed, path.name


def test_write_result_records_the_run_once_and_refuses_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(provenance.SESSION_ENV, "2026-12-01T10:00:00+0000")
    record = provenance.Provenance.start(
        {"out": ROOT / "bench" / "results" / "x.json", "elsewhere": Path("/tmp/nas/y.json"),
         "trials": 3}, fingerprint=lambda: {"cpu": "test"},
        argv=[str(ROOT / "bench" / "x.py"), "--trials", "3"])
    assert record.command == "python bench/x.py --trials 3"
    assert record.settings == {"out": "bench/results/x.json", "elsewhere": "…/y.json",
                               "trials": 3}
    assert record.session == "2026-12-01T10:00:00+0000"
    path = tmp_path / "x.json"
    provenance.write_result(path, {"value": 1}, record)
    provenance.write_result(path, {"value": 2}, record)  # a run that saves as it goes
    data = json.loads(path.read_text())
    assert data["value"] == 2 and data["provenance"]["seconds"] is not None
    registry = json.loads((tmp_path / provenance.REGISTRY).read_text())
    assert [r["result"] for r in registry["runs"]] == ["x.json"]
    assert registry["runs"][0]["finished"] == data["provenance"]["finished"]
    with pytest.raises(ValueError, match="absolute path"):
        provenance.write_result(tmp_path / "z.json", {"table": "/root/.cache/t.json"}, record)
    assert not (tmp_path / "z.json").exists()


def test_latency_validation_renders_the_second_pass_and_every_other_setting(tmp_path):
    metric = {"within_5pct": 0.9, "within_10pct": 1.0, "rmse_pct": 2.0, "max_abs_error_pct": 8.0,
              "mean_error_pct": 0.5, "spearman": 0.995}

    def result(backend: str, threads: int, worst: float) -> dict:
        return {"settings": {"archs": 3, "zoo": True, "rounds": 4, "passes": 2,
                             "calibration_archs": 48,
                             "rounds_per_pass": 2, "statistic": "min",
                             "median_above_min_pct": [12.5, 7.25]},
                "fingerprint": {"cpu": "AMD EPYC", "backend": backend, "threads": threads,
                                "batch": 1, "resolution": 224},
                "table": {"fingerprint_key": "abc", "checksum": "sha256:0123456789abcdef"},
                "metrics": {"recalibrated": metric}, "repeatability": metric,
                "zoo": [{"model": "mobilenet_v2", "measured_ms": 10.0, "recalibrated": worst},
                        {"model": "mobilenet_v1", "measured_ms": 10.0, "recalibrated": 10.1}]}

    (tmp_path / "latency_validation.json").write_text(json.dumps(result("torch", 1, 10.4)))
    other = result("onnxruntime", 2, 9.3)
    other.update(repeatability_drift_removed=dict(metric, within_5pct=0.99), pass_drift_pct=2.84)
    (tmp_path / "latency_validation-onnxruntime-2threads.json").write_text(json.dumps(other))
    text = "\n".join(render_docs.render_latency_validation(render_docs.Results(tmp_path)))
    assert "two passes of 2 interleaved rounds, min of both" in text
    assert "| measurement vs itself (second pass vs first) | 90.0% | 100.0% |" in text
    assert "pass 1 12.5%, pass 2 7.2%" in text
    assert "largest error mobilenet_v2 +4.0%" in text
    assert "| onnxruntime | 2 | 48 | 90.0% | 100.0% | 0.995 | mobilenet_v2 -7.0% | 90.0% | " \
           "100.0% | 99.0% (drift +2.8%) | 12.5%, 7.2% |" in text
    assert "drift between the passes" not in text  # the main file has no such figure


def test_recipe_trials_group_by_recipe_and_judge_each_step(tmp_path):
    trials = tmp_path / "trials"
    trials.mkdir()
    rows = [("a", "v3-small_x1.00", [91.0, 91.2, 91.1]),
            ("a", "v3-small_x0.75", [90.0, 90.2, 90.1]),
            ("b", "v3-small_x0.75", [90.0, 91.0, 90.5]),
            ("b", "v3-small_x1.00", [90.4, 91.2, 90.6])]
    (trials / "v3_headtohead-trainings.jsonl").write_text("".join(
        json.dumps({"key": f"{r}{n}{s}", "name": n, "recipe": r, "seed": s, "test_top1": acc})
        + "\n" for r, n, accs in rows for s, acc in enumerate(accs)))
    text = render_docs.render_recipe_trials(render_docs.Results(tmp_path))
    assert "(12 trainings)" in text[0]
    table = [line for line in text if line.startswith("| a ") or line.startswith("| b ")]
    # narrow before wide within each recipe, recipes in the file's order
    assert [line.split(" | ")[:2] for line in table] == [
        ["| a", "v3-small_x0.75"], ["| a", "v3-small_x1.00"],
        ["| b", "v3-small_x0.75"], ["| b", "v3-small_x1.00"]]
    assert table[1].endswith("| +1.00 | 0.20 | yes |")  # gap 1.0 > 2 x 0.1
    assert table[3].endswith("| +0.23 | 1.00 | no |")  # gap 0.23 < 2 x 0.5
    assert "90.10 ± 0.10 (90.00 / 90.20 / 90.10)" in table[0]
    assert "Not measured yet" in render_docs.render_recipe_trials(
        render_docs.Results(tmp_path / "absent"))[0]


def test_the_headtohead_block_gives_every_network_and_each_found_verdict(tmp_path):
    from tests.test_v3_headtohead import load_bench

    bench = load_bench("v3_headtohead")

    def row(name, ms, accs, **extra):
        mean = sum(accs) / len(accs)
        sd = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
        return {"name": name, "latency_ms": ms, "acc_mean": mean, "acc_std": sd,
                "seeds": len(accs), "test_top1": accs, "params": 2.5e6, "madds": 6e7, **extra}

    family = [row(n, ms, accs) for n, ms, accs in [
        ("v3-small_x0.50", 5.0, [85.0, 85.2, 85.1]), ("v3-small_x0.75", 6.0, [86.9, 87.0, 86.8]),
        ("v3-small_x1.00", 7.0, [87.2, 87.3, 87.1]), ("v3-large_x1.00", 16.0, [88.8, 88.9, 88.7])]]
    found = [row("found_v3-small", 6.9, [88.0, 88.1, 87.9], target="v3-small"),
             row("found_v3-large", 16.5, [90.0, 90.1, 89.9], target="v3-large")]
    for f in found:
        f["goal"] = bench.verdict(f, family)
    result = {"recipe": {"name": "fashion-mnist", "resolution": 28, "seeds": [0, 1, 2],
                         "recipe": {"epochs": 3}},
              "latency_setting": {"threads": 1, "batch": 1, "resolution": 224, "rounds": 30,
                                  "statistic": "min over interleaved rounds"},
              "family": family, "found": found, "discrimination": bench.discrimination(family)}
    (tmp_path / "v3_headtohead.json").write_text(json.dumps(result))
    text = "\n".join(render_docs.render_v3_headtohead(render_docs.Results(tmp_path)))
    assert "| found_v3-small (budget: v3-small) | 6.90 | 88.00 ± 0.10 (88.00 / 88.10 / 87.90)" \
        in text
    assert "v3-small_x0.75 → v3-small_x1.00 +0.30 vs 0.20 (separated)" in text
    # +0.8 at 0.986 x V3-Small's latency: met; V3-Large's is slower: not met, however accurate
    assert "found_v3-small against v3-small_x1.00: 0.986 × its latency, +0.80 points" in text
    assert text.count(": met.") == 1 and text.count(": not met.") == 1
    assert "Not measured yet" in render_docs.render_v3_headtohead(
        render_docs.Results(tmp_path / "absent"))[0]
