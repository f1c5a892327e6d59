"""Latency of NetAdapt's proposals: a run-local table and how it is measured on this device.

The cuts NetAdapt compares (``delta``, a small share of the network's time) can be smaller
than a shared machine's drift between minutes (docs/netadapt.md, bench/README.md), so by
default (``latency="paired"``) every iteration re-measures the layers of the current network
and of all candidates side by side (interleaved), and scales them to the level of the current
network's layers in the table: the cuts compared are measured at one moment, the absolute level
stays the device table's. ``latency="table"`` uses table values as they are and measures only
layers the table lacks.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from latency_models.backends import Timing
from latency_models.layers import layers_of
from latency_models.lut import LatencyTable
from latency_models.predictor import Calibration, LUTPredictor, MissingLayers
from latency_models.profile import profile_layers
from latency_models.store import LatencySetup, load_predictor, measure_ms, rescaled
from nas.errors import NetAdaptError
from nas.netadapt.settings import LATENCY_MODES
from nas.spec import ArchSpec
from search_spaces import zoo

__all__ = ["Measure", "ProposalLatency", "device_latency"]

Measure = Callable[[Sequence[Any], int | None], dict]  # (layers, rounds) -> {key: Timing}


class ProposalLatency:
    """Latency of the current network and its proposals, on a run-local table.

    ``source`` is the device's table (its calibration is applied on top of the sum of the
    layers); the local table at ``path`` keeps every value a decision used. ``measure`` times
    layers (interleaved, one call per iteration); without it only table values are used.
    """

    def __init__(self, source, calibration, path: str | Path, *, measure: Measure | None = None,
                 mode: str = "paired"):

        if mode not in LATENCY_MODES:
            raise NetAdaptError(f"latency mode must be paired or table, got {mode!r}")
        if mode == "paired" and measure is None:
            raise NetAdaptError("paired latency needs a device to measure on; the table is "
                                "imported from another device: use --latency table")
        self.source, self.calibration, self.mode, self.measure = source, calibration, mode, \
            measure
        self.path = Path(path)
        if self.path.exists():
            self.table = LatencyTable.load(self.path)
        else:
            self.table = LatencyTable(fingerprint=source.fingerprint, settings=source.settings,
                                      source=source.source)
        self.statistic = source.settings.get("statistic", "min")
        self._predictor = None

    def _copy_from_source(self, keys) -> None:
        for key in keys:
            if key not in self.table.entries and key in self.source.entries:
                self.table.entries[key] = dataclasses.replace(self.source.entries[key])

    def refresh(self, current: ArchSpec, candidates: Sequence[ArchSpec], *,
                rounds: int | None = None) -> dict[str, Any]:
        """Make every layer of ``current`` and ``candidates`` known (paired: re-measured now,
        side by side, ``rounds`` rounds, at the level of the current network's table
        values)."""
        start = time.perf_counter()
        layers: dict[str, Any] = {}
        for spec in (current, *candidates):
            for layer in layers_of(spec):
                layers.setdefault(layer.key, layer)
        current_keys = [layer.key for layer in layers_of(current)]
        self._copy_from_source(current_keys)
        factor, measured = 1.0, 0
        if self.mode == "table":
            self._copy_from_source(layers)
            missing = [layers[k] for k in self.table.missing(layers)]
            if missing:
                if self.measure is None:
                    raise MissingLayers([layer.key for layer in missing])
                self.table.add(self.measure(missing, None))
                measured = len(missing)
        else:
            fresh = self.measure(list(layers.values()), rounds)
            anchored = [k for k in current_keys if k in self.table.entries]
            if anchored:
                before = sum(self.table.entries[k].value(self.statistic) for k in anchored)
                now = sum(fresh[k].value(self.statistic) for k in anchored)
                factor = before / now
            self.table.add({k: Timing(t.min_ms * factor, t.median_ms * factor, t.samples)
                            for k, t in fresh.items()})
            measured = len(fresh)
        self.table.save(self.path)
        self._predictor = None
        return {"layers": len(layers), "measured": measured, "factor": factor,
                "seconds": round(time.perf_counter() - start, 2)}

    @property
    def predictor(self):
        if self._predictor is None:
            self._predictor = LUTPredictor(self.table, self.calibration, self.statistic)
        return self._predictor

    def _known(self, specs: Sequence[ArchSpec]) -> None:
        """Layers the local table lacks but the device table has are copied over."""
        before = len(self.table.entries)
        self._copy_from_source(layer.key for spec in specs for layer in layers_of(spec))
        if len(self.table.entries) != before:
            self._predictor = None

    def __call__(self, spec: ArchSpec) -> float:
        self._known([spec])
        return self.predictor.predict_one(spec)

    def many(self, specs: Sequence[ArchSpec]) -> list[float]:
        self._known(specs)
        return [float(v) for v in self.predictor.predict(list(specs))] if specs else []

def device_latency(start: ArchSpec, run_dir: str | Path, *, mode: str = "paired",
                   rounds: int = 7, backend: str = "torch", threads: int = 1,
                   table: str | None = None, recalibrate: bool = True, resume: bool = False,
                   progress=None):
    """(ProposalLatency, info to store, measure_networks) for ``start`` on this machine.

    The device table covers ``start``, V3-Large and V3-Small (profiled if missing); its
    calibration is rescaled to the machine's speed now (measured on those three), unless
    resuming, which reuses the stored calibration so latencies stay comparable.
    """
    run_dir = Path(run_dir)
    setup = LatencySetup(backend, threads, resolution=start.input_size)
    references = [zoo.get("v3-large", input_size=start.input_size),
                  zoo.get("v3-small", input_size=start.input_size)]
    predictor, table_path = load_predictor(setup, specs=[start, *references], path=table,
                                           progress=progress)
    info: dict[str, Any] = {"table": {"path": str(table_path),
                                      "checksum": predictor.table.checksum(),
                                      "fingerprint": predictor.table.fingerprint.describe()}}
    stored_path = run_dir / "netadapt.json"
    if resume and stored_path.exists():
        stored = json.loads(stored_path.read_text())
        calibration = Calibration(**stored["calibration"])
        info = {k: stored[k] for k in ("table", "calibration", "drift_factor") if k in stored}
    else:
        if recalibrate and not predictor.table.imported:
            predictor, info["drift_factor"] = rescaled(predictor, setup, [start, *references])
        calibration = predictor.calibration
        info["calibration"] = calibration.to_dict()
    measure = None
    if not predictor.table.imported:
        def measure(layers, how_many=None, _count=[0]):  # noqa: B006 - a call counter (seed)
            _count[0] += 1
            settings = dataclasses.replace(setup.settings, rounds=how_many or rounds,
                                           chunk_size=max(1, len(layers)), seed=_count[0])
            return profile_layers(layers, setup.backend, settings)
    latency = ProposalLatency(predictor.table, calibration, run_dir / "latency_table.json",
                              measure=measure, mode=mode)

    def measure_networks(specs: list[ArchSpec]) -> list[float]:
        return [float(ms) for ms in measure_ms(setup, specs, rounds=30)]

    return latency, info, (None if predictor.table.imported else measure_networks)
