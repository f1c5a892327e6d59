"""Progress in a log: when stderr is not a terminal, long phases still report as they go."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from nas.cli.progress import LogProgress, format_seconds, progress


def test_a_log_gets_timed_lines_with_done_total_elapsed_and_eta():
    stream = io.StringIO()
    with LogProgress(Console(file=stream, width=200), interval=0.05) as bar:
        task = bar.add_task("supernet", total=10)
        bar.update(task, completed=3)
        time.sleep(0.3)
        assert "supernet: 3/10 (30%), 0:00 elapsed, ETA 0:0" in stream.getvalue()
        bar.update(task, advance=7, description="supernet (loss 1.2)")
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "supernet (loss 1.2): 10/10 (100%), 0:00 elapsed, done"
    assert sum("done" in line for line in lines) == 1  # a finished task is reported once


def test_a_task_reused_for_the_next_phase_restarts_its_clock(monkeypatch):
    """`nas reproduce --search` reuses one task for search, NetAdapt's pre-training, ...: the
    next phase's ETA must come from its own pace (it said 16 hours for a 3-minute phase)."""
    now = [1000.0]
    monkeypatch.setattr("nas.cli.progress.time.monotonic", lambda: now[0])
    bar = LogProgress(Console(file=io.StringIO(), width=200), interval=60)
    task = bar.add_task("search", total=30)
    now[0] += 450
    bar.update(task, completed=30)
    bar.update(task, total=1250, completed=0, description="training the start network")
    now[0] += 10
    bar.update(task, completed=10)
    assert bar._tasks[task].line() == ("training the start network: 10/1250 (1%), 0:10 "
                                       "elapsed, ETA 20:40")
    bar.update(task, completed=0, description="next")  # counting from 0 again: a new phase
    assert bar._tasks[task].line().endswith("0:00 elapsed, ETA -:--")


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01",
                                                                   "1:02:05"]


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal():
    assert isinstance(progress(), LogProgress)  # pytest captures stderr


def test_a_search_in_a_log_reports_while_it_runs(tmp_path):
    """The CLI end to end, output to a pipe: progress lines appear before the phase ends."""
    from tests.search_helpers import save_synthetic_table

    table = save_synthetic_table(tmp_path / "table.json")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
           "NAS_PROGRESS_INTERVAL": "0.2"}
    result = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "15ms", "--trials", "40",
         "--estimator", "zero-cost:params", "--table", str(table), "--no-recalibrate",
         "--workers", "1", "--runs-dir", str(tmp_path), "--no-report"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    search_lines = [line for line in result.stderr.splitlines() if line.startswith("search")]
    assert search_lines and re.search(r": 40/40 \(100%\), [0-9:]+ elapsed, done$",
                                      search_lines[-1]), search_lines
    assert any("/40 (" in line and "ETA" in line for line in search_lines[:-1]), search_lines
