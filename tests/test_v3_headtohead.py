"""bench/v3_headtohead.py: its --smoke run on a Fashion-MNIST look-alike, the result schema of
issue 28, the discrimination check and the training cache."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.accuracy.final import FINAL_RECIPES, final_recipe
from nas.errors import EstimatorError

from .test_data import _fashion_like

ROOT = Path(__file__).resolve().parent.parent


def load_bench(name: str):
    """The benchmark imported by name, as its worker processes import it (spawned workers
    must find the very function the pool was given)."""
    import importlib

    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module(name)


def test_smoke_writes_the_issue_schema_and_a_plot(tmp_path):
    _fashion_like(tmp_path / "fm")
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path / "cache"),
           "NAS_FASHION_MNIST_DIR": str(tmp_path / "fm"), "OMP_NUM_THREADS": "1"}
    # as make bench --smoke runs it: with make bench's --found and --netadapt, both skipped
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "v3_headtohead.py"),
                             "--smoke", "--found", "--netadapt", str(tmp_path / "absent.json")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "smoke: --found and --netadapt skipped" in result.stdout
    assert "test top-1 (mean ± sd)" in result.stdout
    out = Path(result.stdout.split("wrote ")[-1].split(" and its")[0])
    assert out.parent != ROOT / "bench" / "results"  # a smoke run writes no figures
    data = json.loads(out.read_text())
    assert data["smoke"] and out.with_suffix(".png").stat().st_size > 0
    assert data["recipe"]["recipe"]["augment"] == "crop-flip"
    assert [f["name"] for f in data["family"]] == ["v3-small_x0.50", "v3-small_x1.00"]
    for row in data["family"]:
        assert set(row) >= {"name", "latency_ms", "acc_mean", "acc_std", "seeds"}
        assert row["seeds"] == 2 == len(row["test_top1"]) and row["latency_ms"] > 0
        assert 0 <= row["acc_mean"] <= 100
    assert data["found"] == [] and data["netadapt_vs_multiplier"] == []
    assert data["discrimination"] is None  # the smoke family lacks V3-Large
    assert "provenance" in data


def test_discrimination_needs_each_step_above_two_sd():
    bench = load_bench("v3_headtohead")

    def fam(*stats):
        return [{"name": n, "acc_mean": m, "acc_std": s}
                for n, (m, s) in zip(bench.CHAIN, stats, strict=True)]

    ok = bench.discrimination(fam((80, 0.1), (81, 0.2), (82, 0.1), (84, 0.3)))
    assert ok["discriminative"] and [s["separated"] for s in ok["steps"]] == [True] * 3
    # 0.75 -> 1.0 gains 0.5 points, but one of them has sd 0.3: 2 sd = 0.6 > 0.5
    tie = bench.discrimination(fam((80, 0.1), (81, 0.3), (81.5, 0.1), (84, 0.3)))
    assert not tie["discriminative"]
    assert [s["separated"] for s in tie["steps"]] == [True, False, True]
    assert bench.discrimination(fam((80, 0.1), (81, 0.3), (81.5, 0.1), (84, 0.3))[:3]) is None


def test_the_goal_is_above_the_family_curve_at_the_v3_latency_or_as_accurate_and_faster():
    bench = load_bench("v3_headtohead")
    v3 = {"name": "v3-small_x1.00", "latency_ms": 10.0, "acc_mean": 87.0, "acc_std": 0.3,
          "test_top1": [87.0, 87.3, 86.7]}

    def found(ms, accs, std):
        return {"name": "found_v3-small", "target": "v3-small", "latency_ms": ms,
                "acc_mean": sum(accs) / len(accs), "acc_std": std, "test_top1": accs}

    # 2 x the larger sd (0.3) = 0.6: +0.7 at equal latency wins
    win = bench.verdict(found(10.0, [87.7, 88.0, 87.4], 0.3), [v3])
    assert win["met"] and win["more_accurate_at_its_latency"] and win["wins_by_seed"] == 3
    # +0.5 is inside 2 sd; the found network's own sd counts too
    assert not bench.verdict(found(9.9, [87.5, 87.5, 87.5], 0.0), [v3])["met"]
    assert not bench.verdict(found(10.0, [87.7, 88.0, 87.4], 0.4), [v3])["met"]
    # slower by 1%: not at its latency, however accurate
    assert not bench.verdict(found(10.1, [89.0, 89.0, 89.0], 0.1), [v3])["met"]
    # as accurate at <= 0.85 x the latency: the second branch
    fast = bench.verdict(found(8.5, [87.0, 87.1, 86.9], 0.1), [v3])
    assert fast["met"] and fast["as_accurate_at_085_latency"]
    assert not bench.verdict(found(8.6, [87.0, 87.1, 86.9], 0.1), [v3])["met"]
    assert bench.verdict(found(8.5, [87.0] * 3, 0.1), []) is None  # no V3 in the family


def test_each_search_seed_has_its_network_and_the_result_counts_the_seeds_that_met():
    bench = load_bench("v3_headtohead")
    assert bench.found_name("v3-large", 0) == "found_v3-large"  # as results before had it
    assert bench.found_name("v3-large", 2) == "found_v3-large_seed2"
    args = argparse.Namespace(run_dir=Path("runs"))
    assert bench.found_dir(args, "v3-large", 0) == Path("runs/found-v3-large")
    assert bench.found_dir(args, "v3-large", 2) == Path("runs/found-v3-large-seed2")

    def row(target, seed, met):
        return {"target": target, "search_seed": seed, "goal": {"met": met}}

    both = ["v3-small", "v3-large"]
    assert bench.seeds_by_target(["0", "v3-small:1", "0"], both) == {"v3-small": [0, 1],
                                                                     "v3-large": [0]}
    assert bench.seeds_by_target(["v3-large:2"], ["v3-small"]) == {"v3-small": []}
    with pytest.raises(ValueError, match="no target 'v4'"):
        bench.seeds_by_target(["v4:1"], both)
    with pytest.raises(ValueError, match="SEED or TARGET:SEED, got 'one'"):
        bench.seeds_by_target(["one"], both)
    rows = [row("v3-small", 0, True), row("v3-small", 1, False), row("v3-small", 2, True),
            row("v3-large", 0, False), {"target": "v3-large", "search_seed": 1, "goal": None}]
    assert bench.reproduction(rows) == {
        "v3-small": {"search_seeds": [0, 1, 2], "met": 2},
        "v3-large": {"search_seeds": [0], "met": 0}}  # no V3 to judge by: not counted


def test_the_cache_key_is_the_architecture_recipe_and_seed(tmp_path):
    import dataclasses

    bench = load_bench("v3_headtohead")
    final = FINAL_RECIPES["fashion-mnist"]
    small = bench.family_spec("v3-small:0.75")
    assert small.name == "v3-small_x0.75"
    key = bench.training_key(small, final, 0)
    assert key == bench.training_key(dataclasses.replace(small, name="other"), final, 0)
    assert key != bench.training_key(small, final, 1)
    assert key != bench.training_key(bench.family_spec("v3-small:1.0"), final, 0)
    longer = dataclasses.replace(final, recipe=dataclasses.replace(final.recipe, epochs=9))
    assert key != bench.training_key(small, longer, 0)
    # how many seeds a run asks for is not part of a training: more seeds reuse the first
    assert key == bench.training_key(small, final.trial(seeds=5), 0)
    assert key != bench.training_key(small, final.trial(dropout=0.2), 0)
    # nor is the recipe's name: a recipe renamed (or a trial made the recipe) keeps its results
    assert key == bench.training_key(small, dataclasses.replace(final, name="renamed"), 0)
    cache = tmp_path / "t.jsonl"
    trainings = bench.Trainings(cache, reuse=False)
    trainings.add({"key": key, "test_top1": 90.0})
    assert bench.Trainings(cache, reuse=True).get(key)["test_top1"] == 90.0
    assert bench.Trainings(cache, reuse=False).get(key) is None and not cache.exists()


def test_final_recipes_are_named_and_unknown_ones_fail():
    assert final_recipe("fashion-mnist") is FINAL_RECIPES["fashion-mnist"]
    with pytest.raises(EstimatorError, match="no final recipe for 'mnist'.*fashion-mnist"):
        final_recipe("mnist")


@pytest.mark.parametrize("estimator", ["supernet", "train"])
def test_found_runs_search_then_netadapt_at_the_v3_budget(tmp_path, monkeypatch, estimator):
    """The --found stage on a synthetic device: the network it returns is NetAdapt's, within
    the V3 network's budget on NetAdapt's scale, named for its target; the search scores its
    candidates with --search-estimator."""
    import argparse
    import dataclasses

    from latency_models.predictor import Calibration
    from nas.netadapt import ProposalLatency
    from nas.spec import ArchSpec
    from search_spaces import zoo
    from tests.search_helpers import synthetic_predictor, synthetic_table
    from tests.test_netadapt import SyntheticDevice

    _fashion_like(tmp_path / "fm")
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny networks: threads only wait on each other
    bench = load_bench("v3_headtohead")
    latency = ProposalLatency(synthetic_table(), Calibration(), tmp_path / "na-table.json",
                              measure=SyntheticDevice())
    final = dataclasses.replace(FINAL_RECIPES["fashion-mnist"], resolution=8)
    args = argparse.Namespace(strategy="random", trials=2, supernet_steps=3, final=final,
                              init_epochs=1,
                              short_steps=2, long_epochs=0, delta=0.1, rounds=1,
                              run_dir=tmp_path / "runs", search_estimator=estimator,
                              search_epochs=1, rescore=2 if estimator == "train" else 0)
    budget = 0.9 * latency(zoo.get("v3-small"))
    found = bench.find("v3-small", budget, args, "fashion-mnist",
                       predictor=synthetic_predictor(), netadapt_latency=latency,
                       measure=lambda specs: [latency(s) for s in specs])
    summary = json.loads((tmp_path / "runs" / "found-v3-small" / "summary.json").read_text())
    assert summary["target_ms"] == pytest.approx(budget)  # the budget measured by the bench
    assert summary["settings"]["data"] == "fashion-mnist"
    # the search scored its candidates with a supernet trained on that data, or by training
    assert summary["settings"]["estimator"] == estimator
    assert summary["settings"]["supernet_steps"] == 3
    assert summary["netadapt"]["stop_reason"] == "target reached"
    rescored = summary["search"]["rescored"]  # --rescore 2: trained again, by the recipe
    assert len(rescored) == (2 if estimator == "train" else 0)
    assert all(0 <= r["val_top1"] <= 100 and r["seed"] == 1000 for r in rescored)
    assert summary["search"]["trial"] in {r["trial"] for r in rescored} | (
        set() if rescored else {summary["search"]["trial"]})
    assert bench.search_record(tmp_path / "runs" / "found-v3-small")["rescored"] == rescored
    # what NetAdapt returned, renamed for the result file, at the deploy resolution
    assert found == dataclasses.replace(ArchSpec.from_dict(summary["found"]["spec"]),
                                        name="found_v3-small", input_size=224)
    assert latency(found) <= latency(zoo.get("v3-small"))


def test_train_all_stops_at_the_deadline_and_resumes_from_the_cache(tmp_path, monkeypatch,
                                                                    capsys):
    import dataclasses
    import time

    _fashion_like(tmp_path / "fm")
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    bench = load_bench("v3_headtohead")
    final = bench.smoke_recipe(FINAL_RECIPES["fashion-mnist"])
    final = dataclasses.replace(final, seeds=(0,))
    nets = [bench.family_spec("v3-small:0.5", 64)]
    trainings = bench.Trainings(tmp_path / "t.jsonl", reuse=False)
    assert not bench.train_all(nets, final, trainings, deadline=time.monotonic() - 1)
    assert trainings.rows == {}
    assert bench.train_all(nets, final, trainings, deadline=None, workers=1, heartbeat=0.05)
    # a worker takes seconds to start: the run said what it was training meanwhile
    assert "  training v3-small_x0.50 seed 0; 0 of 1 done, " in capsys.readouterr().out
    (row,) = bench.Trainings(tmp_path / "t.jsonl", reuse=True).rows.values()
    assert row["name"] == "v3-small_x0.50" and row["seed"] == 0 and 0 <= row["test_top1"] <= 100
    assert row["recipe"] == final.name  # the file says which recipe trained it
    # everything cached: nothing trains (no worker pool is even started)
    import nas.accuracy.final

    monkeypatch.setattr(nas.accuracy.final, "_train_one", None)
    assert bench.train_all(nets, final, trainings, deadline=None)


def test_netadapt_rows_pair_each_target_with_its_nearest_multiplier(tmp_path):
    bench = load_bench("v3_headtohead")
    final = FINAL_RECIPES["fashion-mnist"]
    family = [{"width_mult": w, "measured_ms": ms, "top1": acc, "top1_mean": sum(acc) / 3}
              for w, ms, acc in ((0.8, 9.0, [80.0, 81.0, 82.0]),
                                 (0.9, 10.0, [84.0, 84.0, 87.0]))]
    rows = [{"target_ms": 9.5, "measured_ms": 9.8, "top1": [85.0, 86.0, 87.0],
             "top1_mean": 86.0, "nearest_multiplier": 0.9}]
    path = tmp_path / "na.json"
    path.write_text(json.dumps({"recipe": final.to_dict(), "family": family, "rows": rows}))
    [row] = bench.netadapt_rows(path, final)
    assert row["target_ms"] == 9.5 and row["seeds"] == 3
    assert row["netadapt_acc_mean"] == 86.0 and row["netadapt_acc_std"] == pytest.approx(1.0)
    assert row["multiplier"] == 0.9 and row["multiplier_acc_mean"] == 85.0
    assert row["multiplier_acc_std"] == pytest.approx(3 ** 0.5)
    assert bench.netadapt_rows(path, final.trial(seeds=4)) == [row]  # the seeds are its own
    # trained with another recipe: refused, not mixed in
    with pytest.raises(SystemExit, match="not trained with this recipe"):
        bench.netadapt_rows(path, final.trial(epochs=final.recipe.epochs + 1))


def test_found_budgets_are_measured_once_and_kept_for_a_resumed_run(tmp_path, monkeypatch):
    """A resumed --found run continues with the budgets its searches started with (measured
    again, they would differ by the timer's noise and the searches would not resume); a fresh
    run measures them and removes the earlier searches."""
    import argparse

    bench = load_bench("v3_headtohead")
    family = [bench.family_spec(e, 64) for e in ("v3-small:0.5", "v3-small:1.0",
                                                  "v3-large:1.0")]
    timings = iter([[1.0, 2.0, 5.0], [1.1, 2.2, 5.5]])
    monkeypatch.setattr(bench, "measure_ms", lambda setup, specs, rounds: next(timings))
    args = argparse.Namespace(run_dir=tmp_path / "runs", rounds=1, resume=False)
    for seed in (0, 3):  # every search seed's run goes
        bench.found_dir(args, "v3-small", seed).mkdir(parents=True)
    assert bench.found_budgets(family, args, 64) == {"v3-small": 2.0, "v3-large": 5.0}
    assert not (tmp_path / "runs" / "found-v3-small").exists()
    assert not (tmp_path / "runs" / "found-v3-small-seed3").exists()
    args.resume = True  # not measured again
    assert bench.found_budgets(family, args, 64) == {"v3-small": 2.0, "v3-large": 5.0}
    args.resume = False  # measured again
    assert bench.found_budgets(family, args, 64) == {"v3-small": 2.2, "v3-large": 5.5}


def test_a_bad_search_setting_fails_before_any_training(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "v3_headtohead.py"), "--found",
                             "--search-estimator", "bogus", "--cache",
                             str(tmp_path / "trainings.jsonl")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: unknown estimator 'bogus'; choose supernet, supernet:PATH, train or "
        "zero-cost:params|synflow|naswot"]
    assert not (tmp_path / "trainings.jsonl").exists()
