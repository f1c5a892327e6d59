"""``nas doctor``: finds what is missing on this machine and names the fix."""

from __future__ import annotations

import importlib.metadata

import pytest
import typer

from latency_models.device import fingerprint
from latency_models.layers import space_layers
from latency_models.lut import Entry, LatencyTable, cached_table_path
from nas import doctor
from nas.cli.app import _run, app
from nas.runlock import RunLock
from search_spaces.mobilenetv3 import default_space


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def run(capsys) -> tuple[int, str]:
    code = _run(typer.main.get_command(app), ["doctor"], "nas")
    return code, " ".join(capsys.readouterr().out.split())  # rich wraps long lines


def by_name(checks, name):
    return next(c for c in checks if c.name == name)


def device_table() -> LatencyTable:
    table = LatencyTable(fingerprint=fingerprint("torch", 1, 1, 224), settings={})
    for layer in space_layers(default_space()):
        table.entries[layer.key] = Entry(0.1, 0.1, 3)
    return table


def test_a_fresh_machine_is_told_to_profile(capsys):
    code, text = run(capsys)
    assert code == 0  # nothing required is missing: the first search would profile
    assert "no table for" in text and "to fix:" in text
    assert "this device (torch, 1 thread): nas latency profile" in text
    assert "digits-hard: 1438 train / 359 val images" in text
    assert "search's supernet (digits-hard, 32px) warn not trained yet" in text


def test_the_search_supernet_is_reported_trained_or_interrupted():
    from nas.accuracy.supernet import Supernet, save_checkpoint
    from nas.search.objective import AccuracyJob

    job = AccuracyJob()
    supernet = Supernet(default_space().with_resolution(32, 10))
    steps = job.supernet_recipe.steps
    half = steps // 2
    for step, status, words in ((half, "warn", f"interrupted at step {half} of {steps}"),
                                (steps, "ok", f"trained, {steps} steps")):
        save_checkpoint(job.supernet_path(), supernet, None, step, job.supernet_recipe)
        check = by_name(doctor.run_checks(), "search's supernet (digits-hard, 32px)")
        assert check.status == status and check.detail.startswith(words)


def test_a_corrupted_or_incomplete_table_is_reported(capsys):
    path = cached_table_path(fingerprint("torch", 1, 1, 224))
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "nas.latency-table", "trunc')
    check = by_name(doctor.run_checks(), "this device (torch, 1 thread)")
    assert check.status == "warn" and check.detail.startswith("unusable:")
    assert check.fix == "nas latency profile --force"

    table = device_table()
    dropped = sorted(table.entries)[:3]
    for key in dropped:
        del table.entries[key]
    table.save(path)
    check = by_name(doctor.run_checks(), "this device (torch, 1 thread)")
    assert "not calibrated; 3 layer(s) of the default space missing" in check.detail
    assert check.status == "warn" and check.fix == "nas latency profile"


def test_a_complete_table_and_a_run_in_use(capsys, tmp_path):
    table = device_table()
    table.calibration = {"coefficients": {"scale": 1.0, "per_block_ms": 0.0,
                                          "overhead_ms": 0.0}}
    table.save(cached_table_path(table.fingerprint))
    (tmp_path / "runs" / "idle").mkdir(parents=True)
    with RunLock(tmp_path / "runs" / "busy"):
        code, text = run(capsys)
    assert code == 0
    assert "calibrated; 0 layer(s) of the default space missing" in text
    assert "this device (torch, 1 thread): nas latency profile" not in text
    assert "2 run(s); in use now: busy" in text


def test_a_missing_package_names_its_fix(capsys, monkeypatch):
    real = importlib.metadata.version

    def version(name):
        if name in ("optuna", "onnxscript"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    checks = doctor.run_checks()
    assert by_name(checks, "optuna").status == "missing"
    assert by_name(checks, "optuna").fix == "make install"
    assert by_name(checks, "onnxscript").status == "warn"  # optional: ONNX export only
    assert by_name(checks, "onnxscript").fix == "pip install onnxscript"
    code, text = run(capsys)
    assert code == 1 and "optuna: make install" in text
