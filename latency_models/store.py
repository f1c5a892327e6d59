"""Get a calibrated predictor for this device: load the cached table, verify it, profile what is
missing (resumably), calibrate on end-to-end measurements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import numpy as np

from latency_models.backends import get_backend
from latency_models.device import DeviceFingerprint, fingerprint
from latency_models.layers import Layer, layers_of, space_layers
from latency_models.lut import LatencyTable, TableError, TableMismatch, cached_table_path
from latency_models.predictor import Calibration, LUTPredictor
from latency_models.profile import ProfileSettings, measure_specs, profile_layers
from nas.errors import LatencyError
from nas.runlock import RunLock
from nas.spec import ArchSpec
from search_spaces.mobilenetv3 import default_space

__all__ = ["LatencySetup", "calibrate", "ensure_layers", "measure_ms", "open_table",
           "recalibrate", "rescaled"]

logger = logging.getLogger(__name__)

# Called with (what, done, total) while profiling; the CLI draws a progress bar from it.
Progress = Callable[[str, float, float], None]


class LatencySetup:
    """Which device and measurement settings a table is for."""

    def __init__(self, backend: str = "torch", threads: int = 1, batch: int = 1,
                 resolution: int = 224, settings: ProfileSettings | None = None,
                 calibration_archs: int = 48):
        if threads < 1 or batch < 1:
            raise LatencyError("--threads and --batch must be at least 1")
        if not 8 <= resolution <= 4096:  # the input sizes a spec can have
            raise LatencyError(f"--resolution must be between 8 and 4096, got {resolution}")
        self.backend_name = backend
        self.backend = get_backend(backend, threads)
        self.fingerprint: DeviceFingerprint = fingerprint(backend, threads, batch, resolution)
        self.settings = settings or ProfileSettings(batch=batch)
        self.calibration_archs = calibration_archs

    def new_table(self) -> LatencyTable:
        settings = {**asdict(self.settings), "statistic": "min",
                    "allocator": "steady (glibc mmap/trim thresholds raised)"}
        return LatencyTable(fingerprint=self.fingerprint, settings=settings)


def open_table(setup: LatencySetup, path: str | Path | None = None, *,
               no_profile: bool = False) -> tuple[LatencyTable, Path, str]:
    """The table for ``setup``: (table, its path, what happened).

    A corrupted table or one measured elsewhere is replaced by a fresh one (to be profiled),
    or rejected with the reason when ``no_profile`` is set.
    """
    path = Path(path) if path else cached_table_path(setup.fingerprint)
    if not path.exists():
        if no_profile:
            raise TableError(f"no latency table for this device ({setup.fingerprint}) at {path}; "
                             f"run `nas latency profile` first")
        return setup.new_table(), path, "new"
    try:
        table = LatencyTable.load(path)
        if table.imported:
            # An imported table describes the device it came from (a phone): used as it is.
            return table, path, "imported"
        table.check_fingerprint(setup.fingerprint, path)
    except TableMismatch as exc:
        if no_profile:
            raise
        logger.warning("%s; profiling this device instead", exc)
        return setup.new_table(), cached_table_path(setup.fingerprint), f"re-profile ({exc})"
    except TableError as exc:
        if no_profile:
            raise
        logger.warning("%s; profiling again", exc)
        return setup.new_table(), path, f"re-profile ({exc})"
    return table, path, "loaded"


def task_reporter(progress: Progress | None, what: str,
                  total: int) -> Callable[[float], None] | None:
    """``progress`` as a one-argument callback for one task (None without a display)."""
    if progress is None:
        return None
    return lambda done: progress(what, done, total)


def ensure_layers(table: LatencyTable, path: Path, setup: LatencySetup,
                  layers: Sequence[Layer], *, no_profile: bool = False,
                  progress: Progress | None = None) -> int:
    """Profile the layers missing from ``table``, saving after every chunk. Returns how many."""
    wanted = {layer.key: layer for layer in layers}
    missing = [wanted[k] for k in table.missing(wanted)]
    if not missing:
        return 0
    if table.imported:
        raise TableError(f"{len(missing)} layer(s) are not in the imported table {path} "
                         f"(first: {missing[0].key}); a table of another device cannot be "
                         f"completed by measuring this one")
    if no_profile:
        raise TableError(f"{len(missing)} layer(s) are not in the latency table {path} "
                         f"(first: {missing[0].key}); run `nas latency profile`")
    def saved(timings) -> None:
        table.add(timings)
        table.save(path)  # an interruption keeps every finished chunk

    with RunLock(path, file=True):  # two processes profiling into one table: one is refused
        profile_layers(
            missing, setup.backend, setup.settings, on_chunk=saved,
            on_progress=task_reporter(progress, "layers", len(missing)),
            on_prepared=task_reporter(progress, "preparing layers", len(missing)))
    return len(missing)


def measure_ms(setup: LatencySetup, specs: Sequence[ArchSpec], *, rounds: int,
               progress: Progress | None = None) -> np.ndarray:
    """End-to-end latency (minimum over ``rounds`` interleaved rounds) of each spec, in ms."""
    timings = measure_specs(
        specs, setup.backend, setup.settings, rounds=rounds,
        on_progress=task_reporter(progress, "calibration", len(specs)),
        on_prepared=task_reporter(progress, "preparing calibration", len(specs)))
    return np.array([t.min_ms for t in timings])


def calibrate(predictor_table: LatencyTable, setup: LatencySetup, specs: Sequence[ArchSpec], *,
              rounds: int = 25, progress: Progress | None = None) -> dict:
    """Measure ``specs`` end to end and fit the predictor's calibration on them."""
    plain = LUTPredictor.plain_sum(predictor_table)
    encoded = plain.encode(specs)  # before measuring: a missing layer fails at once
    measured = measure_ms(setup, specs, rounds=rounds, progress=progress)
    fitted = plain.fitted_to(encoded, measured)
    return {
        "coefficients": fitted.calibration.to_dict(),
        "archs": len(specs),
        "rounds": rounds,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "max_abs_error": float(np.max(np.abs(fitted.predict(encoded) / measured - 1))),
    }


def recalibrate(predictor: LUTPredictor, setup: LatencySetup, specs: Sequence[ArchSpec], *,
                rounds: int = 25) -> LUTPredictor:
    """A predictor with the same table and all three calibration terms refitted now (on ~48
    networks; with a few, prefer ``rescaled``)."""
    info = calibrate(predictor.table, setup, specs, rounds=rounds)
    return LUTPredictor(predictor.table, Calibration(**info["coefficients"]),
                        predictor.statistic)


def rescaled(predictor: LUTPredictor, setup: LatencySetup, specs: Sequence[ArchSpec], *,
             rounds: int = 20, progress: Progress | None = None) -> tuple[LUTPredictor, float]:
    """The predictor's calibration times one factor measured now: (predictor, factor).

    The machine's speed drifts between runs, mostly uniformly (docs/latency.md); one factor (the
    median ratio of measured to predicted over ``specs``) absorbs that robustly, where
    refitting all three terms on a few networks would move the extrapolated extremes. A
    search does this when it starts.
    """
    factor = float(np.median(measure_ms(setup, specs, rounds=rounds, progress=progress)
                             / predictor.predict(specs)))
    old = predictor.calibration
    return LUTPredictor(predictor.table, Calibration(old.scale * factor,
                                                     old.per_block_ms * factor,
                                                     old.overhead_ms * factor),
                        predictor.statistic), factor


def calibrated_since(table: LatencyTable, since: float) -> bool:
    """Whether ``table``'s calibration was measured at or after ``since`` (a ``time.time()``)."""
    measured_at = (table.calibration or {}).get("measured_at")
    if not measured_at:
        return False
    try:
        when = datetime.strptime(measured_at, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return False
    return when >= int(since)  # the stamp has whole seconds


def fastest_reachable(setup: LatencySetup, space, path: str | Path | None = None,
                      *, rounds: int = 15) -> tuple[float, bool]:
    """The fastest latency ``space`` reaches on ``setup``'s device, as cheaply as it can be
    known: (ms, predicted). From the cached table when it is calibrated and covers the space
    (no measurement), else the space's smallest network measured end to end (seconds; the
    exact bound needs the whole table, which is what this answer lets a caller skip)."""
    try:
        table, _, how = open_table(setup, path, no_profile=True)
        if table.calibration is not None or how == "imported":
            return LUTPredictor(table).min_latency(space), True
    except LatencyError:  # no table, another device's, or layers missing
        pass
    return float(measure_ms(setup, [space.smallest()], rounds=rounds)[0]), False


def calibration_specs(space, count: int, seed: int = 12345) -> list[ArchSpec]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng, name=f"calibration-{i}") for i in range(count)]


def load_predictor(setup: LatencySetup, space=None, *, specs: Sequence[ArchSpec] = (),
                   path: str | Path | None = None, no_profile: bool = False,
                   progress: Progress | None = None) -> tuple[LUTPredictor, Path]:
    """A calibrated predictor covering ``space`` and ``specs``, profiling what is missing."""
    table, table_path, _ = open_table(setup, path, no_profile=no_profile)
    layers: list[Layer] = []
    if space is not None:
        layers += space_layers(space)
    for spec in specs:
        layers += layers_of(spec)
    ensure_layers(table, table_path, setup, layers, no_profile=no_profile, progress=progress)
    if table.calibration is None and not table.imported:
        if space is None:

            space = default_space(setup.fingerprint.resolution)
            ensure_layers(table, table_path, setup, space_layers(space), no_profile=no_profile,
                          progress=progress)
        if no_profile:
            raise TableError(f"the latency table {table_path} is not calibrated; "
                             f"run `nas latency profile`")
        cal_specs = calibration_specs(space, setup.calibration_archs)
        table.calibration = calibrate(table, setup, cal_specs, progress=progress)
        table.save(table_path)
    return LUTPredictor(table), table_path
