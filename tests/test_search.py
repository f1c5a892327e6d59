"""Search: space encodings, reward, strategies, runner persistence/resume, Ray, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.accuracy.base import AccuracyEstimator
from nas.errors import DataError
from nas.search.budget import BudgetError
from nas.search.objective import AccuracyJob
from nas.search.reward import Reward, RewardError
from nas.search.run import RunError, SearchRun, SearchSettings
from nas.search.runner import ProcessPool, ResumeMismatch, Runner
from nas.search.storage import STUDY_NAME
from nas.search.strategies import STRATEGIES, Evolution, StrategyError, make_strategy, spec_key
from nas.search.trial import TrialResult
from search_spaces import zoo
from search_spaces.mobilenetv3 import default_space
from tests.search_helpers import (
    die_on_wide_stems,
    finished_trials,
    save_synthetic_table,
    synthetic_predictor,
)

SPACE = default_space()
FAST_JOB = AccuracyJob(estimator="zero-cost:params")


def paper_networks():
    return [dataclasses.replace(zoo.get(name), se_style="v3")
            for name in ("v3-large", "v3-small", "mnasnet-a1")]


# --------------------------------------------------------------------------- space
def test_space_contains_and_round_trips_the_paper_networks():
    for spec in paper_networks():
        assert SPACE.contains(spec)
        assert SPACE.decode(SPACE.encode(spec), name=spec.name) == spec
        assert SPACE.from_params(SPACE.params(spec), name=spec.name) == spec


def test_mnasnet_squeeze_convention_is_outside_the_space():
    assert not SPACE.contains(zoo.get("mnasnet-a1"))  # input/4 squeeze, sigmoid gate
    with pytest.raises(ValueError, match="not an architecture"):
        SPACE.encode(zoo.get("mnasnet-a1"))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_any_vector_decodes_to_a_member_and_encodes_back(seed):
    rng = np.random.default_rng(seed)
    spec = SPACE.decode(SPACE.sample_vector(rng))
    assert SPACE.contains(spec)
    again = SPACE.decode(SPACE.encode(spec))
    assert again == spec
    mutant = SPACE.mutate(spec, rng)
    assert SPACE.contains(mutant) and spec_key(mutant) != spec_key(spec)
    assert SPACE.contains(SPACE.crossover(spec, mutant, rng))


def test_inactive_decisions_do_not_change_the_architecture():
    rng = np.random.default_rng(3)
    vector = SPACE.sample_vector(rng)
    inactive = np.flatnonzero(~SPACE.active(vector))
    assert len(inactive) > 0 or all(max(s.depths) == s.depths[v] for s, v in
                                    zip(SPACE.stages, vector, strict=False))
    other = vector.copy()
    for index in inactive:
        other[index] = (other[index] + 1) % len(SPACE.decisions[index].choices)
    assert SPACE.decode(other) == SPACE.decode(vector)


def test_optuna_distributions_and_define_by_run():
    spec = paper_networks()[0]
    distributions = SPACE.distributions()
    assert list(distributions) == [d.name for d in SPACE.decisions]
    trial = optuna.trial.FixedTrial(SPACE.params(spec))
    assert SPACE.suggest(trial, name=spec.name) == spec


def test_decode_rejects_bad_vectors():
    with pytest.raises(ValueError, match="expected 97"):
        SPACE.decode([0, 1])
    vector = np.zeros(len(SPACE.decisions), dtype=int)
    vector[0] = 9
    with pytest.raises(ValueError, match="out of range"):
        SPACE.decode(vector)


def test_nas_space_command(capsys):
    from nas.cli import main

    with pytest.raises(SystemExit) as exit_info:
        sys.argv = ["nas", "space"]
        main()
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "97 decisions" in text and "1.826e+42 architectures" in text
    for name in ("v3-large", "v3-small", "mnasnet-a1"):
        assert f"contains {name}: yes" in text


# --------------------------------------------------------------------------- reward
def test_reward_presets_follow_mnasnet():
    soft = Reward.from_preset("soft", 50.0)
    assert soft(80.0, 50.0) == pytest.approx(80.0)
    assert soft(80.0, 100.0) == pytest.approx(80.0 * 2 ** -0.07)
    assert soft(80.0, 25.0) == pytest.approx(80.0 * 0.5 ** -0.07)
    small = Reward.from_preset("soft-small", 15.8)
    assert small(60.0, 31.6) == pytest.approx(60.0 * 2 ** -0.15)
    hard = Reward.from_preset("hard", 50.0)
    assert hard(80.0, 20.0) == pytest.approx(80.0)       # w = 0 within the budget
    assert hard(80.0, 100.0) == pytest.approx(40.0)      # w = -1 above it
    pareto = Reward.from_preset("pareto", 50.0)
    assert pareto.values(80.0, 30.0) == [80.0, 30.0]
    assert pareto.directions == ["maximize", "minimize"]
    assert soft.values(80.0, 50.0) == [pytest.approx(80.0)]
    with pytest.raises(RewardError, match="unknown reward"):
        Reward.from_preset("softer", 50.0)
    with pytest.raises(RewardError):
        Reward(50.0, alpha=0.1)


@given(st.sampled_from(["soft", "soft-small", "hard", "pareto"]),
       st.floats(1, 100), st.floats(0.5, 500), st.floats(0.5, 500))
def test_reward_never_favours_the_slower_of_two_equally_accurate_nets(preset, accuracy, a, b):
    reward = Reward.from_preset(preset, 50.0)
    fast, slow = sorted((a, b))
    assert reward(accuracy, fast) >= reward(accuracy, slow) - 1e-9


# --------------------------------------------------------------------------- strategies
TARGET = SPACE.sample_vector(np.random.default_rng(99))


def match_score(spec) -> float:
    """A synthetic objective with a known optimum: the share of active decisions equal to
    TARGET's."""
    vector = SPACE.encode(spec)
    mask = SPACE.active(vector)
    return float(((vector == TARGET) & mask).sum() / mask.sum())


def drive(strategy, trials: int) -> list[float]:
    scores = []
    for index in range(trials):
        spec = strategy.ask()
        score = match_score(spec)
        scores.append(score)
        strategy.tell(spec, TrialResult(spec=spec, index=index, latency_ms=2.0 - score,
                                        accuracy=score, reward=score))
    return scores


def options(name: str) -> dict:
    return {"population": 20} if name == "evolution" else \
        {"multi_objective": True} if name == "nsga2" else {}


@pytest.mark.parametrize("name", [s for s in STRATEGIES if s != "random"])
def test_each_strategy_beats_random_on_a_known_optimum(name):
    trials, tail = 120, 40
    ours = [np.mean(drive(make_strategy(name, SPACE, seed=s, **options(name)), trials)[-tail:])
            for s in (0, 1)]
    random = [np.mean(drive(make_strategy("random", SPACE, seed=s), trials)[-tail:])
              for s in (0, 1)]
    assert np.mean(ours) > np.mean(random) + 0.05, (ours, random)


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategies_are_deterministic_and_start_from_the_seed_arch(name):
    seed_arch = paper_networks()[2]  # MnasNet-A1, as the V3-Large search started from
    runs = [drive(make_strategy(name, SPACE, seed=7, seed_arch=seed_arch, **options(name)), 12)
            for _ in range(2)]
    assert runs[0] == runs[1]
    strategy = make_strategy(name, SPACE, seed=7, seed_arch=seed_arch, **options(name))
    assert spec_key(strategy.ask()) == spec_key(seed_arch)


def test_strategy_errors():
    with pytest.raises(StrategyError, match="unknown strategy"):
        make_strategy("annealing", SPACE)
    with pytest.raises(StrategyError, match="not in the"):
        make_strategy("random", SPACE, seed_arch=zoo.get("mobilenet_v2"))


def test_constraint_keeps_proposals_feasible():
    predictor = synthetic_predictor()
    budget = float(np.median(predictor.predict([SPACE.sample(np.random.default_rng(i))
                                                for i in range(40)])))
    for name in ("random", "evolution", "tpe", "rl"):
        strategy = make_strategy(name, SPACE, seed=0, constraint=lambda s: predictor.predict(
            [s])[0] - budget, **options(name))
        specs = [strategy.ask() for _ in range(10)]
        for spec in specs:
            strategy.tell(spec, TrialResult(spec=spec, index=0, latency_ms=1.0, accuracy=1.0,
                                            reward=1.0))
        assert max(predictor.predict(specs)) <= budget


# --------------------------------------------------------------------------- runner
class FailingEstimator(AccuracyEstimator):
    """Params count, but raises for 32-wide stems."""

    name = "failing"

    def _score(self, spec):
        from nas.build import count_params

        if spec.stem.out_ch == 32:
            raise RuntimeError("candidate blew up")
        return float(count_params(spec)) / 1e6, {}


def make_run(tmp_path, name="run", trials=12, strategy="random", estimator=None, **kwargs):
    settings = SearchSettings(budget_ms=kwargs.pop("budget_ms", 12.0), strategy=strategy,
                              trials=trials, job=FAST_JOB, recalibrate=False, **kwargs)
    return SearchRun(settings, tmp_path / name, predictor=synthetic_predictor(),
                     estimator=estimator)


def test_infeasible_budget_names_the_smallest_latency(tmp_path):
    fastest = synthetic_predictor().min_latency(SPACE)
    with pytest.raises(BudgetError, match=f"{fastest:.2f} ms"):
        make_run(tmp_path, budget_ms=fastest * 0.9)
    make_run(tmp_path, budget_ms=fastest * 1.01)  # just above: accepted


def test_a_budget_of_a_zoo_network_is_its_latency_as_the_search_predicts_it(tmp_path):
    """`nas reproduce --search`'s budget, "as fast as V3-Small": on the candidates' scale,
    not the measured milliseconds (which the predictor's drift would move)."""
    run = make_run(tmp_path, budget_ms=3.0, budget_of="v3-small")
    v3 = dataclasses.replace(zoo.get("v3-small"), se_style="v3",
                             input_size=run.space.input_size, num_classes=run.space.num_classes)
    assert run.budget_ms == pytest.approx(synthetic_predictor().predict([v3])[0]) != 3.0
    assert run.reward.target_ms == run.budget_ms == run.info["budget_ms"]
    assert run.settings.budget_ms == 3.0  # as measured, for the record
    assert make_run(tmp_path, name="plain", budget_ms=3.0).budget_ms == 3.0
    with pytest.raises(RunError, match="'resnet' is not a zoo model"):
        SearchSettings(budget_ms=3.0, budget_of="resnet")


def test_a_budget_fraction_is_that_share_of_the_networks_latency(tmp_path):
    """"V3-Small's accuracy at <= 0.85x its latency": the budget is 0.85 x V3-Small as the
    search predicts it; a fraction of a budget typed in ms means nothing, and is refused."""
    whole = make_run(tmp_path, name="whole", budget_ms=3.0, budget_of="v3-small")
    share = make_run(tmp_path, name="share", budget_ms=3.0, budget_of="v3-small",
                     budget_fraction=0.85)
    assert share.budget_ms == pytest.approx(0.85 * whole.budget_ms)
    assert share.reward.target_ms == share.budget_ms == share.info["budget_ms"]
    with pytest.raises(RunError, match="scales a budget given as a network"):
        SearchSettings(budget_ms=3.0, budget_fraction=0.85)
    for bad in (0.0, 1.2):
        with pytest.raises(RunError, match="budget fraction must be in"):
            SearchSettings(budget_ms=3.0, budget_of="v3-small", budget_fraction=bad)


def test_failing_candidates_are_recorded_and_the_search_goes_on(tmp_path):
    run = make_run(tmp_path, trials=16, estimator=FailingEstimator())
    results = run.run()
    failed = [r for r in results if r.failed]
    assert len(results) == 16 and failed and len(failed) < 16
    assert all("candidate blew up" in r.reason for r in failed)
    study = optuna.load_study(study_name=STUDY_NAME, storage=run.store.url)
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == len(failed) and states.count("COMPLETE") == 16 - len(failed)
    assert all("candidate blew up" in t.user_attrs["reason"] for t in study.trials
               if t.state.name == "FAIL")


def test_a_dying_worker_fails_only_its_own_candidate(tmp_path):
    run = make_run(tmp_path, trials=6)
    pool = ProcessPool(run.objective, 2, function=die_on_wide_stems)
    try:
        specs = [SPACE.sample(np.random.default_rng(i)) for i in range(6)]
        results = {r.index: r for r in pool.evaluate(list(enumerate(specs)))}
    finally:
        pool.close()
    assert sorted(results) == list(range(6))
    for index, spec in enumerate(specs):
        assert results[index].failed == (spec.stem.out_ch == 32), results[index].reason
    assert any(r.failed for r in results.values()) and not all(r.failed for r in
                                                               results.values())
    assert all("worker process died" in r.reason for r in results.values() if r.failed)


def test_same_settings_same_history_and_resume_replays(tmp_path):
    first = make_run(tmp_path, "a", trials=10, strategy="evolution",
                     strategy_options={"population": 4}).run(workers=1)
    again = make_run(tmp_path, "b", trials=10, strategy="evolution",
                     strategy_options={"population": 4}).run(workers=1)
    assert [(r.spec, r.reward) for r in first] == [(r.spec, r.reward) for r in again]
    # continuing to 16 trials evaluates only the 6 new ones
    longer = make_run(tmp_path, "a", trials=16, strategy="evolution",
                      strategy_options={"population": 4})
    runner = Runner(longer.strategy(), longer.objective, longer.store, 16)
    results = runner.run()
    assert runner.replayed == 10 and len(results) == 16
    assert [r.spec for r in results[:10]] == [r.spec for r in first]
    with pytest.raises(RunError, match="other settings"):
        make_run(tmp_path, "a", trials=16, strategy="random")
    other_seed = make_run(tmp_path, "c", trials=4, strategy="random")
    other_seed.run()
    mismatched = Runner(make_strategy("random", SPACE, seed=5), other_seed.objective,
                        other_seed.store, 4)
    with pytest.raises(ResumeMismatch):
        mismatched.run()


def test_optuna_dashboard_reads_a_run(tmp_path):
    dashboard = pytest.importorskip("optuna_dashboard")
    from wsgiref.util import setup_testing_defaults

    run = make_run(tmp_path, trials=4, estimator=FailingEstimator())
    results = run.run()
    app = dashboard.wsgi(optuna.storages.RDBStorage(run.store.url))
    environ: dict = {"PATH_INFO": "/api/studies/1", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda code, headers, *rest: status.append(code)))
    assert status[0].startswith("200")
    study = json.loads(body)
    assert study["name"] == STUDY_NAME and len(study["trials"]) == len(results)
    assert {p["name"] for p in study["trials"][0]["params"]} == set(SPACE.distributions())


def test_parallel_workers_give_the_same_history(tmp_path):
    serial = make_run(tmp_path, "serial", trials=6, strategy="tpe").run(workers=1)
    parallel = make_run(tmp_path, "parallel", trials=6, strategy="tpe").run(workers=2)
    assert [(r.spec, r.reward) for r in serial] != [] and \
        [r.spec.blocks for r in serial[:2]] == [r.spec.blocks for r in parallel[:2]]
    assert sorted(r.index for r in parallel) == list(range(6))


def count_complete(db: Path) -> int:
    return finished_trials(db)  # never Optuna here: it would race the search's schema


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    command = [sys.executable, "-m", "nas.cli", "search", "--budget", "20ms", "--trials", "40",
               "--strategy", "evolution", "--population", "8", "--estimator",
               "zero-cost:params", "--table", str(table), "--no-recalibrate", "--workers", "1",
               "--runs-dir", str(tmp_path / "runs"), "--name", "killed", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    db = tmp_path / "runs" / "killed" / "study.db"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while count_complete(db) < 8 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = count_complete(db)
    assert 8 <= before < 40, process.stderr.read().decode()[-2000:]
    stored_before = {t.user_attrs["index"]: t.user_attrs["spec"] for t in
                     optuna.load_study(study_name=STUDY_NAME,
                                       storage=f"sqlite:///{db}").trials}
    finished = subprocess.run(command + ["--resume"], env=env, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"continuing: {before} finished trial(s)" in finished.stdout
    trials = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{db}").trials
    indices = [t.user_attrs["index"] for t in trials]
    assert sorted(indices) == list(range(40))  # none lost, none twice
    assert all(t.user_attrs["spec"] == stored_before[t.user_attrs["index"]] for t in trials
               if t.user_attrs["index"] in stored_before)


# --------------------------------------------------------------------------- Ray
@pytest.mark.ray
@pytest.mark.parametrize("strategy", ["evolution", "tpe"])
def test_ray_executor_on_a_local_two_cpu_ray(tmp_path, strategy, monkeypatch):
    ray = pytest.importorskip("ray")
    puts = []
    real_put = ray.put

    def counting_put(value, *args, **kwargs):
        puts.append(type(value).__name__)
        return real_put(value, *args, **kwargs)

    monkeypatch.setattr(ray, "put", counting_put)
    options = {"strategy_options": {"population": 4}} if strategy == "evolution" else {}
    run = make_run(tmp_path, trials=6, strategy=strategy, **options)
    results = run.run(workers=2, executor="ray")
    history = run.store.history()
    assert len(results) == 6 and sorted(history) == list(range(6))
    assert all(r.ok and r.node_id and r.attempts == 1 for r in history.values())
    assert puts == ["JobInputs"]  # the data set goes to the object store once, not per trial
    # the runner drives Ray as it drives local workers: the same batches, the same history
    local = make_run(tmp_path, "local", trials=6, strategy=strategy, **options).run(workers=2)
    assert [(r.spec, r.reward) for r in local] == [(history[i].spec, history[i].reward)
                                                   for i in range(6)]


# --------------------------------------------------------------------------- CLI
def run_cli(*args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), **env_vars}
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_search_writes_every_output(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    result = run_cli("search", "--budget", "15ms", "--trials", "8", "--estimator",
                     "zero-cost:params", "--table", str(table), "--no-recalibrate",
                     "--workers", "1", "--runs-dir", str(tmp_path), "--name", "cli",
                     "--seed-arch", "v3-small", "--strategy", "tpe")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "cli"
    for name in ("study.db", "run.json", "best.json", "best.md", "best.pt", "best.py",
                 "pareto.png", "report.md"):
        assert (run_dir / name).stat().st_size > 0, name
    from nas.export import load_spec

    best = load_spec(run_dir / "best.json")
    assert SPACE.contains(dataclasses.replace(best, name="x"))
    report = (run_dir / "report.md").read_text()
    assert "V3-Large" in report and "V3-Small" in report and "measured ms" in report
    assert "Final choice" in report and "(chosen)" in report
    info = json.loads((run_dir / "run.json").read_text())
    assert info["settings"]["seed_arch"] == "v3-small" and "calibration" in info
    assert "Best architecture" in result.stdout


def test_cli_search_trains_the_default_supernet_once(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    cache = tmp_path / "cache"
    args = ("search", "--budget", "15ms", "--trials", "2", "--data", "digits", "--resolution",
            "16", "--supernet-steps", "2", "--finetune-steps", "1", "--table", str(table),
            "--no-recalibrate", "--workers", "1", "--runs-dir", str(tmp_path))
    first = run_cli(*args, "--name", "first", NAS_CACHE_DIR=str(cache))
    assert first.returncode == 0, first.stderr[-3000:]
    stdout = " ".join(first.stdout.split())  # rich wraps long lines
    assert "training the search's supernet on digits at 16px (2 steps)" in stdout
    assert "supernet (2 steps, seed 0), each fine-tuned 1 steps at lr 0.05 on digits" in stdout
    [checkpoint] = (cache / "supernets").iterdir()
    # the 0.75x comparison networks are not in the supernet's space: said, not silently dropped
    report = (tmp_path / "first" / "report.md").read_text()
    assert "Not in the plot: the estimator could not score these comparison networks" in report
    assert "- V3-Large 0.75x: EstimatorError: mobilenet_v3_large is not in the supernet's space" \
        in report and "- V3-Small 0.75x:" in report
    second = run_cli(*args, "--no-report", "--name", "second", NAS_CACHE_DIR=str(cache))
    assert second.returncode == 0, second.stderr[-3000:]
    stdout = " ".join(second.stdout.split())
    assert "training the search's supernet" not in stdout and "supernet: " in stdout
    assert checkpoint.name in second.stdout.replace("\n", "")


def test_interrupting_the_supernet_training_of_a_search_is_one_line(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "PYTHONUNBUFFERED": "1",
           "NAS_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "15ms", "--trials", "2",
         "--data", "digits", "--resolution", "16", "--supernet-steps", "5000", "--table",
         str(table), "--no-recalibrate", "--runs-dir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as in a terminal: a suite started in the background (`make test &`) inherits
        # an ignored SIGINT, and Python then raises no KeyboardInterrupt in its children
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in process.stdout:  # wait until the training has begun
            if "training the search's supernet" in line:
                break
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "interrupted: the supernet's training is saved every 100 steps in" in \
        " ".join(stderr.split())
    assert not list(tmp_path.glob("evolution-*/run.json"))  # no trial was started


def test_the_winner_is_chosen_on_measured_latency(tmp_path, monkeypatch):
    from nas.search import report

    run = make_run(tmp_path, trials=8, budget_ms=8.0)
    results = run.run()
    ranked = sorted((r for r in results if r.ok), key=lambda r: (-r.reward, r.index))
    # the predicted favourite measures 3x slower than predicted; the runner-up as predicted
    slow = {ranked[0].index: 3.0}

    def fake_measure(specs, rounds):
        by_key = {spec_key(r.spec): r for r in ranked}
        return [by_key[spec_key(s)].latency_ms * slow.get(by_key[spec_key(s)].index, 1.0)
                if spec_key(s) in by_key else 5.0 for s in specs]

    monkeypatch.setattr(run, "measure_ms", fake_measure)
    winner, measured, references = report.measured_choice(run, results, finalists=3)
    assert winner.index == max(ranked[1:3], key=lambda r: (r.reward, -r.index)).index
    assert measured[ranked[0].index] == pytest.approx(3 * ranked[0].latency_ms)
    assert references == [5.0, 5.0] and len(measured) == 3


def test_cli_search_errors_are_one_line(tmp_path, capsys):
    """In this process (seven commands; the console script itself: tests/test_cli.py)."""
    import typer

    from nas.cli.app import _run, app

    table = save_synthetic_table(tmp_path / "table.json")
    common = ["--table", str(table), "--runs-dir", str(tmp_path), "--no-recalibrate"]
    fastest = synthetic_predictor().min_latency(SPACE)
    cases = [
        (["--budget", "60 parsecs"], "not understood"),
        (["--budget", "1us", *common], f"{fastest:.2f} ms (predicted from the latency table)"),
        (["--strategy", "annealing", *common], "unknown strategy"),
        (["--reward", "softer", *common], "unknown reward"),
        (["--seed-arch", "mobilenet_v2", *common], "not an architecture"),
        (["--data", "imagefolder:/nonexistent", *common], "/nonexistent"),
        (["--resume", "--name", "never", *common], "nothing to resume"),
    ]
    for args, message in cases:
        code = _run(typer.main.get_command(app), ["search", *args], "nas")
        err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_an_unreachable_budget_is_refused_in_seconds_on_a_cold_cache(tmp_path):
    """With no latency table at all, the check times the space's smallest network alone: no
    table is profiled, no supernet trained, and the error names the latency it reached."""
    cache = tmp_path / "cache"
    start = time.monotonic()
    result = run_cli("search", "--budget", "0.001ms", "--runs-dir", str(tmp_path),
                     NAS_CACHE_DIR=str(cache))
    assert time.monotonic() - start < 60, "the check must not profile or train"
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    line = " ".join(result.stderr.split())
    match = re.search(r"fastest network this space reaches on this device: ([0-9.]+) ms "
                      r"\(its smallest network, measured end to end\)", line)
    assert match and float(match.group(1)) > 0.001, line
    assert not any(cache.rglob("*.json")) and not any(cache.rglob("*.pt"))


def test_the_smallest_network_of_the_space_is_its_fastest():
    """On the session's table (times that grow with each layer's multiply-adds)."""
    from latency_models.store import LatencySetup, load_predictor

    smallest = SPACE.smallest()
    assert SPACE.contains(dataclasses.replace(smallest, name="x"))
    predictor, _ = load_predictor(LatencySetup(), no_profile=True)
    fastest = predictor.min_latency(SPACE)
    assert predictor.predict_one(smallest) == pytest.approx(fastest, rel=1e-6)
    rng = np.random.default_rng(0)
    assert all(predictor.predict_one(SPACE.sample(rng)) > fastest for _ in range(20))


def test_a_search_checks_its_inputs_before_profiling_or_training(tmp_path, monkeypatch):
    """The order of a run's set-up: inputs, then the latency table, then the supernet."""
    import nas.search.run as search_run

    calls = []
    monkeypatch.setattr(search_run, "load_predictor",
                        lambda *a, **k: calls.append("table") or (synthetic_predictor(), "t"))
    bad = SearchSettings(budget_ms=20.0, job=AccuracyJob(data="imagefolder:/nonexistent"))
    with pytest.raises(DataError, match="/nonexistent"):
        SearchRun(bad, tmp_path / "bad")
    assert calls == []  # refused before the table was opened
    job = AccuracyJob(data="digits", resolution=16, supernet_steps=2, finetune_steps=1)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    with SearchRun(SearchSettings(budget_ms=20.0, job=job, recalibrate=False),
                   tmp_path / "good") as run:
        assert calls == ["table"] and job.supernet_path() is not None
        assert not job.supernet_path().exists()  # the table first, the supernet after
        steps = []
        run.prepare(on_step=lambda step, total, loss: steps.append(step))
        assert steps == [1, 2] and job.supernet_path().is_file()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_interrupting_a_parallel_search_leaves_no_workers_behind(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    # Far more trials than can finish while the test looks: the search must still be running
    # (with its workers) when it is signalled, however fast the machine.
    command = [sys.executable, "-m", "nas.cli", "search", "--budget", "20ms", "--trials", "50000",
               "--strategy", "random", "--estimator", "zero-cost:params", "--table", str(table),
               "--no-recalibrate", "--workers", "2", "--runs-dir", str(tmp_path), "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for sig, name in ((signal.SIGTERM, "term"), (signal.SIGKILL, "kill")):
        db = tmp_path / name / "study.db"
        process = subprocess.Popen([*command, "--name", name], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while count_complete(db) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = children_of(process.pid)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert workers, "the search should run worker processes"
        process.send_signal(sig)
        code = process.wait(timeout=60)
        if sig == signal.SIGTERM:
            assert code == 130
            assert "interrupted" in process.stderr.read().decode()
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers), f"orphaned workers after SIG{name}"


def test_a_budget_of_a_network_is_its_measured_latency_when_the_finalists_are_timed(
        tmp_path, monkeypatch):
    """The timer reads everything 1.5x the predictor here. Every finalist is within the
    budget (V3-Large) on both scales, so the hard reward must pick the most accurate; with the
    predicted budget against measured latencies most would be over it, and a faster, less
    accurate one would win."""
    from nas.search import report

    run = make_run(tmp_path, trials=12, budget_of="v3-large", reward="hard", budget_ms=3.0)
    results = run.run()
    ranked = sorted((r for r in results if r.ok), key=lambda r: (-r.reward, r.index))
    timed = []

    def fake_measure(specs, rounds):
        timed.append([s.name for s in specs])
        return [1.5 * run.predictor.predict([dataclasses.replace(
            s, se_style="v3", input_size=run.space.input_size,
            num_classes=run.space.num_classes)])[0] for s in specs]

    monkeypatch.setattr(run, "measure_ms", fake_measure)
    winner, measured, references = report.measured_choice(run, results, finalists=12)
    assert all(r.latency_ms <= run.budget_ms for r in ranked)
    most_accurate = max(ranked, key=lambda r: (r.accuracy, -r.index))
    assert 1.5 * most_accurate.latency_ms > run.budget_ms  # over it on the wrong scale
    assert winner.index == most_accurate.index
    assert timed[0][-2:] == [zoo.get("v3-large").name, zoo.get("v3-small").name]
    assert len(references) == 2 and len(measured) == len(ranked)


def test_a_budget_fraction_holds_on_the_measured_scale_too(tmp_path, monkeypatch):
    """The timer reads the candidates 1.1x the predictor and V3-Large as predicted, so some
    finalists within 0.85 x V3-Large predicted are over it measured. Of two finalists, the
    more accurate one (A) is over 0.85 x V3-Large measured, the other (B) within it, their
    accuracies set so that B wins at 0.85x and A would win at 1x."""
    from nas.search import report

    run = make_run(tmp_path, trials=12, budget_of="v3-large", reward="hard", budget_ms=3.0,
                   budget_fraction=0.85)
    results = run.run()
    references = {zoo.get(name).name for name in ("v3-large", "v3-small")}

    def predicted(spec):
        return run.predictor.predict([dataclasses.replace(
            spec, se_style="v3", input_size=run.space.input_size,
            num_classes=run.space.num_classes)])[0]

    def fake_measure(specs, rounds):
        return [predicted(s) * (1.0 if s.name in references else 1.1) for s in specs]

    v3_large = predicted(zoo.get("v3-large"))
    ms = {r.index: 1.1 * r.latency_ms for r in results}
    over = [i for i in ms if 0.85 * v3_large < ms[i] <= v3_large]
    within = [i for i in ms if ms[i] <= 0.85 * v3_large]
    assert over and within
    a, b = max(over, key=ms.get), within[0]
    penalised = 0.85 * v3_large / ms[a]  # A's hard reward at 0.85x, per unit of accuracy
    accuracy = {a: 1.0, b: (1.0 + penalised) / 2}
    results = [dataclasses.replace(r, accuracy=accuracy.get(r.index, 0.1)) for r in results]
    monkeypatch.setattr(run, "measure_ms", fake_measure)
    winner, measured, _ = report.measured_choice(run, results, finalists=12)
    assert measured[a] == pytest.approx(ms[a]) and winner.index == b


def test_evolution_under_a_budget_below_its_seed_proposes_feasible_children():
    """A hard budget at 0.85x the seed's latency: one mutation of the seed almost never meets
    it, so the first population was mostly candidates above the budget (trained, then
    penalised); each child is now a feasible descendant of the seed, many decisions away."""
    predictor = synthetic_predictor()
    seed_arch = dataclasses.replace(zoo.get("v3-small"), se_style="v3",
                                    input_size=SPACE.input_size, num_classes=SPACE.num_classes)
    budget = 0.85 * predictor.predict_one(seed_arch)
    evolution = Evolution(SPACE, population=12, seed=3, seed_arch=seed_arch, stage_prob=0.2,
                          constraint=lambda spec: predictor.predict_one(spec) - budget)
    children = [evolution.ask() for _ in range(13)][1:]  # the seed itself comes first
    assert all(predictor.predict_one(child) <= budget for child in children)
    assert len({spec_key(child) for child in children}) == 12
    assert all(SPACE.contains(child) for child in children)


def _se_off_stages(spec) -> int:
    """Stages of two or more blocks whose blocks all go without squeeze-excite."""
    stages = SPACE.stage_of_blocks(spec)
    runs = {}
    for block, stage in zip(spec.blocks, stages, strict=True):
        runs.setdefault(stage, []).append(block.se)
    return sum(len(flags) >= 2 and not any(flags) for flags in runs.values())


def test_stage_moves_set_one_option_across_a_stage_and_are_off_by_default():
    """stage_prob 0 draws exactly Once-for-All's mutants; stage moves turn squeeze-excite off
    in whole stages of V3-Small far more often than per-decision mutation does."""
    start = zoo.get("v3-small")
    before = _se_off_stages(start)  # its 24-channel stage has none
    plain, staged = np.random.default_rng(5), np.random.default_rng(5)
    assert all(SPACE.mutate(start, plain) == SPACE.mutate(start, staged, stage_prob=0.0)
               for _ in range(20))
    counts = {}
    for stage_prob in (0.0, 0.2):
        rng = np.random.default_rng(7)
        mutants = [SPACE.mutate(start, rng, stage_prob=stage_prob) for _ in range(300)]
        assert all(SPACE.contains(m) and spec_key(m) != spec_key(start) for m in mutants)
        counts[stage_prob] = sum(_se_off_stages(m) > before for m in mutants)
    assert counts[0.0] == 0 and counts[0.2] >= 10, counts  # 3 stages x 0.2 x 1/4 x 1/2
    with pytest.raises(StrategyError):
        Evolution(SPACE, stage_prob=1.5)


def test_a_run_resumes_on_a_table_that_grew_and_refuses_one_that_moved_its_trials(tmp_path):
    """Another benchmark profiling new layers into the shared table must not orphan a
    finished search; a table that predicts its stored trials differently must."""
    from latency_models.layers import layers_of
    from latency_models.lut import Entry, LatencyTable

    table_path = save_synthetic_table(tmp_path / "table.json")
    settings = SearchSettings(budget_ms=20.0, strategy="random", trials=3, job=FAST_JOB,
                              table=str(table_path), recalibrate=False)
    with SearchRun(settings, tmp_path / "run") as run:
        first = run.run()
    table = LatencyTable.load(table_path)
    table.entries["a-layer-of-another-network"] = Entry(1.0, 1.05, 15)
    table.save(table_path)
    with SearchRun(settings, tmp_path / "run", resume=True) as run:
        again = run.run()
    assert [r.latency_ms for r in again] == [r.latency_ms for r in first]
    assert run.info["table"]["checksum"] == table.checksum()
    assert len(run.info["table_changes"]) == 1  # the run says its table changed, and when
    used = layers_of(first[0].spec)[0].key
    entry = table.entries[used]
    table.entries[used] = Entry(2 * entry.min_ms, 2 * entry.median_ms, entry.samples)
    table.save(table_path)
    with pytest.raises(RunError, match="predicts its stored trials differently"):
        SearchRun(settings, tmp_path / "run", resume=True)
