"""Latency predictors: ``predict(specs) -> np.ndarray`` of milliseconds.

``LUTPredictor`` sums the table's per-layer times and applies a calibration fitted on
end-to-end measurements: ``latency = overhead + scale * sum(layers) + per_block * blocks``.
A plain per-layer sum (Once-for-All's predictor) is the identity calibration. The model is
additive over blocks, which is what makes ``min_latency``/``max_latency`` of a block-wise
space exact (dynamic programming over the stage widths).
"""

from __future__ import annotations

import itertools
import operator
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from latency_models.backends import STATISTICS
from latency_models.layers import BlockLayer, HeadLayer, Layer, StemLayer, layers_of
from latency_models.lut import LatencyTable
from nas.errors import LatencyError, MissingLayers, TableError
from nas.spec import ArchSpec, v3_squeeze_channels

__all__ = ["Calibration", "Encoded", "LUTPredictor", "LatencyPredictor", "MissingLayers"]


_STEM_FIELDS = operator.attrgetter("in_ch", "out_ch", "kernel", "stride", "act", "maxpool")
_BLOCK_FIELDS = operator.attrgetter("values")  # (kind, kernel, in_ch, exp_ch, out_ch, se, ...)
_HEAD_FIELDS = operator.attrgetter("conv_ch", "conv_act", "hidden_ch", "hidden_act")
_STRIDE = operator.itemgetter(7)


class LatencyPredictor(ABC):
    """Predicts the latency of architectures on one device. Never builds or times models."""

    @abstractmethod
    def predict(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Milliseconds, one per spec."""

    def predict_one(self, spec: ArchSpec) -> float:
        return float(self.predict([spec])[0])


@dataclass(frozen=True)
class Calibration:
    """``overhead_ms + scale * sum + per_block_ms * blocks`` (identity = plain sum)."""

    scale: float = 1.0
    per_block_ms: float = 0.0
    overhead_ms: float = 0.0

    def apply(self, sums: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        return self.overhead_ms + self.scale * sums + self.per_block_ms * blocks

    @classmethod
    def fit(cls, sums: np.ndarray, blocks: np.ndarray, measured: np.ndarray) -> Calibration:
        """Least squares on relative error (each residual divided by the measurement)."""
        sums, blocks, measured = (np.asarray(a, dtype=float) for a in (sums, blocks, measured))
        if len(measured) < 3:
            raise LatencyError("calibration needs at least 3 measured networks")
        design = np.stack([sums, blocks, np.ones_like(sums)], axis=1) / measured[:, None]
        coef, *_ = np.linalg.lstsq(design, np.ones_like(measured), rcond=None)
        scale, per_block, overhead = (float(c) for c in coef)
        if scale <= 0:  # degenerate data; fall back to a pure scale
            scale, per_block, overhead = float(np.median(measured / sums)), 0.0, 0.0
        return cls(scale, per_block, overhead)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    """Specs as arrays: table row of every layer (padded with a zero row) and block counts."""

    ids: np.ndarray       # (n, max_layers) int
    blocks: np.ndarray    # (n,) int


class LUTPredictor(LatencyPredictor):
    """Per-layer look-up table plus a fitted calibration."""

    def __init__(self, table: LatencyTable, calibration: Calibration | None = None,
                 statistic: str | None = None):
        self.table = table
        self.statistic = statistic or table.settings.get("statistic", "min")
        if self.statistic not in STATISTICS:
            raise TableError(f"latency statistic {self.statistic!r} not understood (known: "
                             f"{', '.join(STATISTICS)})")
        if calibration is None and table.calibration:
            calibration = Calibration(**table.calibration["coefficients"])
        self.calibration = calibration or Calibration()
        keys = list(table.entries)
        self._row = {key: i + 1 for i, key in enumerate(keys)}  # row 0: padding, 0 ms
        self._values = np.array([0.0] + [table.entries[k].value(self.statistic) for k in keys])
        self._layer_rows: dict[tuple, dict[tuple, int]] = {}  # context -> layer fields -> row
        self._tables: dict[tuple, list[dict[tuple, int]]] = {}  # strides -> one dict per layer

    @classmethod
    def plain_sum(cls, table: LatencyTable, statistic: str | None = None) -> LUTPredictor:
        """Once-for-All's predictor: the sum of the layers, nothing fitted."""
        return cls(table, Calibration(), statistic)

    # ------------------------------------------------------------------ encoding
    def _rows_of(self, spec: ArchSpec, missing: list[str]) -> list[int]:
        """Table rows of the stem, every block and the head.

        Layers repeat across specs, so rows are remembered by value: one dict per context
        (input resolution and SE convention), keyed by the layer's plain fields, hashed and
        compared in C. A network's list of contexts depends only on its strides, so it is looked
        up once per spec. Key strings are built only for layers not seen before.
        """
        spec = spec.scaled()
        stem = spec.stem
        fields = list(map(_BLOCK_FIELDS, spec.blocks))
        shape = (spec.input_size, spec.se_style, stem.stride, stem.maxpool,
                 tuple(map(_STRIDE, fields)))
        tables = self._tables.get(shape)
        if tables is None:
            tables = self._tables[shape] = self._contexts(spec)
        fields.insert(0, _STEM_FIELDS(stem))
        fields.append((fields[-1][4], _HEAD_FIELDS(spec.head), spec.num_classes))
        try:
            return list(map(dict.__getitem__, tables, fields))
        except KeyError:
            rows = list(map(dict.get, tables, fields))
            for position, layer in enumerate(layers_of(spec)):
                if rows[position] is not None:
                    continue
                row = self._row.get(layer.key)
                if row is None:
                    missing.append(layer.key)
                    row = 0
                else:
                    tables[position][fields[position]] = row
                rows[position] = row
            return rows

    def _contexts(self, spec: ArchSpec) -> list[dict]:
        """The row dicts of each layer position of networks shaped like ``spec``."""
        sizes = spec.resolutions()
        keys = [("stem", spec.input_size)]
        keys += [("block", size, spec.se_style) for size in sizes[:-1]]
        keys.append(("head", sizes[-1]))
        return [self._layer_rows.setdefault(key, {}) for key in keys]

    def encode(self, specs: Sequence[ArchSpec]) -> Encoded:
        missing: list[str] = []
        rows = [self._rows_of(spec, missing) for spec in specs]
        if missing:
            raise MissingLayers(list(dict.fromkeys(missing)))
        lengths = np.fromiter(map(len, rows), dtype=np.int32, count=len(rows))
        width = int(lengths.max(initial=0))
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32,
                           count=int(lengths.sum()))
        ids = np.zeros((len(rows), width), dtype=np.int32)
        ids[np.arange(width) < lengths[:, None]] = flat  # row-major fill, one call
        return Encoded(ids, lengths - 2)

    # ------------------------------------------------------------------ prediction
    def layer_sums(self, specs: Sequence[ArchSpec] | Encoded) -> np.ndarray:
        encoded = specs if isinstance(specs, Encoded) else self.encode(specs)
        return self._values[encoded.ids].sum(axis=1)

    def predict(self, specs: Sequence[ArchSpec] | Encoded) -> np.ndarray:
        encoded = specs if isinstance(specs, Encoded) else self.encode(specs)
        return self.calibration.apply(self._values[encoded.ids].sum(axis=1), encoded.blocks)

    def fitted_to(self, specs: Sequence[ArchSpec] | Encoded,
                  measured_ms: Sequence[float]) -> LUTPredictor:
        """The same table, with the calibration fitted on these measured networks."""
        encoded = specs if isinstance(specs, Encoded) else self.encode(specs)
        calibration = Calibration.fit(self.layer_sums(encoded), encoded.blocks,
                                      np.asarray(measured_ms, dtype=float))
        return LUTPredictor(self.table, calibration, self.statistic)

    def breakdown(self, spec: ArchSpec) -> list[tuple[Layer, float]]:
        """Each layer's calibrated share: scale * entry (+ per-block term for blocks)."""
        result = []
        for layer in layers_of(spec):
            row = self._row.get(layer.key)
            if row is None:
                raise MissingLayers([layer.key])
            ms = self.calibration.scale * self._values[row]
            if isinstance(layer, BlockLayer):
                ms += self.calibration.per_block_ms
            result.append((layer, float(ms)))
        return result

    # ------------------------------------------------------------------ bounds
    def _entry(self, layer: Layer) -> float:
        row = self._row.get(layer.key)
        if row is None:
            raise MissingLayers([layer.key])
        return float(self._values[row])

    def _bound(self, space, best) -> float:
        """Exact optimum (``best`` = min or max) of the prediction over a BlockwiseSpace."""
        cal = self.calibration

        def block_cost(res, in_ch, out_ch, stride, stage) -> float:
            costs = []
            for kernel, ratio, se, act in stage.block_options():
                exp = stage.exp_width(in_ch, ratio)
                se_ch = v3_squeeze_channels(exp) if se else 0
                layer = BlockLayer(res, "bneck", in_ch, exp, out_ch, kernel, stride, 1, se_ch,
                                   "hardsigmoid", act)
                costs.append(cal.scale * self._entry(layer) + cal.per_block_ms)
            return best(costs)

        # state: current width -> best cost so far (stem included)
        state: dict[int, float] = {}
        for width, act in itertools.product(space.stem_widths, space.stem_acts):
            cost = cal.scale * self._entry(StemLayer(space.input_size, 3, width, 3, 2, act, False))
            state[width] = best([state[width], cost]) if width in state else cost
        resolutions = space.resolutions()
        for stage, res in zip(space.stages, resolutions, strict=False):
            out_res = -(-res // stage.stride)
            later = {w: block_cost(out_res, w, w, 1, stage) for w in stage.widths
                     if max(stage.depths) > 1}
            nxt: dict[int, float] = {}
            for in_ch, so_far in state.items():
                for depth in stage.depths:
                    if depth == 0:
                        options = [(in_ch, so_far)]
                    else:
                        options = [(w, so_far + block_cost(res, in_ch, w, stage.stride, stage)
                                    + (depth - 1) * later.get(w, 0.0)) for w in stage.widths]
                    for width, cost in options:
                        nxt[width] = best([nxt[width], cost]) if width in nxt else cost
            state = nxt
        head_res = resolutions[-1]
        totals = []
        for width, so_far in state.items():
            for head in space.heads:
                layer = HeadLayer(head_res, width, head.conv_ch, head.conv_act, head.hidden_ch,
                                  head.hidden_act, space.num_classes)
                totals.append(so_far + cal.scale * self._entry(layer))
        return cal.overhead_ms + best(totals)

    def min_latency(self, space) -> float:
        """The smallest latency this predictor gives any architecture of ``space``."""
        return self._bound(space, min)

    def max_latency(self, space) -> float:
        return self._bound(space, max)
