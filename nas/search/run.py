"""One search run end to end: settings, run directory, predictor, strategy, runner, outputs.

``SearchSettings`` is everything that decides a run's history; it is saved as
``runs/<name>/run.json`` with the latency calibration the run used, and a run is only continued
with the same settings.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latency_models.predictor import Calibration, LUTPredictor
from latency_models.store import (
    LatencySetup,
    calibrated_since,
    calibration_specs,
    load_predictor,
    measure_ms,
    rescaled,
)
from nas.errors import MissingLayers, RunError
from nas.export import load_spec, write_text
from nas.runlock import LockedRunDir, timestamp
from nas.search.budget import BudgetError
from nas.search.objective import AccuracyJob, Objective
from nas.search.ray_executor import run_on_ray
from nas.search.reward import Reward
from nas.search.runner import OnResult, Runner
from nas.search.storage import RunStore
from nas.search.strategies import STRATEGIES, StrategyError, make_strategy
from nas.search.trial import TrialResult
from nas.spec import ArchSpec
from search_spaces import zoo
from search_spaces.mobilenetv3 import default_space

__all__ = ["RunError", "SearchRun", "SearchSettings", "default_workers", "resolve_seed_arch"]

# Called with (what, done, total) during set-up (profiling, calibration).
Progress = Callable[[str, float, float], None]


def default_workers() -> int:
    """One worker process per core (each with one torch thread), at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class SearchSettings:
    """Everything that decides a search's history."""

    budget_ms: float
    reward: str = "soft"
    strategy: str = "evolution"
    trials: int = 200
    seed: int = 0
    seed_arch: str | None = None
    strategy_options: dict[str, Any] = field(default_factory=dict)
    job: AccuracyJob = AccuracyJob()
    latency_backend: str = "torch"
    latency_threads: int = 1
    table: str | None = None        # a latency table file; default: this device's cached one
    recalibrate: bool = True        # re-fit the calibration on this machine at start
    # a zoo network whose *predicted* latency is the budget (budget_ms: as measured, kept for
    # the record): "as fast as V3-Small" on the scale the candidates are predicted on, so that
    # the predictor's drift and its error on that network do not move the budget
    budget_of: str | None = None
    # with budget_of: the budget is this share of that network's latency (on each scale), e.g.
    # 0.85 for "as accurate as V3-Small at no more than 0.85x its latency" with the hard reward
    budget_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise StrategyError(f"unknown strategy {self.strategy!r}; choose one of "
                                f"{', '.join(STRATEGIES)}")
        if self.trials < 1:
            raise RunError("--trials must be at least 1")
        Reward.from_preset(self.reward, self.budget_ms)  # validates the preset
        if self.budget_of is not None and self.budget_of not in zoo.names() \
                and self.budget_of not in zoo.ALIASES:
            raise RunError(f"budget_of {self.budget_of!r} is not a zoo model")
        if not 0 < self.budget_fraction <= 1:
            raise RunError(f"the budget fraction must be in (0, 1], got {self.budget_fraction}")
        if self.budget_fraction != 1 and self.budget_of is None:
            raise RunError("a budget fraction scales a budget given as a network (budget_of); "
                           "a budget in ms is set directly")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        return cls(**{**data, "job": AccuracyJob(**data["job"])})

    def history_key(self) -> dict[str, Any]:
        """The settings a stored history depends on (the trial count may grow on resume)."""
        return {k: v for k, v in self.to_dict().items() if k != "trials"}


def resolve_seed_arch(arg: str, space) -> ArchSpec:
    """A zoo name or spec file -> the architecture in ``space`` (V3's squeeze-excite)."""
    if arg in zoo.names() or arg in zoo.ALIASES:
        spec = zoo.get(arg)
    elif Path(arg).exists():
        spec = load_spec(arg)
    else:
        raise RunError(f"--seed-arch {arg!r} is neither a zoo model nor a spec file")
    spec = dataclasses.replace(spec, se_style="v3", input_size=space.input_size,
                               num_classes=space.num_classes)
    if not space.contains(spec):
        raise RunError(f"--seed-arch {arg!r} is not an architecture of the {space.name} space "
                       f"(the space holds MobileNetV3-Large/-Small, MnasNet-A1 and their kin)")
    return spec


class SearchRun(LockedRunDir):
    """A run directory and everything needed to (re)start the search in it."""

    def __init__(self, settings: SearchSettings, run_dir: str | Path, *,
                 overwrite: bool = False, resume: bool = False,
                 progress: Progress | None = None, predictor=None, estimator=None,
                 space=None):

        self.settings, self.dir = settings, Path(run_dir)
        self.space = space or default_space()
        self.reward = Reward.from_preset(settings.reward, settings.budget_ms)
        self.progress = progress
        # one writer per directory; a run refused below leaves the directory as it was
        with self._setting_up(self.dir):
            self.info = self._prepare_dir(overwrite, resume)
            # every input checked before anything is profiled or trained
            self.seed_arch = resolve_seed_arch(settings.seed_arch, self.space) \
                if settings.seed_arch else None
            if estimator is None:  # cheap checks; the supernet itself is trained by prepare()
                settings.job.validate()
            self.predictor = predictor or self._predictor()
            self.budget_ms = settings.budget_ms
            if settings.budget_of:
                reference = dataclasses.replace(
                    zoo.get(settings.budget_of), se_style="v3", input_size=self.space.input_size,
                    num_classes=self.space.num_classes)
                self.budget_ms = settings.budget_fraction * float(
                    self.predictor.predict([reference])[0])
                self.reward = Reward.from_preset(settings.reward, self.budget_ms)
            self.info["budget_ms"] = self.budget_ms
            self._check_budget()
            self.objective = Objective(settings.job, self.predictor, self.reward, estimator)
            if overwrite:
                for name in ("study.db", "run.json"):
                    (self.dir / name).unlink(missing_ok=True)
            self.store = RunStore(self.dir / "study.db", self.space, self.reward)

    # ------------------------------------------------------------------ set-up
    def _prepare_dir(self, overwrite: bool, resume: bool) -> dict[str, Any]:
        path = self.dir / "run.json"
        if overwrite:  # the old files go once every check has passed
            return {"settings": self.settings.to_dict(), "created": timestamp()}
        if not path.exists():
            if resume:
                raise RunError(f"nothing to resume: {path} does not exist")
            return {"settings": self.settings.to_dict(), "created": timestamp()}
        info = json.loads(path.read_text())
        stored = SearchSettings.from_dict(info["settings"])
        if stored.history_key() != self.settings.history_key():
            changed = sorted(k for k, v in self.settings.history_key().items()
                             if stored.history_key().get(k) != v)
            raise RunError(f"{self.dir} holds a run with other settings ({', '.join(changed)}); "
                           f"use --name for a new run or --overwrite to replace it")
        info["settings"] = self.settings.to_dict()
        return info

    def _predictor(self):
        started = time.time()
        predictor, table_path = load_predictor(self.latency_setup, self.space,
                                               specs=reference_specs(), path=self.settings.table,
                                               progress=self.progress)
        table = {"path": str(table_path), "checksum": predictor.table.checksum(),
                 "fingerprint": predictor.table.fingerprint.describe()}
        stored = self.info.get("table")
        if stored and stored["checksum"] != table["checksum"]:
            self._check_table_kept_predictions(predictor.table, stored["path"], table_path)
            self.info.setdefault("table_changes", []).append(
                {"from": stored["checksum"], "to": table["checksum"], "seen": timestamp()})
        self.info["table"] = table
        if "calibration" in self.info:  # resuming: the calibration the run started with
            return LUTPredictor(predictor.table, Calibration(**self.info["calibration"]))
        # a table calibrated moments ago, by this set-up, needs no rescaling for drift
        if (self.settings.recalibrate and not predictor.table.imported
                and not calibrated_since(predictor.table, started)):
            specs = [zoo.get("v3-large"), zoo.get("v3-small"),
                     *calibration_specs(self.space, 6, seed=2024)]
            predictor, self.info["drift_factor"] = rescaled(
                predictor, self.latency_setup, specs, progress=self.progress)
        self.info["calibration"] = predictor.calibration.to_dict()
        return predictor

    def _check_table_kept_predictions(self, table, then: str, now: Path) -> None:
        """A table that changed since the run started is refused unless every stored trial,
        with the run's calibration, is predicted exactly as it was scored (a table that only
        grew, profiling other networks' layers, keeps them): otherwise the stored trials were
        scored on another scale than the new ones would be."""
        refused = RunError(f"the latency table changed since {self.dir} started ({then} then, "
                           f"{now} now) and predicts its stored trials differently: use --name "
                           f"for a new run or --overwrite")
        db = self.dir / "study.db"
        if "calibration" not in self.info or not db.exists():
            raise refused
        predictor = LUTPredictor(table, Calibration(**self.info["calibration"]))
        stored = [r for r in RunStore(db, self.space, self.reward).history().values()
                  if not r.failed]
        try:
            again = predictor.predict([r.spec for r in stored]) if stored else []
        except MissingLayers:  # a layer the table no longer has
            raise refused from None
        if any(abs(float(ms) - r.latency_ms) > 1e-9 * max(1.0, r.latency_ms)
               for ms, r in zip(again, stored, strict=True)):
            raise refused

    @functools.cached_property
    def latency_setup(self):
        """The device and settings latency is predicted for and measured on."""
        return LatencySetup(self.settings.latency_backend, self.settings.latency_threads,
                            resolution=self.space.input_size)

    def measure_ms(self, specs: list[ArchSpec], rounds: int) -> list[float]:
        """End-to-end latency of ``specs`` on this run's device, timed interleaved."""
        return [float(ms) for ms in measure_ms(self.latency_setup, specs, rounds=rounds)]

    def _check_budget(self) -> None:
        fastest = self.predictor.min_latency(self.space)
        self.info["min_latency_ms"] = fastest
        if self.budget_ms < fastest:
            raise BudgetError(
                f"the budget {self.budget_ms:g} ms is below the fastest architecture "
                f"this space can reach on this device: {fastest:.2f} ms predicted "
                f"({self.predictor.table.fingerprint.describe()}); raise the budget")

    # ------------------------------------------------------------------ running
    def strategy(self):
        options = dict(self.settings.strategy_options)
        constraint = None
        if self.settings.reward == "hard":  # hard budget: never train what cannot fit
            budget = self.budget_ms
            constraint = lambda spec: self.objective.latency_ms(spec) - budget  # noqa: E731
        return make_strategy(self.settings.strategy, self.space, seed=self.settings.seed,
                             seed_arch=self.seed_arch, constraint=constraint,
                             multi_objective=self.reward.multi_objective, **options)

    def save_info(self) -> None:
        write_text(self.dir / "run.json", json.dumps(self.info, indent=2, default=str) + "\n")

    def prepare(self, on_step=None) -> None:
        """Build the accuracy estimator in this process (``--estimator supernet`` trains its
        supernet here the first time, ``on_step(step, total, loss)`` reporting it), so that
        no worker starts before it exists. ``run`` calls it; call it first to show progress."""
        self.objective.check(on_step=on_step)

    def run(self, workers: int = 1, on_result: OnResult | None = None,
            executor: str = "local", ray_address: str | None = None) -> list[TrialResult]:
        self.prepare()
        self.save_info()
        runner = Runner(self.strategy(), self.objective, self.store, self.settings.trials,
                        workers=workers, on_result=on_result)
        start = time.perf_counter()
        if executor == "ray":
            results = run_on_ray(runner, address=ray_address)
        elif executor == "local":
            results = runner.run()
        else:
            raise RunError(f"--executor must be local or ray, got {executor!r}")
        self.info.setdefault("sessions", []).append(
            {"finished": timestamp(), "seconds": round(time.perf_counter() - start, 1),
             "workers": workers, "executor": executor, "replayed": runner.replayed,
             "evaluated": len(results) - runner.replayed})
        self.save_info()
        return results


def reference_specs() -> list[ArchSpec]:
    """The networks a report compares with: V3-Large/-Small at 1.0 and 0.75."""
    return [zoo.get(name, width_mult=width) for name in ("v3-large", "v3-small")
            for width in (1.0, 0.75)]
