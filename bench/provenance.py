"""Where a result file in bench/results came from: the code, the command, the machine, the time.

Every benchmark that writes a result file does it through :func:`write_result`, which stores
the payload with a ``"provenance"`` record and lists the run in ``bench_run.json`` beside it::

    provenance = Provenance.start(vars(args))     # first thing in main(), after parsing
    ...
    write_result(RESULTS, payload, provenance)    # may be called again (a run that saves as
                                                  # it goes): the same run is updated, not added

A result file holds no absolute path: a setting that names a file inside the repository is
written relative to it, one outside as ``…/NAME``, and :func:`write_result` refuses a payload
that still holds one (a bug of the benchmark: it must say what it means by a name, e.g. a
latency table by its fingerprint file name).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REGISTRY = "bench_run.json"
SESSION_ENV = "NAS_BENCH_SESSION"  # set by bench/run_all.py: the `make bench` run a script is in
_ABSOLUTE = re.compile(r"^(/|~/|[A-Za-z]:[\\/])\S")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def machine() -> dict[str, Any]:
    """The machine fingerprint stored with every run (what makes two timings comparable)."""
    import torch

    from latency_models.device import cpu_model
    from nas.threads import usable_cores

    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "usable_cores": usable_cores(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit() -> tuple[str | None, bool | None]:
    """HEAD, and whether tracked code differed from it (result files themselves not counted:
    a benchmark run rewrites them)."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)bench/results")
    return head, None if status is None else bool(status)


def portable(value: Any) -> Any:
    """``value`` with every file path made relative to the repository (``…/NAME`` outside it)."""
    if isinstance(value, Path) or (isinstance(value, str) and _ABSOLUTE.match(value)):
        path = Path(os.path.expanduser(str(value)))
        if not path.is_absolute():
            return str(path)
        try:
            return str(path.resolve().relative_to(ROOT))
        except ValueError:
            return f"…/{path.name}"
    if isinstance(value, Mapping):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    return value


def command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    return shlex.join(["python", *(str(portable(a)) for a in argv)])


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Who wrote a result file. ``reconstructed`` records were written afterwards from git
    history and the file itself; ``sources`` says where each of their fields comes from, and
    a field nothing recorded is None."""

    command: str
    settings: dict[str, Any]
    commit: str | None
    dirty: bool | None  # tracked code differed from ``commit`` when it ran
    machine: dict[str, Any]
    started: str | None
    finished: str | None = None
    seconds: float | None = None
    session: str | None = None  # the `make bench` run it was part of (its start), if any
    reconstructed: bool = False
    sources: tuple[str, ...] = ()
    _clock: float | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def start(cls, settings: Mapping[str, Any], *, fingerprint: Callable[[], dict] = machine,
              argv: list[str] | None = None) -> Provenance:
        head, dirty = commit()
        return cls(command=command_line(argv), settings=portable(dict(settings)), commit=head,
                   dirty=dirty, machine=fingerprint(), started=now(),
                   session=os.environ.get(SESSION_ENV), _clock=time.perf_counter())

    def finished_now(self) -> Provenance:
        if self._clock is None:  # a reconstructed record is never re-timed
            return self
        return dataclasses.replace(self, finished=now(),
                                   seconds=round(time.perf_counter() - self._clock, 1))

    def to_dict(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if not f.name.startswith("_")}
        record["sources"] = list(self.sources)
        if not self.reconstructed:
            del record["sources"]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Provenance:
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        unknown = set(record) - names
        if unknown:
            raise ValueError(f"unknown provenance fields {sorted(unknown)}")
        return cls(**{**record, "sources": tuple(record.get("sources", ()))})


def absolute_paths(value: Any, where: str = "") -> list[str]:
    """Where ``value`` (a JSON-like tree) holds an absolute file path."""
    if isinstance(value, str):
        return [where or "(top)"] if _ABSOLUTE.match(value) else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in absolute_paths(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in absolute_paths(v, f"{where}[{i}]")]
    return []


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    from nas.export import write_text  # atomic: temp file + rename

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=1) + "\n")


def update_registry(results: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Read ``bench_run.json`` of ``results``, apply ``change`` to it, write it back."""
    path = results / REGISTRY
    registry = json.loads(path.read_text()) if path.exists() else {}
    registry.setdefault("runs", [])
    change(registry)
    _write_json(path, registry)


def record_run(registry: dict[str, Any], result: str, provenance: Provenance) -> None:
    """List the run that wrote ``result`` (once: a run that saves again is updated)."""
    entry = {"result": result, **provenance.to_dict()}
    runs = registry.setdefault("runs", [])
    for i, old in enumerate(runs):
        if old["result"] == result and old["started"] == provenance.started \
                and old["command"] == provenance.command:
            runs[i] = entry
            return
    runs.append(entry)


def write_result(path: Path, payload: Mapping[str, Any], provenance: Provenance) -> Provenance:
    """Write ``payload`` with its provenance to ``path`` (atomically) and list the run in the
    ``bench_run.json`` beside it. Returns the provenance as written."""
    if "provenance" in payload:
        raise ValueError("the payload already has a provenance; pass the record instead")
    provenance = provenance.finished_now()
    full = {**payload, "provenance": provenance.to_dict()}
    found = absolute_paths(full)
    if found:
        raise ValueError(f"{path.name}: absolute path(s) at {', '.join(found)}; store a name "
                         "relative to the repository, or a fingerprint")
    _write_json(path, full)
    update_registry(path.parent, lambda registry: record_run(registry, path.name, provenance))
    return provenance


def save_latency_plot(fig, ax, path, *, title: str, ylabel: str) -> None:
    """Label, lay out, save and close an accuracy-against-measured-latency figure (the search's
    latency setting on the x axis)."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("measured latency (ms, 1 thread, batch 1, 224×224)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
