"""Shared pieces of the search tests: a synthetic latency table covering the default space
(so no test profiles anything) and functions that worker processes can import."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latency_models.device import DeviceFingerprint
from latency_models.layers import layers_of, space_layers
from latency_models.lut import Entry, LatencyTable
from latency_models.predictor import LUTPredictor
from nas.spec import ArchSpec
from search_spaces.mobilenetv3 import default_space
from tests.study_db import finished_trials  # noqa: F401 - the search tests import it here

_TABLE: LatencyTable | None = None


def synthetic_table() -> LatencyTable:
    """Every layer of the default space and of V3-L/-S at 1.0 and 0.75, with times that grow
    with the layer's width (a 'device' that tests can trust to be the same every time)."""
    global _TABLE
    if _TABLE is None:
        from nas.search.run import reference_specs

        layers = list(space_layers(default_space()))
        for spec in reference_specs():
            layers += layers_of(spec)
        rng = np.random.default_rng(0)
        fp = DeviceFingerprint("synthetic test device", 2, 1, "2.x", "torch", "float32", 1, 224)
        table = LatencyTable(fingerprint=fp, settings={"statistic": "min"},
                             source="synthetic")
        for layer in layers:
            if layer.key not in table.entries:
                value = 0.02 + 1e-3 * (len(layer.key) % 7) + float(rng.uniform(0.05, 1.0))
                table.entries[layer.key] = Entry(value, value * 1.1, 3)
        _TABLE = table
    return _TABLE


def synthetic_predictor() -> LUTPredictor:
    return LUTPredictor(synthetic_table())


def save_synthetic_table(path: Path) -> Path:
    synthetic_table().save(path)
    return path


def die_on_wide_stems(job, spec_json: str) -> dict:
    """A worker function that kills its process for 32-wide stems (a crashing candidate)."""
    from nas.search.objective import estimate_accuracy

    if ArchSpec.from_json(spec_json).stem.out_ch == 32:
        os._exit(3)
    return estimate_accuracy(job, spec_json)

