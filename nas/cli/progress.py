"""What the commands show while they work: progress displays on stderr, and how the events of
long runs (NetAdapt, ``nas reproduce --search``) turn into them.

On a terminal a progress display is a live rich bar. When stderr is not a terminal (a CI log,
``make demo > demo.log 2>&1``, a scheduler's output file) a bar would draw nothing until it
ends, so :class:`LogProgress` takes its place: the same ``add_task``/``update`` calls, and a
plain line per unfinished task at least every ``LOG_INTERVAL_SECONDS`` (and one when a task
completes), each with done/total, the elapsed time and an estimate of the time left.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nas.cli.common import err, out
from nas.spec import plural

__all__ = ["LogProgress", "format_seconds", "netadapt_events", "pipeline_events", "progress",
           "progress_bar"]


def progress() -> Progress | LogProgress:
    """A progress display on stderr: on a terminal a rich bar with description, n/total,
    elapsed and ETA; otherwise timed plain lines with the same (:class:`LogProgress`)."""
    if not err.is_terminal:
        return LogProgress(err)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                    transient=False)


@contextlib.contextmanager
def progress_bar(prefix: str = "profiling ") -> Iterator:
    """A progress display on stderr; yields ``update(what, done, total)``."""
    with progress() as bar:
        tasks: dict[str, int] = {}

        def update(what: str, done: float, total: float) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"{prefix}{what}", total=total)
            bar.update(tasks[what], completed=done)

        yield update


LOG_INTERVAL_SECONDS = 10.0  # below the 15 s a reader of a log should wait at most


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    reported_done: bool = False

    @property
    def finished(self) -> bool:
        return self.total is not None and self.completed >= self.total

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.total is None:
            return (f"{self.description}: {int(self.completed)} done, "
                    f"{format_seconds(elapsed)} elapsed")
        share = self.completed / self.total if self.total else 1.0
        eta = "ETA -:--" if self.completed <= 0 or self.finished else \
            f"ETA {format_seconds(elapsed * (self.total - self.completed) / self.completed)}"
        if self.finished:
            eta = "done"
        # whole items (a chunk's layers report fractions as its rounds go by)
        return (f"{self.description}: {int(self.completed)}/{int(self.total)} ({share:.0%}), "
                f"{format_seconds(elapsed)} elapsed, {eta}")


class LogProgress:
    """A stand-in for ``rich.progress.Progress`` that writes plain lines (see the module)."""

    def __init__(self, console: Console, interval: float | None = None):
        self.console = console
        # NAS_PROGRESS_INTERVAL: seconds between lines, for logs that want more or fewer
        self.interval = interval or float(os.environ.get("NAS_PROGRESS_INTERVAL",
                                                         LOG_INTERVAL_SECONDS))
        self._tasks: dict[int, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- rich.Progress's calls
    def add_task(self, description: str, total: float | None = 100.0, **_: Any) -> int:
        with self._lock:
            task_id = len(self._tasks)
            self._tasks[task_id] = _Task(description, total)
        return task_id

    def update(self, task_id: int, *, completed: float | None = None,
               advance: float | None = None, total: float | None = None,
               description: str | None = None, **_: Any) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if description is not None:
                task.description = description
            if (total is not None and total != task.total) or \
                    (completed is not None and completed < task.completed):
                # a task reused for the next phase (a new total, or counting from 0 again):
                # its elapsed time and ETA start again, not from the first phase's start
                task.started, task.reported_done = time.monotonic(), False
            if total is not None:
                task.total = total
            if completed is not None:
                task.completed = completed
            if advance is not None:
                task.completed += advance
            if task.finished and not task.reported_done:
                task.reported_done = True
                self._print(task.line())

    def advance(self, task_id: int, advance: float = 1.0) -> None:
        self.update(task_id, advance=advance)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._report, name="progress-log",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def __enter__(self) -> LogProgress:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --------------------------------------------------------------- the lines
    def _report(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                lines = [t.line() for t in self._tasks.values() if not t.finished]
            for line in lines:
                self._print(line)

    def _print(self, line: str) -> None:
        self.console.print(escape(line), highlight=False, soft_wrap=True)


def netadapt_events(bar: Progress, task: Any) -> Callable[[str, dict[str, Any]], None]:
    """How NetAdapt's events (``NetAdapt.on_event``) show, in ``nas netadapt`` and in ``nas
    reproduce --search`` alike: progress on ``bar``'s ``task``, a line per finished iteration."""

    def on_event(kind: str, p: dict[str, Any]) -> None:
        if kind == "pretrain":
            bar.update(task, description=f"training the start network "
                                         f"({plural(p['epochs'], 'epoch')})")
        elif kind == "step":
            bar.update(task, total=p["total"], completed=p["step"])
        elif kind == "resumed":
            out.print(f"continuing after iteration {p['iterations']} (finished iterations "
                      f"are loaded, not repeated)")
        elif kind == "start":
            out.print(f"iteration 0: {p['latency_ms']:.2f} ms, holdout top-1 "
                      f"{p['accuracy']:.2f}% ({p['start']})")
        elif kind == "iteration":
            bar.update(task, total=max(1, p["proposals"]), completed=0,
                       description=f"iteration {p['iteration']}: {p['latency_ms']:.2f} ms, "
                                   f"cut ≥ {p['delta_ms']:.3f} ms")
        elif kind == "proposal":
            bar.update(task, completed=p["number"] - 1,
                       description=f"iteration {p['iteration']}: {p['what']}")
        elif kind == "accepted":
            out.print(f"iteration {p['iteration']}: {p['latency_before_ms']:.2f} → "
                      f"{p['latency_ms']:.2f} ms, {p['chosen']}; top-1 "
                      f"{p['accuracy']:.2f}% ({p['accuracy'] - p['accuracy_before']:+.2f}); "
                      f"{plural(len(p['proposals']), 'proposal')}, {p['seconds']:.0f} s")
        elif kind == "long":
            bar.update(task, description=f"long fine-tune ({plural(p['epochs'], 'epoch')})",
                       completed=0)
        elif kind == "measure":
            bar.update(task, description="measuring the start and final networks")

    return on_event


def pipeline_events(bar: Progress, task: Any, name: str) -> Callable[[str, dict[str, Any]], None]:
    """How the stages of ``nas reproduce --search`` (``nas.pipeline`` events) show, for the
    paper network ``name``; NetAdapt's own events go through :func:`netadapt_events`."""

    def on_event(kind: str, p: dict[str, Any]) -> None:
        if kind == "target":
            out.print(f"target: {p['model']} measured here at {p['target_ms']:.2f} ms")
        elif kind == "supernet":
            bar.update(task, total=p["total"], completed=p["step"],
                       description=f"training the search's supernet on {p['data']} at "
                                   f"{p['resolution']}px (once; cached)")
        elif kind == "search":
            if p.get("budget_ms") is not None:
                out.print(f"search budget: {name} as the search predicts it, "
                          f"{p['budget_ms']:.2f} ms")
            bar.update(task, total=p["trials"], completed=0,
                       description=f"block search ({p['strategy']}, {p['reward']}, from "
                                   f"{p['seed_arch'] or 'scratch'})")
        elif kind == "rescore":
            bar.update(task, total=None, description=f"training the {p['finalists']} best "
                                                     f"finalists with the {p['recipe']} recipe")
        elif kind == "rescore_log":
            out.print(p["line"])
        elif kind == "searched":
            out.print(f"search winner: trial {p['trial']}, {p['latency_ms']:.2f} ms "
                      f"predicted, proxy top-1 {p['accuracy']:.2f}%")
        elif kind == "netadapt_target":
            out.print(f"NetAdapt target: {name} on NetAdapt's latency scale, "
                      f"{p['target_ms']:.2f} ms")
        elif kind == "netadapt":
            bar.update(task, total=None, completed=0, description="NetAdapt")
        elif kind == "canonical":
            bar.update(task, total=None, description=f"training {name} with the same "
                                                     f"recipe ({p['epochs']} epochs)")
        elif kind == "measure":
            bar.update(task, description="timing both networks side by side")

    return on_event
