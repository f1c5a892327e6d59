"""``nas-search --executor ray`` as a user runs it, on a Ray cluster of two nodes.

The cluster is Ray's own ``ray.cluster_utils.Cluster``: a head node and one added node, one CPU
each, every address on 127.0.0.1, started once for this module. Each test runs the installed
``nas-search`` in a subprocess with ``--ray-address``, with its own ``$NAS_CACHE_DIR`` holding
a synthetic latency table (``tests/helpers.py``; nothing is profiled, and ``--no-recalibrate``
keeps latency from being timed). The cluster's own processes see another, empty cache: what a
worker needs must come from the search process through Ray.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from nas.search.storage import STUDY_NAME
from tests.helpers import (
    command_line,
    descendants,
    inet_sockets,
    off_loopback,
    write_synthetic_tables,
)
from tests.study_db import finished_trials, trial_attribute

pytest.importorskip("ray.cluster_utils")
# Marked "ray": `make test` runs these in one process after the rest (two clusters at once
# would share ports, and a node started beside a busy worker can miss Ray's start-up wait).
pytestmark = [pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc"),
              pytest.mark.ray]

BIN = Path(sys.executable).parent
# tiny, fast settings: plain digits at 16x16, a zero-cost proxy
FAST = ("--budget", "60ms", "--data", "digits", "--resolution", "16", "--no-recalibrate",
        "--no-report", "--executor", "ray", "--workers", "2")


@dataclass
class TwoNodes:
    cluster: object           # ray.cluster_utils.Cluster
    cache: Path               # the cluster processes' $NAS_CACHE_DIR (stays empty)

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def head(self):
        return self.cluster.head_node

    @property
    def worker(self):
        [node] = self.cluster.worker_nodes
        return node

    def processes(self) -> list[int]:
        """Every process of the cluster: GCS, raylets, agents and the workers below them."""
        pids = [info.process.pid for node in (self.head, *self.cluster.worker_nodes)
                for infos in node.all_processes.values() for info in infos]
        return [p for pid in pids for p in descendants(pid)]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """The cluster, started once for the module (a node costs seconds to start)."""
    from ray.cluster_utils import Cluster

    cache = tmp_path_factory.mktemp("cluster-cache")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NAS_CACHE_DIR", str(cache))  # inherited by the nodes' workers
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            # a lost node is noticed within ~2 s instead of the default ~30 s
            "_system_config": {"health_check_period_ms": 500,
                               "health_check_failure_threshold": 4}})
        try:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            yield TwoNodes(cluster, cache)
        finally:
            cluster.shutdown()


@pytest.fixture
def nodes(two_nodes):
    """The two-node cluster, its second node added again if a test removed it."""
    if not two_nodes.cluster.worker_nodes:
        two_nodes.cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    return two_nodes


@pytest.fixture(scope="module")
def user_cache(tmp_path_factory) -> Path:
    """The search's $NAS_CACHE_DIR: this machine's latency table at 224x224, synthetic."""
    cache = tmp_path_factory.mktemp("user-cache")
    write_synthetic_tables(cache, resolutions=(224,))
    return cache


def search_env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "NAS_CACHE_DIR": str(cache), "COLUMNS": "200",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the search itself must keep a loopback address on loopback (conftest sets it for Ray
    # started in the test process)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    env.pop("NAS_DEBUG", None)
    return env


def search(cache: Path, *args: str) -> list[str]:
    return [str(BIN / "nas-search"), *args]


def run(command: list[str], cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=search_env(cache), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    return result


def trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{db}").get_trials()


def by_index(db: Path) -> dict[int, optuna.trial.FrozenTrial]:
    found = trials(db)
    indices = [t.user_attrs["index"] for t in found]
    assert sorted(indices) == list(range(len(found))), f"trials missing or twice: {indices}"
    return {t.user_attrs["index"]: t for t in found}


# --------------------------------------------------------------------------- tests
def test_every_node_of_the_cluster_is_on_loopback(nodes):
    registered = nodes.cluster.global_state.node_table()  # what the GCS tells other nodes
    assert len([n for n in registered if n["Alive"]]) == 2
    for node in registered:
        assert node["NodeManagerAddress"] == "127.0.0.1", node
    assert nodes.address.startswith("127.0.0.1:")
    assert not off_loopback(inet_sockets(nodes.processes()))


def test_search_runs_on_both_nodes_with_the_local_history(nodes, user_cache, tmp_path):
    args = (*FAST, "--estimator", "zero-cost:params", "--trials", "8", "--population", "4",
            "--seed", "3", "--runs-dir", str(tmp_path))
    process = subprocess.Popen(search(user_cache, *args, "--ray-address", nodes.address,
                                      "--name", "ray"),
                               env=search_env(user_cache), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    sockets, deadline = [], time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        # the search's sockets and the cluster's, while it runs
        sockets += inet_sockets(descendants(process.pid) + nodes.processes())
        time.sleep(0.5)
    process.kill()  # if still running: it overran
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr[-3000:]
    assert sockets and not off_loopback(sockets), off_loopback(sockets)

    db = tmp_path / "ray" / "study.db"
    ray_trials = by_index(db)
    assert len(ray_trials) == 8
    assert all(t.state.name == "COMPLETE" for t in ray_trials.values())
    ran_on = {t.user_attrs["node_id"] for t in ray_trials.values()}
    assert ran_on == {nodes.head.node_id, nodes.worker.node_id}
    assert all(t.user_attrs["attempts"] == 1 for t in ray_trials.values())
    info = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert info["sessions"][-1]["executor"] == "ray" and info["sessions"][-1]["evaluated"] == 8
    assert not any(nodes.cache.iterdir()), "a worker read or wrote the cluster's cache"

    run(search(user_cache, *args, "--executor", "local", "--name", "local"), user_cache)
    local = by_index(tmp_path / "local" / "study.db")
    assert [(t.user_attrs["spec"], t.values) for _, t in sorted(local.items())] == \
        [(t.user_attrs["spec"], t.values) for _, t in sorted(ray_trials.items())]
    assert all("node_id" not in t.user_attrs for t in local.values())


def save_untrained_supernet(path: Path, steps: int) -> Path:
    """A supernet checkpoint for digits at 16x16, as if trained ``steps`` steps (training it
    for real takes the better part of a minute on a busy 2-core machine)."""
    from nas.accuracy.supernet import Supernet, SupernetRecipe, save_checkpoint
    from search_spaces.mobilenetv3 import default_space

    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, Supernet(default_space().with_resolution(16, 10)), None, steps,
                    SupernetRecipe(steps=steps))
    return path


@pytest.mark.parametrize("estimator, strategy", [("supernet", "tpe"),
                                                 ("supernet:PATH", "nsga2")])
def test_supernet_estimators_on_the_cluster(nodes, user_cache, tmp_path, monkeypatch,
                                            estimator, strategy):
    """The supernet (from the search's cache, or a checkpoint only the search process can
    read) reaches the workers through Ray's object store: their own cache stays empty."""
    from nas.search.objective import AccuracyJob

    if estimator == "supernet":
        monkeypatch.setenv("NAS_CACHE_DIR", str(user_cache))  # where the search looks
        job = AccuracyJob(data="digits", resolution=16, supernet_steps=2)
        save_untrained_supernet(job.supernet_path(), steps=2)
        monkeypatch.undo()
    else:
        estimator = f"supernet:{save_untrained_supernet(tmp_path / 'mine.pt', steps=2)}"
    result = run(search(user_cache, *FAST, "--estimator", estimator, "--supernet-steps", "2",
                        "--finetune-steps", "1", "--strategy", strategy, "--trials", "4",
                        "--ray-address", nodes.address, "--runs-dir", str(tmp_path),
                        "--name", strategy), user_cache)
    assert "2 worker(s), ray" in result.stdout
    assert "training the search's supernet" not in result.stdout
    found = by_index(tmp_path / strategy / "study.db")
    assert len(found) == 4 and all(t.state.name == "COMPLETE" for t in found.values())
    assert all(0 <= t.user_attrs["accuracy"] <= 100 for t in found.values())
    assert {t.user_attrs["node_id"] for t in found.values()} == \
        {nodes.head.node_id, nodes.worker.node_id}
    assert not any(nodes.cache.iterdir()), "a worker trained or loaded its own supernet"


def test_a_lost_node_s_trials_are_retried_and_the_search_finishes(nodes, user_cache,
                                                                   tmp_path):
    worker_id, head_id = nodes.worker.node_id, nodes.head.node_id
    raylet = nodes.worker.all_processes["raylet"][0].process.pid
    # one epoch of training per candidate: seconds, so that the node is surely removed while
    # its candidate is being scored (a zero-cost score can finish in between)
    command = search(user_cache, *FAST, "--estimator", "train", "--epochs", "1", "--trials",
                     "6", "--ray-address", nodes.address, "--runs-dir", str(tmp_path),
                     "--name", "lost")
    process = subprocess.Popen(command, env=search_env(user_cache), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    db = tmp_path / "lost" / "study.db"
    deadline = time.monotonic() + 180
    try:
        # Remove the node while it scores a candidate, after it has finished one.
        while time.monotonic() < deadline and process.poll() is None:
            finished_there = worker_id in trial_attribute(db, "node_id")
            busy = any("ray::score_candidate" in command_line(pid)
                       for pid in descendants(raylet)[1:])
            if finished_there and busy:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the search ended before the node could be removed"
        assert finished_trials(db) < 6
        nodes.cluster.remove_node(nodes.worker, allow_graceful=False)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-3000:]
    found = by_index(db)
    assert len(found) == 6
    retried = [t for t in found.values() if t.user_attrs["retried"]]
    assert retried, "the candidate in flight on the lost node was neither retried nor failed"
    for trial in retried:
        assert "attempt 1:" in trial.user_attrs["retried"]
        if trial.state.name == "COMPLETE":
            assert trial.user_attrs["node_id"] == head_id and trial.user_attrs["attempts"] > 1
        else:
            assert trial.state.name == "FAIL" and "lost" in trial.user_attrs["reason"]
    assert all(t.state.name == "COMPLETE" or t.user_attrs["reason"] for t in found.values())
    assert worker_id in {t.user_attrs["node_id"] for t in found.values()}


def test_resume_after_the_driver_is_killed_keeps_every_finished_trial(nodes, user_cache,
                                                                       tmp_path):
    command = search(user_cache, *FAST, "--estimator", "zero-cost:naswot", "--trials", "12",
                     "--ray-address", nodes.address, "--runs-dir", str(tmp_path),
                     "--name", "killed")
    process = subprocess.Popen(command, env=search_env(user_cache),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = tmp_path / "killed" / "study.db"
    deadline = time.monotonic() + 180
    while finished_trials(db) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished
    before = {i: (t.user_attrs["spec"], t.user_attrs["node_id"], t.datetime_complete)
              for i, t in by_index(db).items()}
    assert 4 <= len(before) < 12, process.stderr.read().decode()[-2000:]

    resumed = run(command + ["--resume"], user_cache)
    assert f"continuing: {len(before)} finished trial(s)" in resumed.stdout
    after = by_index(db)
    assert len(after) == 12
    # the finished trials are kept as they were: neither lost nor scored again
    assert {i: (t.user_attrs["spec"], t.user_attrs["node_id"], t.datetime_complete)
            for i, t in after.items() if i in before} == before
    info = json.loads((tmp_path / "killed" / "run.json").read_text())
    assert info["sessions"][-1]["replayed"] == len(before)
    assert info["sessions"][-1]["evaluated"] == 12 - len(before)


def test_an_address_where_no_cluster_answers_is_one_line(user_cache, tmp_path):
    import socket

    with socket.socket() as probe:  # a free loopback port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    result = subprocess.run(search(user_cache, *FAST, "--estimator", "zero-cost:params",
                                   "--trials", "2", "--ray-address", address,
                                   "--runs-dir", str(tmp_path)),
                            env=search_env(user_cache), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr  # the progress bar shares stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no Ray cluster answers at --ray-address {address}")
