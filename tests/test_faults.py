"""Fault injection: a full disk, and SIGKILL at random moments of a search, a profile, NetAdapt
and a checkpoint write. Nothing finished is lost, nothing half-written is ever read.

The disk-full cases mount a small tmpfs in a private mount namespace (``unshare -rm``, no root
needed where user namespaces are enabled; skipped where they are not). The SIGKILL cases repeat
five times each and are in the ``-m slow`` run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import torch

from latency_models.lut import LatencyTable, TableError
from nas.export import load_checkpoint
from nas.netadapt import load_iterations
from nas.runlock import RunLock
from nas.search.storage import STUDY_NAME
from search_spaces import zoo
from tests.search_helpers import finished_trials, save_synthetic_table

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
NAS = [sys.executable, "-m", "nas.cli"]
REPETITIONS = 5


def _can_unshare() -> bool:
    try:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c",
                                "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _can_unshare(),
                                 reason="no private mount namespace here (unshare -rm)")


def in_small_disk(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) with $DISK a fresh tmpfs of its own; $OUT stays outside it."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {**ENV, "DISK": str(disk), "OUT": str(out), "NAS": " ".join(NAS),
           "PY": sys.executable}
    return subprocess.run(["unshare", "-rm", "sh", "-c", "set -u\n" + textwrap.dedent(script)],
                          env=env, capture_output=True, text=True, timeout=600)


def fill(path: str = "$DISK/filler") -> str:
    return f"dd if=/dev/zero of={path} bs=16k 2>/dev/null || true\n"


# --------------------------------------------------------------------------- disk full
@needs_tmpfs
def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_files(tmp_path):
    done = in_small_disk(tmp_path, f"""
        mount -t tmpfs -o size=16m tmpfs "$DISK"
        $NAS reproduce v3-small --out "$DISK/run" > /dev/null || exit 90
        (cd "$DISK/run" && sha256sum * > "$OUT/before")
        {fill()}
        $NAS reproduce v3-small --out "$DISK/run" > /dev/null 2> "$OUT/err"
        echo $? > "$OUT/code"
        (cd "$DISK/run" && sha256sum * > "$OUT/after")
        ls -a "$DISK/run" > "$OUT/listing"
    """)
    out = tmp_path / "out"
    assert done.returncode == 0, done.stderr
    assert (out / "code").read_text().strip() == "2"
    error = (out / "err").read_text().strip().splitlines()
    assert len(error) == 1 and "Traceback" not in error[0]
    assert "could not write" in error[0] and "No space left on device" in error[0]
    assert "the previous file is kept" in error[0]
    assert (out / "after").read_text() == (out / "before").read_text()  # byte for byte
    assert not [n for n in (out / "listing").read_text().split() if n.endswith(".tmp")]


@needs_tmpfs
def test_a_full_disk_during_a_search_keeps_every_finished_trial(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    search = (f'$NAS search --budget 20ms --trials 30 --strategy random '
              f'--estimator zero-cost:params --table {table} --no-recalibrate --workers 1 '
              f'--runs-dir "$DISK/runs" --name full --no-report')
    count = '$PY -m tests.study_db "$DISK/runs/full/study.db" count'  # no Optuna import
    done = in_small_disk(tmp_path, f"""
        mount -t tmpfs -o size=400k tmpfs "$DISK"
        {search} > /dev/null 2> "$OUT/err"
        echo $? > "$OUT/code"
        {count} > "$OUT/kept"
        mount -o remount,size=64m "$DISK"  # space again: the run goes on
        {search} --resume > "$OUT/resumed" 2>&1 || exit 91
        {count} > "$OUT/total"
        $PY -m tests.study_db "$DISK/runs/full/study.db" indices > "$OUT/indices"
    """)
    out = tmp_path / "out"
    assert done.returncode == 0, done.stderr + (out / "err").read_text()
    assert (out / "code").read_text().strip() == "2"
    error = [line for line in (out / "err").read_text().splitlines() if "error" in line]
    assert len(error) == 1 and "Traceback" not in (out / "err").read_text()
    kept = int((out / "kept").read_text())
    assert 0 < kept < 30
    assert f"could not write trial {kept} to" in error[0] and "disk is full" in error[0]
    assert f"continuing: {kept} finished trial(s)" in (out / "resumed").read_text()
    assert json.loads((out / "indices").read_text()) == list(range(30))


# --------------------------------------------------------------------------- SIGKILL
def kill_when(process: subprocess.Popen, ready, *, timeout: float = 300,
              extra: float = 0.0) -> bool:
    """SIGKILL ``process`` once ``ready()`` holds (plus ``extra`` seconds); False if it ended
    first."""
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(extra)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def study_trials(db: Path) -> list:
    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{db}").trials
    except Exception:  # noqa: BLE001 - not created yet
        return []


@pytest.mark.slow
def test_sigkill_during_a_search_loses_and_repeats_nothing(tmp_path):
    table = save_synthetic_table(tmp_path / "table.json")
    rng = random.Random(1)
    for repetition in range(REPETITIONS):
        runs = tmp_path / f"runs{repetition}"
        command = NAS + ["search", "--budget", "20ms", "--trials", "60", "--strategy",
                         "evolution", "--population", "8", "--estimator", "zero-cost:params",
                         "--table", str(table), "--no-recalibrate", "--workers", "2",
                         "--runs-dir", str(runs), "--name", "k", "--no-report"]
        db = runs / "k" / "study.db"
        seen: dict[int, str] = {}
        for kill_at in sorted(rng.sample(range(2, 55), 2)):  # two kills per repetition
            process = subprocess.Popen(command + (["--resume"] if db.exists() else []),
                                       env=ENV, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            kill_when(process, lambda at=kill_at, db=db: finished_trials(db) >= at,
                      extra=rng.uniform(0, 0.5))
            for trial in study_trials(db):  # what was stored stays as it was
                index = trial.user_attrs["index"]
                assert seen.setdefault(index, trial.user_attrs["spec"]) == \
                    trial.user_attrs["spec"]
        finished = subprocess.run(command + ["--resume"], env=ENV, capture_output=True,
                                  text=True, timeout=600)
        assert finished.returncode == 0, finished.stderr[-2000:]
        trials = study_trials(db)
        assert sorted(t.user_attrs["index"] for t in trials) == list(range(60))
        assert all(seen.get(t.user_attrs["index"], t.user_attrs["spec"]) ==
                   t.user_attrs["spec"] for t in trials)
        assert not (runs / "k" / ".lock").exists()


@pytest.mark.slow
def test_sigkill_during_profiling_keeps_every_finished_chunk(tmp_path):
    table = tmp_path / "table.json"
    command = NAS + ["latency", "profile", "--resolution", "32", "--table", str(table)]
    env = {**ENV, "NAS_CACHE_DIR": str(tmp_path / "cache")}
    rng = random.Random(2)
    stored: dict = {}

    def entries() -> dict:
        try:
            return LatencyTable.load(table).entries
        except (TableError, FileNotFoundError):
            return {}

    for _ in range(REPETITIONS):
        before = len(stored)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        killed = kill_when(process, lambda n=before: len(entries()) > n,
                           extra=rng.uniform(0, 3))
        now = LatencyTable.load(table).entries  # never half a table: loads, checksum holds
        assert len(now) > before
        for key, entry in stored.items():  # finished chunks are kept, not measured again
            assert now[key] == entry
        stored = dict(now)
        if not killed:
            break
    # a killed profiler leaves its lock file behind, but not the lock: the next one goes on
    RunLock(table, file=True).acquire().release()


NETADAPT = """
import sys
from pathlib import Path
from nas.data import load_digits_data
from tests.test_netadapt import make_run

run_dir = Path(sys.argv[1])
resume = (run_dir / "netadapt.json").exists()
result = make_run(run_dir, load_digits_data(resolution=16), long_epochs=0, resume=resume).run()
print(len(result.iterations))
"""


@pytest.mark.slow
def test_sigkill_during_netadapt_loses_no_finished_iteration(tmp_path):
    straight = subprocess.run([sys.executable, "-c", NETADAPT, str(tmp_path / "straight")],
                              env=ENV, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    reference = load_iterations(tmp_path / "straight")
    assert len(reference) >= 4
    rng = random.Random(3)
    for repetition in range(REPETITIONS):
        run_dir = tmp_path / f"cut{repetition}"
        done = 0
        while True:
            # kill once iteration `at` is on disk (plus up to 2 s); `at` past the last
            # iteration lets the run finish
            at = rng.randint(done + 1, len(reference)) if done < len(reference) else done + 1
            process = subprocess.Popen([sys.executable, "-c", NETADAPT, str(run_dir)],
                                       env=ENV, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            killed = kill_when(process, lambda at=at, d=run_dir: len(load_iterations(d)) >= at,
                               extra=rng.uniform(0, 2))
            records = load_iterations(run_dir)
            assert len(records) >= done  # nothing finished is lost
            for i, record in enumerate(records):  # every finished iteration is whole
                assert i >= done or same_iteration(record, reference[i])
                load_checkpoint(run_dir / "iterations" / f"{i:04d}" / "model.pt")
            done = len(records)
            if not killed:
                assert process.returncode == 0, process.stderr.read().decode()[-2000:]
                break
        records = load_iterations(run_dir)
        assert len(records) == len(reference)
        assert all(same_iteration(a, b) for a, b in zip(records, reference, strict=True))


def same_iteration(a: dict, b: dict) -> bool:
    """Equal but for when and how long (a killed run's iteration is redone later)."""
    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if k not in ("seconds", "finished")}
        if isinstance(value, list):
            return [drop(v) for v in value]
        return value
    return drop(a) == drop(b)


WRITER = """
import sys
import torch
from nas.export import save
from nas.build import build_model
from search_spaces import zoo

model = build_model(zoo.get("v3-large"))
print("ready", flush=True)
value = 0
while True:
    value += 1
    with torch.no_grad():
        model.classifier[-1].bias.fill_(value)
    save(model, sys.argv[1])
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    rng = random.Random(4)
    for _ in range(REPETITIONS):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=ENV,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        kill_when(process, path.exists, extra=rng.uniform(0.2, 3.0))
        spec, state = load_checkpoint(path)  # a whole checkpoint, never half of one
        assert spec == zoo.get("v3-large")
        bias = state["classifier.3.bias"]  # one write's value throughout: not a mix of two
        assert torch.all(bias == bias[0]) and bias[0] >= 1
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        for name in leftovers:  # a killed write may leave its temporary file, never the target
            (tmp_path / name).unlink()
