"""One writer per run directory: a second process is refused with who holds it; a killed
holder leaves no stale lock; a refused run leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.runlock import RunLock, RunLocked
from nas.search.run import SearchRun, SearchSettings
from tests.search_helpers import finished_trials, save_synthetic_table, synthetic_predictor

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

HOLD = """
import sys, time
from nas.runlock import RunLock
lock = RunLock(sys.argv[1], file=sys.argv[2] == "file").acquire()
print("held", flush=True)
time.sleep(600)
"""


def hold_in_other_process(path: Path, file: bool = False) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "file" if file else "dir"],
                               env=ENV, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    holder = hold_in_other_process(run_dir)
    try:
        with pytest.raises(RunLocked, match=rf"in use by another process \(pid {holder.pid},"):
            RunLock(run_dir).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunLock(run_dir) as lock:  # the kernel dropped the dead holder's lock
        assert lock.held and (run_dir / ".lock").exists()
    assert not (run_dir / ".lock").exists()


def test_a_table_lock_sits_beside_the_file(tmp_path):
    table = tmp_path / "torch-abc.json"
    holder = hold_in_other_process(table, file=True)
    try:
        assert (tmp_path / "torch-abc.json.lock").exists()
        with pytest.raises(RunLocked, match="torch-abc.json is in use"):
            RunLock(table, file=True).acquire()
        RunLock(tmp_path / "other.json", file=True).acquire().release()  # another file: free
    finally:
        holder.kill()
        holder.wait()


def test_reentrant_in_one_process_and_a_created_directory_goes_when_empty(tmp_path):
    run_dir = tmp_path / "runs" / "deep" / "run"
    outer = RunLock(run_dir).acquire()
    inner = RunLock(run_dir).acquire()  # the CLI, then the NetAdapt object it makes
    inner.release()
    assert (run_dir / ".lock").exists()  # still held by outer
    outer.release()
    assert not (tmp_path / "runs").exists()  # nothing was written: nothing is left

    run_dir.mkdir(parents=True)
    with RunLock(run_dir):
        (run_dir / "result.json").write_text("{}")
    assert sorted(p.name for p in run_dir.iterdir()) == ["result.json"]


def settings(budget_ms: float, trials: int = 4) -> SearchSettings:
    from nas.search.objective import AccuracyJob

    return SearchSettings(budget_ms=budget_ms, reward="soft", strategy="random", trials=trials,
                          seed=0, job=AccuracyJob(estimator="zero-cost:params"),
                          recalibrate=False)


def test_a_search_refused_after_locking_leaves_no_directory(tmp_path):
    fastest = synthetic_predictor().min_latency(synthetic_predictor_space())
    with pytest.raises(ValueError, match="below the fastest"):
        SearchRun(settings(fastest * 0.5), tmp_path / "runs" / "x",
                  predictor=synthetic_predictor())
    assert not (tmp_path / "runs").exists()
    with SearchRun(settings(fastest * 2), tmp_path / "ok", predictor=synthetic_predictor()) \
            as run:
        assert (run.dir / ".lock").exists()
        other = subprocess.run([sys.executable, "-c", HOLD, str(run.dir), "dir"], env=ENV,
                               capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and f"RunLocked: {run.dir} is in use" in other.stderr
    assert not (tmp_path / "ok" / ".lock").exists()


def synthetic_predictor_space():
    from search_spaces.mobilenetv3 import default_space

    return default_space()


def test_two_searches_in_one_run_directory(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    command = [sys.executable, "-m", "nas.cli", "search", "--budget", "20ms", "--trials",
               "50000", "--strategy", "random", "--estimator", "zero-cost:params", "--table",
               str(table), "--no-recalibrate", "--workers", "1", "--runs-dir",
               str(tmp_path / "runs"), "--name", "shared", "--no-report"]
    db = tmp_path / "runs" / "shared" / "study.db"
    first = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while finished_trials(db) < 2 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        second = subprocess.run(command + ["--resume"], env=ENV, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr
        assert f"in use by another process (pid {first.pid}," in lines[0]
        overwrite = subprocess.run(command + ["--overwrite"], env=ENV, capture_output=True,
                                   text=True, timeout=120)
        assert overwrite.returncode == 2 and "in use" in overwrite.stderr
        assert db.exists() and first.poll() is None  # the first run's storage is untouched
    finally:
        first.kill()
        first.wait()
