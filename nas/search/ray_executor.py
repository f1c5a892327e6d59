"""Score a search's candidates on Ray (``--executor ray --workers N [--ray-address ADDR]``).

The runner drives the search exactly as it does locally: batches of N candidates are asked,
scored and told back in ask order, each result stored the moment it arrives. So a run on Ray
has the history of a local run with the same N, whatever the strategy, and resumes the same
way (by replaying its storage). Only the scoring moves: each candidate is one Ray task (one
CPU, one torch thread) that receives the spec as JSON, the small ``AccuracyJob`` and a
reference to the job's ``JobInputs`` (the data set and, for a supernet estimator, the
supernet), which the search process puts in Ray's object store once per run. A worker process
builds its estimator from them on its first candidate and keeps it. Nothing live crosses: the
study, the predictor, the reward and the terminal stay in the search process.

Faults: a task whose worker process or node is lost is started again, up to ``ATTEMPTS`` times
in all; the trial records its attempts and why the earlier ones were lost (``retried``), or
fails with that reason. An exception inside the estimator is the candidate's own failure and
is not retried (a local run would fail it the same way).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import torch

from nas.errors import RunError, first_line
from nas.search.objective import AccuracyJob, Objective, estimate_accuracy, job_inputs
from nas.search.runner import Runner, failed_outcome
from nas.search.trial import TrialResult
from nas.spec import ArchSpec

__all__ = ["ATTEMPTS", "RayPool", "run_on_ray", "score_candidate"]

ATTEMPTS = 3  # starts of a candidate whose worker or node is lost, before it is failed

_QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
# Ray gives a node the address of the machine's external interface, and turns a loopback
# address given to ray.init into that one too, unless this variable (meant for single-machine
# Windows and macOS) is off; then "this machine" stays 127.0.0.1. Set for a Ray started here
# and for a cluster at a loopback address, before Ray is imported (it is read on import).
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# So ray is imported inside the functions that use it, never at the top: ``connect`` sets these
# variables first.


def score_candidate(job: AccuracyJob, spec_json: str, inputs: list) -> dict[str, Any]:
    """One candidate, in a Ray worker. ``inputs`` holds the ``ObjectRef`` of the job's
    ``JobInputs``, inside a list so that Ray hands over the reference instead of fetching the
    object for every candidate: it is fetched once per worker process, when the estimator is
    built."""
    import ray

    torch.set_num_threads(job.threads or 1)
    [ref] = inputs
    outcome = estimate_accuracy(job, spec_json, inputs=lambda: ray.get(ref))
    return {**outcome, "node_id": ray.get_runtime_context().get_node_id()}


class RayPool:
    """The runner's ``Evaluator`` on Ray: one task per candidate, one CPU and one torch thread
    each; latency and reward are computed in the search process, as with local workers."""

    def __init__(self, objective: Objective, inputs: Any, *, attempts: int = ATTEMPTS):
        """``inputs``: the ``ObjectRef`` of the job's ``JobInputs`` (``ray.put`` once)."""
        import ray

        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.objective, self.attempts = objective, attempts
        self.job = dataclasses.replace(objective.job, threads=objective.job.threads or 1)
        self.inputs = [inputs]
        # Ray's own retries are off: these are counted and their reasons kept in the study.
        self.task = ray.remote(num_cpus=1, max_retries=0)(score_candidate)

    def _submit(self, spec: ArchSpec):
        return self.task.remote(self.job, spec.to_json(), self.inputs)

    def evaluate(self, todo: list[tuple[int, ArchSpec]]) -> Iterator[TrialResult]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        pending = {self._submit(spec): (index, spec, 1, []) for index, spec in todo}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            index, spec, attempt, lost = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except RayTaskError as exc:  # raised by the estimator itself: no retry
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                outcome = failed_outcome(first_line(cause, with_type=True))
            except RayError as exc:  # the worker or its node was lost, not the candidate's fault
                lost.append(f"attempt {attempt}: {first_line(exc, with_type=True)}")
                if attempt < self.attempts:
                    pending[self._submit(spec)] = (index, spec, attempt + 1, lost)
                    continue
                outcome = failed_outcome(f"its Ray worker was lost {attempt} times ({lost[-1]})")
            result = self.objective.finish(spec, index, self.objective.latency_ms(spec),
                                           outcome)
            yield dataclasses.replace(result, node_id=outcome.get("node_id", ""),
                                      attempts=attempt, retried="; ".join(lost))

    def close(self) -> None:  # tasks hold nothing between batches
        pass


def run_on_ray(runner: Runner, *, address: str | None = None) -> list[TrialResult]:
    """Run ``runner``'s remaining trials on Ray: the cluster at ``address``, or a Ray started
    here with ``runner.workers`` CPUs (and stopped at the end)."""
    ray, started_here = connect(address, runner.workers)
    try:
        inputs = ray.put(job_inputs(runner.objective.job))  # once per run, not per trial
        return runner.run(pool=RayPool(runner.objective, inputs))
    finally:
        if started_here:
            ray.shutdown()


def connect(address: str | None, cpus: int):
    """Ray, connected to ``address`` (or to a new local instance with ``cpus`` CPUs), and
    whether this call connected it."""
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    if address is None or _is_loopback(address):
        os.environ.setdefault(_LOOPBACK_ONLY, "0")
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local only: no token file
    else:
        _check_reachable(address)
    import ray

    if ray.is_initialized():
        return ray, False
    logging.getLogger("ray").setLevel(logging.WARNING)
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    return ray, True


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a GCS address (None for ``auto`` or a ``ray://`` client address)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _is_loopback(address: str) -> bool:
    parts = _host_port(address)
    if parts is None:
        return False
    try:
        return ipaddress.ip_address(socket.gethostbyname(parts[0])).is_loopback
    except (OSError, ValueError):
        return False


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at ``address`` (Ray itself retries for minutes)."""
    parts = _host_port(address)
    if parts is None:
        return
    try:
        socket.create_connection(parts, timeout=5).close()
    except OSError as exc:
        raise RunError(f"no Ray cluster answers at --ray-address {address} "
                       f"({exc.strerror or exc}); start one there with `ray start --head`, "
                       f"or check the address") from None
