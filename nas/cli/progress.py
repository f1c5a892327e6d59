"""What the commands show while they work: progress displays on stderr, and how the events of
long runs (NetAdapt, ``nas reproduce --search``) turn into them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

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

__all__ = ["netadapt_events", "pipeline_events", "progress", "progress_bar"]


def progress() -> Progress:
    """A rich progress display on stderr: description, bar, n/total, elapsed and ETA."""
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
        elif kind == "search":
            bar.update(task, total=p["trials"], completed=0,
                       description=f"block search ({p['strategy']}, {p['reward']}, from "
                                   f"{p['seed_arch'] or 'scratch'})")
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
