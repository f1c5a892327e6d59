"""Every benchmark runs in its seconds-long --smoke mode, so none of them can rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["latency_validation.py"])
def test_benchmark_smoke(script, tmp_path):
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "predicted vs measured" in result.stdout
    assert "specs/s" in result.stdout


def smoke(script: str, tmp_path: Path, *args: str) -> str:
    """The benchmark's --smoke run with its own latency cache; its stdout."""
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *args],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_search_quality_smoke(tmp_path):
    stdout = smoke("search_quality.py", tmp_path)
    assert "| evolution |" in stdout and "V3-Small predicted" in stdout


def test_netadapt_vs_multiplier_smoke(tmp_path, monkeypatch):
    """With a final recipe (issue 28's form): NetAdapt on a Fashion-MNIST look-alike, every
    network scored on the test images."""
    import json

    from .test_data import _fashion_like

    _fashion_like(tmp_path / "fm")
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    stdout = smoke("netadapt_vs_multiplier.py", tmp_path, "--recipe", "fashion-mnist")
    assert "NetAdapt ms" in stdout and "mult@same ms" in stdout
    data = json.loads(Path(stdout.split("wrote ")[-1].split(" and its")[0]).read_text())
    assert data["score"] == "test top-1" and data["data"].startswith("fashion-mnist:")
    assert data["recipe"]["name"] == "fashion-mnist (1 epochs, 16 px)"


@pytest.mark.ray
def test_ray_throughput_smoke(tmp_path):
    import json

    stdout = smoke("ray_throughput.py", tmp_path)
    assert "| supernet | ray, 2 node(s) | 2 |" in stdout and "empty Ray task round trip" in stdout
    out = Path(stdout.split("wrote ")[-1].strip())
    data = json.loads(out.read_text())
    assert data["smoke"] and out.parent != ROOT / "bench" / "results"  # no figures written
    rows = {(r["estimator"], r["executor"], r["workers"]): r for r in data["rows"]}
    assert len(rows) == 8
    for (_, executor, workers), row in rows.items():
        assert row["trials_per_minute"] > 0
        if executor == "ray":  # one node per worker really took part
            assert row["nodes_used"] == workers and row["ray_extra_ms_per_trial"] is not None
    assert set(data["ratios"]) == {"zero-cost", "supernet"}
    assert not any(tmp_path.glob("**/supernets/*"))  # nothing trained into the cache
    load_run_all()  # puts bench/ on sys.path
    import render_docs

    block = "\n".join(render_docs.render_ray_throughput(render_docs.Results(out.parent)))
    assert "| supernet | Ray, 2 node(s) | 2 |" in block and "Ray 2 nodes / 1 node" in block


def load_bench(name: str):
    import importlib.util

    module_spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    bench = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(bench)
    return bench


def test_estimator_ranking_smoke(tmp_path):
    stdout = smoke("estimator_ranking.py", tmp_path, "--supernet-seeds", "2")
    assert "ranking of 3 architectures" in stdout and "training throughput" in stdout
    assert "zero-cost:naswot" in stdout and "supernet" in stdout
    assert "(supernet seed 1)" in stdout and "mean over 2 supernets" in stdout


def test_reference_lr_smoke(tmp_path):
    stdout = smoke("reference_lr.py", tmp_path, "--samples", "11")
    assert "sample 11 (3 architectures" in stdout and "τ, better of the two" in stdout
    assert "supernet+finetune-60-lr0.05" in stdout and "better rate: lr" in stdout


def test_reference_at_the_better_rate_takes_each_architectures_own_seeds():
    import numpy as np

    bench = load_bench("reference_lr")
    runs = {"lr 0.05": np.array([[90.0, 60.0, 80.0], [92.0, 20.0, 80.0]]),
            "lr 0.025": np.array([[88.0, 85.0, 81.0], [86.0, 87.0, 79.0]])}
    seeds, chosen = bench.best_of(runs)
    # means 91 / 40 / 80 against 87 / 86 / 80: a tie stays with the first rate
    assert chosen == ["lr 0.05", "lr 0.025", "lr 0.05"]
    assert seeds.tolist() == [[90.0, 85.0, 80.0], [92.0, 87.0, 80.0]]


def test_similar_latency_tau_counts_only_pairs_of_close_latency():
    import numpy as np

    bench = load_bench("reference_lr")
    pairs = bench.similar_pairs([10.0, 14.0, 16.0, 40.0])
    assert pairs == [(0, 1), (1, 2)]  # 16/10 and 40/16 are beyond 1.5x
    target = np.array([80.0, 90.0, 85.0, 95.0])
    assert bench.pair_tau(np.array([1.0, 2.0, 3.0, 4.0]), target, pairs) == 0.0  # +1, -1
    assert bench.pair_tau(np.array([1.0, 2.0, 0.0, 9.0]), target, pairs) == 1.0
    assert bench.pair_tau(np.array([np.nan, 2.0, 3.0, 4.0]), target, pairs) == -1.0
    assert bench.pair_tau(target, target, []) is None


def test_fine_tuned_supernets_are_summarised_over_every_supernet_of_the_run():
    bench = load_bench("reference_lr")
    better = "better of the two"
    ranking = [{"estimator": "params", "kendall_tau": {better: 0.9}},
               {"estimator": "supernet+finetune-60-lr0.05", "kendall_tau": {better: 0.4}},
               {"estimator": "supernet+finetune-60-lr0.05 (supernet seed 1)",
                "kendall_tau": {better: 0.7}},
               {"estimator": "supernet+finetune-20", "kendall_tau": {better: 0.1}}]
    spread = bench.finetuned_spread(ranking)
    assert spread["supernets"] == 2 and spread["kendall_tau"] == [0.4, 0.7]
    assert abs(spread["mean"] - 0.55) < 1e-12 and (spread["min"], spread["max"]) == (0.4, 0.7)
    assert bench.finetuned_spread(ranking[:1]) is None


def test_reference_at_a_second_rate_keeps_finished_seeds_only_for_the_same_training():
    bench = load_bench("reference_lr")
    trained = {"epochs": 10, "data": "digits-hard", "architectures": ["a", "b"]}
    samples = {"11": {**trained, "top1": [[90.0, 80.0]], "source": "x.json"}}
    assert bench.sample_entry(samples, 11, trained)["top1"] == [[90.0, 80.0]]
    for change in ({"epochs": 3}, {"data": "digits"}, {"architectures": ["a", "c"]}):
        stored = {"11": {**trained, "top1": [[90.0, 80.0]]}}
        entry = bench.sample_entry(stored, 11, {**trained, **change})
        assert entry == {**trained, **change, "top1": []} and stored["11"] is entry
    fresh: dict = {}
    assert bench.sample_entry(fresh, 23, trained)["top1"] == [] and "23" in fresh


def test_ranking_writes_other_samples_of_architectures_apart():
    bench = load_bench("estimator_ranking")
    assert bench.results_path(bench.ARCH_SEED) == bench.RESULTS
    other = bench.results_path(23)
    assert other.parent == bench.RESULTS.parent and other.name == "estimator_ranking-archs23.json"


def test_ranking_reuses_only_a_matching_reference(tmp_path, monkeypatch):
    import json

    from search_spaces import zoo

    bench = load_bench("estimator_ranking")
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "ranking.json")
    specs = [zoo.get("mobilenet_v3_small"), zoo.get("mobilenet_v3_large")]
    settings = {"epochs": 6, "lr": 0.05, "seeds": 2, "data": "d", "resolution": 28}
    assert bench.stored_reference(specs, settings) is None  # no previous run
    assert bench.stored_reference(specs, settings, tmp_path / "other.json") is None
    archs = [{"text": s.to_text(), "standalone_top1": [70.0 + i, 71.0 + i],
              "standalone_seconds": [3.0, 4.0]} for i, s in enumerate(specs)]
    bench.RESULTS.write_text(json.dumps({"settings": {**settings, "archs": 2},
                                         "architectures": archs}))
    top1, seconds = bench.stored_reference(specs, settings)
    assert top1.tolist() == [[70.0, 71.0], [71.0, 72.0]] and seconds.shape == (2, 2)
    # more seeds asked for: the stored ones come back, the run trains the rest; fewer: a prefix
    top1, _ = bench.stored_reference(specs, {**settings, "seeds": 3})
    assert top1.tolist() == [[70.0, 71.0], [71.0, 72.0]]
    top1, seconds = bench.stored_reference(specs, {**settings, "seeds": 1})
    assert top1.tolist() == [[70.0, 71.0]] and seconds.tolist() == [[3.0, 3.0]]
    assert bench.stored_reference(specs, {**settings, "epochs": 3}) is None
    assert bench.stored_reference(specs[::-1], settings) is None
    del archs[0]["standalone_seconds"]  # written before the seconds were kept
    bench.RESULTS.write_text(json.dumps({"settings": settings, "architectures": archs}))
    assert bench.stored_reference(specs, settings) is None


def test_seed_agreement_scores_each_seed_against_the_others():
    import numpy as np
    from scipy.stats import kendalltau

    bench = load_bench("standalone")
    # Seeds 0 and 1 rank the six architectures alike; seed 2 swaps the fourth and fifth.
    standalone = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [1, 2, 3, 5, 4, 6]], float)
    groups = {"first": np.array([True] * 3 + [False] * 3),
              "last": np.array([False] * 3 + [True] * 3)}
    agreement = bench.seed_agreement(standalone, groups)
    assert agreement["pairs"]["0-1"] == pytest.approx(1.0)
    tau_02 = kendalltau(standalone[0], standalone[2]).statistic
    assert agreement["pairs"]["0-2"] == pytest.approx(tau_02)
    assert agreement["mean_pair"] == pytest.approx((1 + 2 * tau_02) / 3)
    others = (standalone[0] + standalone[1]) / 2
    assert agreement["leave_one_out"][2] == pytest.approx(
        kendalltau(standalone[2], others).statistic)
    # within "first" every seed agrees; within "last" seed 2 disagrees with the others' mean
    within = agreement["within_head_mean_leave_one_out"]
    assert within["first"] == pytest.approx(1.0) and 0 < within["last"] < 1.0
    # two seeds: no leave-one-out (one seed against one other is the pair itself)
    assert bench.seed_agreement(standalone[:2], groups)["leave_one_out"] == []


TV_PYTHON = ROOT / ".venv-tv" / "bin" / "python"


@pytest.mark.skipif(not TV_PYTHON.exists(), reason="needs .venv-tv (make bench-torchvision)")
def test_torchvision_equivalence_smoke():
    result = subprocess.run([str(TV_PYTHON), str(ROOT / "bench" / "torchvision_equivalence.py"),
                             "--smoke"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mobilenet_v3_large" in result.stdout


# --------------------------------------------------------------------------- make bench
def load_run_all():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_run_all_stops_a_benchmark_over_its_limit_and_reports_failures(tmp_path, monkeypatch):
    run_all = load_run_all()
    monkeypatch.setattr(run_all, "LOGS", tmp_path / "logs")
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    failing = tmp_path / "failing.py"
    failing.write_text("import sys\nprint('going wrong')\nsys.exit(3)\n")
    slow = run_all.run(run_all.Benchmark("sleeper", 0.05, path=sleeper), smoke=False)
    assert slow["status"] == "over the time limit" and slow["seconds"] < 30
    assert "started" in (tmp_path / "logs" / "sleeper.log").read_text()
    bad = run_all.run(run_all.Benchmark("failing", 1, path=failing), smoke=False)
    assert bad["status"] == "failed (exit 3)"
    skipped = run_all.run(run_all.Benchmark("absent", 1, needs=lambda: "no GPU"), smoke=False)
    assert skipped["status"] == "skipped" and skipped["why"] == "no GPU"


def test_a_partial_bench_run_keeps_the_last_full_run_on_record():
    run_all = load_run_all()
    machine = {"cpu": "cpu", "usable_cores": 2, "python": "3", "torch": "2"}

    def session(names, finished):
        return {"machine": machine, "finished": finished, "seconds": 600.0,
                "bound_minutes": 10 * len(names),
                "benchmarks": [{"name": n, "status": "ok", "seconds": 60.0, "limit_seconds": 600}
                               for n in names]}

    full = session([b.name for b in run_all.BENCHMARKS], "T-full")
    assert run_all.merged_session(None, full) is full
    first = run_all.merged_session(full, session(["search_quality"], "T-1"))
    second = run_all.merged_session(first, session(["latency_validation"], "T-2"))
    assert first["last_full"] is full and second["last_full"] is full
    assert run_all.merged_session(second, full) is full  # a new full run replaces it all
    assert run_all.merged_session(None, session(["search_quality"], "T"))["last_full"] is None


def test_run_all_records_the_session_beside_the_runs_and_renders_the_docs(tmp_path, monkeypatch):
    import json

    run_all = load_run_all()
    results = tmp_path / "results"
    script = tmp_path / "tiny.py"  # a benchmark that writes its result through provenance
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
        "from pathlib import Path\n"
        "from provenance import Provenance, write_result\n"
        "record = Provenance.start({'n': 1}, fingerprint=lambda: {'cpu': 'test'})\n"
        f"write_result(Path({str(results)!r}) / 'tiny.json', {{'value': 1}}, record)\n")
    page = tmp_path / "page.md"
    page.write_text("<!-- figures:bench_run -->\nstale\n<!-- /figures -->\n")
    monkeypatch.setattr(run_all, "BENCHMARKS", (run_all.Benchmark("tiny", 1, path=script),))
    monkeypatch.setattr(run_all, "RESULTS", results)
    monkeypatch.setattr(run_all, "LOGS", tmp_path / "logs")
    import figures_runs  # run_all put bench/ on sys.path
    import render_docs

    monkeypatch.setattr(render_docs, "doc_paths", lambda: [page])
    monkeypatch.setattr(figures_runs, "BENCHMARKS", run_all.BENCHMARKS)
    monkeypatch.setattr(sys, "argv", ["run_all.py"])
    run_all.main()
    registry = json.loads((results / "bench_run.json").read_text())
    session = registry["make_bench"]
    assert [b["name"] for b in session["benchmarks"]] == ["tiny"] and session["commit"]
    run, = registry["runs"]
    assert run["result"] == "tiny.json" and run["session"] == session["started"]
    assert json.loads((results / "tiny.json").read_text())["provenance"]["session"] == \
        session["started"]
    text = page.read_text()
    assert "stale" not in text and "Last full run of `make bench`" in text


def test_timer_variants_smoke(tmp_path):
    stdout = smoke("timer_variants.py", tmp_path)
    assert "3 networks" in stdout and "pass 2 against pass 1" in stdout
    first_table = stdout.split("other statistics")[0]
    rows = [line for line in first_table.splitlines() if line.startswith("| ") and "%" in line
            and "variant" not in line]
    assert len(rows) == len(load_bench("timer_variants").VARIANTS)
    assert "mean of 3 smallest" in stdout
    assert "wrote" not in stdout  # the smoke run writes no figures


def test_timer_variants_times_the_onnxruntime_backend_too(tmp_path):
    stdout = smoke("timer_variants.py", tmp_path, "--backend", "onnxruntime",
                   "--variants", "validation-pass")
    assert "onnxruntime, batch 1" in stdout and "| validation-pass |" in stdout


def test_depthwise_small_maps_smoke(tmp_path):
    stdout = smoke("depthwise_small_maps.py", tmp_path)
    assert "mobilenet_v3_small" in stdout and "mobilenet_v3_large" in stdout
    assert "wrote" not in stdout
