"""Every benchmark runs in its seconds-long --smoke mode, so none of them can rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["latency_validation.py"])
def test_benchmark_smoke(script, tmp_path):
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "predicted vs measured" in result.stdout
    assert "specs/s" in result.stdout


def smoke(script: str, tmp_path: Path) -> str:
    """The benchmark's --smoke run with its own latency cache; its stdout."""
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_search_quality_smoke(tmp_path):
    stdout = smoke("search_quality.py", tmp_path)
    assert "| evolution |" in stdout and "V3-Small predicted" in stdout


def test_netadapt_vs_multiplier_smoke(tmp_path):
    stdout = smoke("netadapt_vs_multiplier.py", tmp_path)
    assert "NetAdapt ms" in stdout and "mult@same ms" in stdout
