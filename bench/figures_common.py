"""What every figures renderer shares: the result files, read once, and how figures are written.

``bench/render_docs.py`` rewrites the docs' figures blocks; the renderers live in the
``figures_*.py`` modules beside it, one group of result files each, and read results only
through :class:`Results`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class Results:
    """The result files of one directory, each read once; ``get`` is None for an absent file."""

    def __init__(self, directory: Path = RESULTS):
        self.directory = directory
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> dict | None:
        if name not in self._cache:
            path = self.directory / f"{name}.json"
            self._cache[name] = json.loads(path.read_text()) if path.exists() else None
        return self._cache[name]

    def lines(self, name: str) -> list[dict] | None:
        """The rows of ``name`` (a JSON-lines file under the directory, suffix included), or
        None for an absent file."""
        key = f"lines:{name}"
        if key not in self._cache:
            path = self.directory / name
            self._cache[key] = [json.loads(line) for line in path.read_text().splitlines()
                                if line.strip()] if path.exists() else None
        return self._cache[key]

    def names(self, pattern: str) -> list[str]:
        return sorted(p.stem for p in self.directory.glob(f"{pattern}.json"))


# --------------------------------------------------------------------------- formatting
def fmt_pct(fraction: float | None) -> str:
    return "–" if fraction is None else f"{100 * fraction:.1f}%"


def fmt_num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def fmt_tau(x: float | None) -> str:
    return fmt_num(x, 3)


def fmt_minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def fmt_mean_sd(values: list[float], digits: int = 2) -> str:
    """"mean ± sd (a / b / c)": the sample standard deviation, each value as measured."""
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    each = " / ".join(f"{v:.{digits}f}" for v in values)
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f} ({each})"


def run_date(data: Mapping[str, Any]) -> str:
    p = data.get("provenance") or {}
    return p.get("finished") or data.get("created") or p.get("started") or "date not recorded"


def source(results: Results, name: str) -> str:
    """One line: which file, written when, by which command at which commit, on what."""
    data = results.get(name)
    p = data.get("provenance") if data else None
    if not p:
        return f"`bench/results/{name}.json`" + ("" if data else ": not measured yet")
    commit = (p.get("commit") or "unknown commit")[:7]
    machine = p.get("machine") or {}
    cores = machine.get("usable_cores") or machine.get("cores") or machine.get("logical_cores")
    where = ", ".join(str(x) for x in (machine.get("cpu"), cores and f"{cores} cores") if x)
    how = " (reconstructed from git history and the file)" if p.get("reconstructed") else ""
    took = f", {fmt_minutes(p['seconds'])}" if p.get("seconds") else ""
    return (f"`bench/results/{name}.json`: `{p['command']}` at {commit}{how}, "
            f"finished {run_date(data)}{took}; {where or 'machine not recorded'}")


def with_source(results: Results, name: str, lines: list[str]) -> list[str]:
    return [*lines, "", f"Source: {source(results, name)}."]


def missing(name: str) -> list[str]:
    return [f"Not measured yet: no `bench/results/{name}.json`."]
