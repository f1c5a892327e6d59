"""Latency look-up tables: versioned JSON files, checksummed, written atomically, cached per device.

A table holds the device fingerprint it was measured on, per-layer times (minimum and median
over interleaved rounds, in ms), how they were measured, and the predictor's calibration.
A table whose checksum does not match (truncated, edited, corrupted) is never used; a table
from another device or torch version is detected by its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from latency_models.backends import Timing, check_statistic
from latency_models.device import DeviceFingerprint
from latency_models.layers import BlockLayer, HeadLayer, StemLayer
from nas.errors import TableError, TableMismatch
from nas.export import atomic_path
from nas.spec import make_divisible, v3_squeeze_channels

__all__ = [
    "LatencyTable",
    "TableError",
    "TableMismatch",
    "cache_dir",
    "cached_table_path",
    "import_ofa_table",
]

TABLE_FORMAT = "nas.latency-table"
TABLE_VERSION = 1


def cache_dir() -> Path:
    """``$NAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nas``, else ``~/.cache/nas``."""
    if os.environ.get("NAS_CACHE_DIR"):
        return Path(os.environ["NAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nas"


def cached_table_path(fp: DeviceFingerprint) -> Path:
    return cache_dir() / "latency" / f"{fp.backend}-{fp.key()}.json"


@dataclass
class Entry:
    min_ms: float
    median_ms: float
    samples: int

    def value(self, statistic: str) -> float:
        return self.min_ms if check_statistic(statistic) == "min" else self.median_ms


@dataclass
class LatencyTable:
    fingerprint: DeviceFingerprint
    entries: dict[str, Entry] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    source: str = "profiled"

    # ------------------------------------------------------------------ entries
    def add(self, timings: Mapping[str, Timing]) -> None:
        for key, t in timings.items():
            self.entries[key] = Entry(t.min_ms, t.median_ms, t.samples)

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [k for k in dict.fromkeys(keys) if k not in self.entries]

    @property
    def imported(self) -> bool:
        """Measured elsewhere and imported (e.g. a Once-for-All phone table)."""
        return self.source != "profiled"

    def checksum(self) -> str:
        """Checksum of the table's content (what a run records to name its table)."""
        return self._checksum(self._body())

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ file
    def _body(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "units": "ms",
            "created": self.created,
            "source": self.source,
            "fingerprint": self.fingerprint.to_dict(),
            "settings": self.settings,
            "calibration": self.calibration,
            "entries": {k: asdict(v) for k, v in sorted(self.entries.items())},
        }

    @staticmethod
    def _checksum(body: dict[str, Any]) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically: a crash leaves the previous file, never half a table."""
        body = self._body()
        body["checksum"] = self._checksum(body)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        path = Path(path)
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:  # not UTF-8, not JSON, a 5,000-digit number
            raise TableError(f"{path}: not a readable latency table "
                             f"({str(exc).splitlines()[0][:200]})") from None
        except RecursionError:
            raise TableError(f"{path}: not a readable latency table (nested too deeply)") \
                from None
        if not isinstance(body, dict) or body.get("format") != TABLE_FORMAT:
            raise TableError(f"{path}: not a latency table (format {TABLE_FORMAT!r})")
        if body.get("version") != TABLE_VERSION:
            raise TableError(f"{path}: table version {body.get('version')!r}, this version "
                             f"reads {TABLE_VERSION}")
        checksum = body.pop("checksum", None)
        if checksum != cls._checksum(body):
            raise TableError(f"{path}: checksum mismatch, the table is truncated or corrupted")
        try:
            return cls._from_body(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise TableError(f"{path}: malformed latency table ({_short(exc)})") from None

    @classmethod
    def _from_body(cls, body: dict[str, Any]) -> LatencyTable:
        """The table of a checksummed body; a field of the wrong type raises ``ValueError``
        (the checksum only proves the file is as written, not that it was written right)."""
        entries = body["entries"]
        _expect(isinstance(entries, dict), "'entries' must be an object")
        for key, entry in entries.items():
            _expect(isinstance(entry, dict) and set(entry) == {"min_ms", "median_ms", "samples"},
                    f"entry {key!r} must have min_ms, median_ms and samples")
            _expect(_is_ms(entry["min_ms"]) and _is_ms(entry["median_ms"]),
                    f"entry {key!r}: times must be numbers >= 0")
            _expect(isinstance(entry["samples"], int) and not isinstance(entry["samples"], bool)
                    and entry["samples"] >= 0, f"entry {key!r}: samples must be a count")
        _expect(isinstance(body["settings"], dict), "'settings' must be an object")
        calibration = body["calibration"]
        if calibration is not None:
            coefficients = calibration.get("coefficients") if isinstance(calibration, dict) \
                else None
            _expect(isinstance(coefficients, dict)
                    and set(coefficients) <= {"scale", "per_block_ms", "overhead_ms"}
                    and all(_is_number(v) for v in coefficients.values()),
                    "'calibration' must be null or hold numeric coefficients")
        _expect(isinstance(body["created"], str) and isinstance(body["source"], str),
                "'created' and 'source' must be strings")
        return cls(fingerprint=DeviceFingerprint.from_dict(body["fingerprint"]),
                   entries={k: Entry(**v) for k, v in entries.items()},
                   settings=body["settings"], calibration=calibration,
                   created=body["created"], source=body["source"])

    def check_fingerprint(self, here: DeviceFingerprint, path: str | os.PathLike = "") -> None:
        differences = here.differences(self.fingerprint)
        if differences:
            where = f"{path}: " if path else ""
            raise TableMismatch(f"{where}table measured elsewhere ({'; '.join(differences)})")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _is_ms(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------- Once-for-All
def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("x"))


def _flag(fields: dict[str, str], name: str) -> bool:
    """An OFA key's 0/1 flag; anything else is an error, never read as 0."""
    if fields[name] not in ("0", "1"):
        raise ValueError(f"{name}:{fields[name]} is not a 0/1 flag")
    return fields[name] == "1"


def _ofa_fields(key: str) -> tuple[str, dict[str, str]]:
    kind, *parts = key.split("-")
    fields = {}
    for part in parts:
        name, _, value = part.partition(":")
        fields[name] = value
    return kind, fields


def import_ofa_table(path: str | os.PathLike) -> LatencyTable:
    """Read a Once-for-All latency table (YAML: key -> {mean: ms, ...}).

    MobileNetV3 tables (keys with ``se`` and ``hs``, ``expand`` = expanded channels) and
    ProxylessNAS tables (``expand`` = ratio, ReLU6, no SE) are both understood. OFA's four head
    entries (Conv_1, AvgPool2D, Conv_2, Logits) are summed into one head entry per head shape.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise TableError(f"{path}: not a readable YAML latency table ({_short(exc)})") from None
    if not isinstance(raw, dict) or not raw:
        raise TableError(f"{path}: expected a mapping of layer keys to {{mean: ms}}")

    def mean(key: str) -> float:
        value = raw[key]
        if not isinstance(value, dict) or not _is_ms(value.get("mean")):
            raise TableError(f"{path}: entry {_short(repr(key))} has no numeric 'mean' (ms, "
                             f">= 0)")
        return float(value["mean"])

    entries: dict[str, Entry] = {}
    head_parts: dict[str, dict[tuple, float]] = {}
    mbv3 = any("-se:" in str(k) for k in raw)
    resolution = None
    for key in raw:
        kind, f = _ofa_fields(str(key))
        try:
            if kind == "Conv":
                h, _, c = _shape(f["input"])
                _, _, out = _shape(f["output"])
                resolution = h
                layer = StemLayer(h, c, out, 3, 2, "HS" if mbv3 else "RE6", False)
            elif kind == "expanded_conv":
                h, _, in_ch = _shape(f["input"])
                _, _, out_ch = _shape(f["output"])
                stride, expand = int(f["stride"]), float(f["expand"])
                if mbv3:
                    exp_ch, se = int(expand), _flag(f, "se")
                    act = "HS" if _flag(f, "hs") else "RE"
                else:
                    exp_ch = in_ch if expand == 1 else make_divisible(round(in_ch * expand))
                    se, act = False, "RE6"
                se_ch = v3_squeeze_channels(exp_ch) if se else 0
                layer = BlockLayer(h, "bneck", in_ch, exp_ch, out_ch, int(f["kernel"]), stride,
                                   1, se_ch, "hardsigmoid", act)
            elif kind in ("Conv_1", "AvgPool2D", "Conv_2", "Logits"):
                shape = _shape(f["input"]) + _shape(f["output"])
                if len(shape) != (4 if kind == "Logits" else 6):  # HxWxC -> HxWxC or classes
                    raise ValueError(f"shapes {f['input']} -> {f['output']}")
                head_parts.setdefault(kind, {})[shape] = mean(key)
                continue
            else:
                raise TableError(f"{path}: unknown layer type {kind!r} in key {key!r}")
        except (KeyError, ValueError, OverflowError) as exc:  # OverflowError: expand:inf
            if isinstance(exc, TableError):
                raise
            raise TableError(f"{path}: cannot read key {_short(repr(key))} ({_short(exc)})") \
                from None
        entries[layer.key] = Entry(mean(key), mean(key), 1)

    # Head: final expand conv (Conv_1) -> pool -> feature mix (Conv_2, MBv3 only) -> logits.
    for conv1, conv1_ms in head_parts.get("Conv_1", {}).items():
        res, _, in_ch, _, _, conv_ch = conv1
        pool_ms = sum(ms for shape, ms in head_parts.get("AvgPool2D", {}).items()
                      if shape[2] == conv_ch)
        mixes = [(shape[-1], ms) for shape, ms in head_parts.get("Conv_2", {}).items()
                 if shape[2] == conv_ch] or [(None, 0.0)]
        for hidden_ch, mix_ms in mixes:
            width = hidden_ch or conv_ch
            # Logits keys: input HxWxC, output classes -> shape tuple (H, W, C, classes).
            for shape, logits_ms in head_parts.get("Logits", {}).items():
                if shape[2] != width:
                    continue
                layer = HeadLayer(res, in_ch, conv_ch, "HS" if mbv3 else "RE6", hidden_ch,
                                  "HS", shape[3])
                total = conv1_ms + pool_ms + mix_ms + logits_ms
                entries[layer.key] = Entry(total, total, 1)
    if not entries:
        raise TableError(f"{path}: no usable layer in the file (expected Once-for-All keys "
                         f"such as 'expanded_conv-input:112x112x24-output:56x56x32-expand:3-"
                         f"kernel:5-stride:2-idskip:0')")
    fp = DeviceFingerprint(cpu="imported", logical_cores=0, threads=0, torch="n/a",
                           backend=f"ofa:{path.stem}", dtype="float32", batch=1,
                           resolution=resolution or 224)
    return LatencyTable(fingerprint=fp, entries=entries, source=f"once-for-all:{path.name}",
                        settings={"statistic": "min"})
