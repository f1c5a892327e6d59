"""``nas doctor``: what this machine has for the tool, what is missing, and the command that
fixes each gap.

Every check is a :class:`Check` (section, name, status, detail, fix). ``run_checks`` collects
them without printing, so tests and other front ends can use the findings; the CLI prints them
as tables. Nothing here downloads, profiles or writes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from nas.runlock import in_use

__all__ = ["Check", "run_checks", "worst"]

OK, WARN, MISSING, NONE = "ok", "warn", "missing", "n/a"

# torch, and every module that needs it, is imported inside the checks that use it: the doctor
# must run, and say what is missing, on a machine where torch is not installed (run_checks).

# (distribution, import name, required, what it is for)
PACKAGES = (
    ("torch", "torch", True, "models, training, timing"),
    ("numpy", "numpy", True, "predictor, tables"),
    ("optuna", "optuna", True, "search strategies and run storage"),
    ("scikit-learn", "sklearn", True, "the bundled digits data"),
    ("typer", "typer", True, "the command line"),
    ("rich", "rich", True, "tables and progress bars"),
    ("matplotlib", "matplotlib", True, "plots in reports"),
    ("pyyaml", "yaml", True, "Once-for-All table import"),
    ("ray", "ray", False, "--executor ray"),
    ("onnx", "onnx", False, "--format onnx"),
    ("onnxscript", "onnxscript", False, "torch.onnx.export (dynamo exporter)"),
    ("onnxruntime", "onnxruntime", False, "the onnxruntime latency backend, ONNX checks"),
    ("optuna-dashboard", "optuna_dashboard", False, "optuna-dashboard runs/NAME/study.db"),
    ("hypothesis", "hypothesis", False, "the fuzz tests (make test)"),
)


@dataclass(frozen=True)
class Check:
    section: str
    name: str
    status: str  # ok | warn | missing | n/a (does not apply to this machine)
    detail: str
    fix: str = ""


def worst(checks: list[Check]) -> str:
    order = {NONE: 0, OK: 0, WARN: 1, MISSING: 2}
    return max((c.status for c in checks), key=order.__getitem__, default=OK)


def run_checks(*, runs_dir: Path = Path("runs")) -> list[Check]:
    checks = [Check("environment", "python", OK if sys.version_info >= (3, 11) else MISSING,
                    f"{platform.python_version()} ({sys.executable})",
                    "" if sys.version_info >= (3, 11) else "use Python 3.11 or newer")]
    checks += _packages()
    if importlib.util.find_spec("torch") is None:
        return checks  # everything below needs torch
    checks += _threads()
    checks += _backends()
    checks += _tables()
    checks += _data()
    checks += _supernet()
    checks += _runs(runs_dir)
    return checks


# --------------------------------------------------------------------------- sections
def _packages() -> list[Check]:
    checks = []
    for dist, module, required, purpose in PACKAGES:
        try:
            version = importlib.metadata.version(dist)
            found = importlib.util.find_spec(module) is not None
        except importlib.metadata.PackageNotFoundError:
            version, found = "", False
        if found:
            checks.append(Check("packages", dist, OK, f"{version} — {purpose}"))
            continue
        fix = "make install" if required else f"pip install {dist}"
        checks.append(Check("packages", dist, MISSING if required else WARN,
                            f"not installed — {purpose}", fix))
    return checks


def _threads() -> list[Check]:
    import torch

    from nas.threads import usable_cores

    cores = usable_cores()
    threads = torch.get_num_threads()
    build = f"torch {torch.__version__}" + (f", CUDA {torch.version.cuda} build"
                                            if torch.version.cuda else ", CPU build")
    checks = [Check("environment", "torch", OK, build),
              Check("environment", "cores", OK, f"{cores} usable of {os.cpu_count()} logical")]
    omp = os.environ.get("OMP_NUM_THREADS")
    if threads > cores:
        checks.append(Check("environment", "threads", WARN,
                            f"torch uses {threads} threads on {cores} usable cores: timings and "
                            f"training slow down from oversubscription",
                            f"export OMP_NUM_THREADS={cores}"))
    else:
        checks.append(Check("environment", "threads", OK,
                            f"torch uses {threads} (OMP_NUM_THREADS={omp or 'unset'}); "
                            f"latency is timed on 1 unless --threads says otherwise"))
    return checks


def _backends() -> list[Check]:
    import torch

    from latency_models.backends import BACKENDS

    checks = []
    for name, backend in BACKENDS.items():
        usable, why = backend.available()
        if usable:
            detail = "usable"
            if name.startswith("cuda"):
                detail = f"usable: {torch.cuda.get_device_name()}"
            checks.append(Check("latency backends", name, OK, detail))
        elif name.startswith("cuda"):
            if shutil.which("nvidia-smi") and not torch.version.cuda:  # a GPU, a CPU torch
                checks.append(Check("latency backends", name, WARN,
                                    f"{why}: this torch is a CPU build",
                                    "pip install torch  (a CUDA build, from pytorch.org)"))
            else:
                checks.append(Check("latency backends", name, NONE, f"{why} (no GPU here)"))
        else:
            checks.append(Check("latency backends", name, WARN, why, "make install"))
    return checks


def _tables() -> list[Check]:
    """This machine's default table (torch, 1 thread, batch 1, 224²), and what else is cached."""
    from latency_models.device import fingerprint
    from latency_models.layers import space_layers
    from latency_models.lut import (
        LatencyTable,
        TableError,
        TableMismatch,
        cache_dir,
        cached_table_path,
    )
    from search_spaces.mobilenetv3 import default_space

    root = cache_dir()
    checks = [Check("latency tables", "cache", OK if _writable(root) else WARN,
                    f"{root} (NAS_CACHE_DIR overrides)",
                    "" if _writable(root) else "export NAS_CACHE_DIR=<a writable directory>")]
    fp = fingerprint("torch", 1, 1, 224)
    path = cached_table_path(fp)
    profile = "nas latency profile"
    if not path.exists():
        checks.append(Check("latency tables", "this device (torch, 1 thread)", WARN,
                            f"no table for {fp.describe()} at {path}; the first search profiles "
                            f"it (a few minutes)", profile))
    else:
        try:
            table = LatencyTable.load(path)
            table.check_fingerprint(fp, path)
        except TableMismatch as exc:
            checks.append(Check("latency tables", "this device (torch, 1 thread)", WARN,
                                str(exc), f"{profile} --force"))
        except TableError as exc:
            checks.append(Check("latency tables", "this device (torch, 1 thread)", WARN,
                                f"unusable: {exc}", f"{profile} --force"))
        else:
            wanted = {layer.key for layer in space_layers(default_space())}
            missing = len(table.missing(wanted))
            calibrated = table.calibration is not None
            detail = (f"{len(table)} layers, {'calibrated' if calibrated else 'not calibrated'}"
                      f"; {missing} layer(s) of the default space missing — {path}")
            complete = missing == 0 and calibrated
            checks.append(Check("latency tables", "this device (torch, 1 thread)",
                                OK if complete else WARN, detail, "" if complete else profile))
    others = sorted(p for p in (root / "latency").glob("*.json") if p != path) \
        if (root / "latency").is_dir() else []
    for other in others:
        try:
            table = LatencyTable.load(other)
            what = "imported" if table.imported else "profiled"
            checks.append(Check("latency tables", other.name, OK,
                                f"{what}: {table.fingerprint.describe()}, {len(table)} layers"))
        except TableError as exc:
            checks.append(Check("latency tables", other.name, WARN, f"unusable: {exc}",
                                f"rm {other}"))
    return checks


def _data() -> list[Check]:
    from nas.data import load_data

    name = "digits-hard (embedded, the search's default)"
    try:
        data = load_data("digits-hard", 32)
    except Exception as exc:  # noqa: BLE001 - report any failure, this is a diagnosis
        return [Check("data", name, MISSING, f"{exc}", "make install")]
    return [Check("data", name, OK, data.describe())]


def _supernet() -> list[Check]:
    """The supernet that the search's default estimator trains on first use."""
    from nas.accuracy.supernet import load_supernet
    from nas.search.objective import AccuracyJob

    job = AccuracyJob()
    path, name = job.supernet_path(), f"search's supernet ({job.data}, {job.resolution}px)"
    if not path.is_file():
        return [Check("accuracy", name, WARN, f"not trained yet; the first `nas-search` trains "
                      f"it ({job.supernet_steps} steps, minutes on a CPU) into {path}")]
    try:
        _, payload = load_supernet(path)
    except ValueError as exc:
        return [Check("accuracy", name, WARN, f"{exc}; the next search trains it again")]
    step = payload.get("step", 0)
    if step < job.supernet_steps:
        return [Check("accuracy", name, WARN, f"interrupted at step {step} of "
                      f"{job.supernet_steps}; the next search continues it — {path}")]
    return [Check("accuracy", name, OK, f"trained, {step} steps — {path}")]


def _runs(runs_dir: Path) -> list[Check]:
    if not runs_dir.is_dir():
        return [Check("runs", str(runs_dir), OK, "no runs yet here")]
    runs = [p for p in runs_dir.iterdir() if p.is_dir()]
    busy = [p.name for p in runs if in_use(p)]
    detail = f"{len(runs)} run(s)" + (f"; in use now: {', '.join(busy)}" if busy else "")
    return [Check("runs", str(runs_dir), OK, detail)]


# --------------------------------------------------------------------------- helpers
def _writable(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)
