"""What every ``nas`` command shares: consoles, the one-line error handling, spec arguments."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
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

from nas.spec import ArchSpec

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

USER_ERROR = 2
# the --data sources of nas.data.load_data (torch is not imported to print help)
DATA_SOURCES = ("digits, digits-hard, fashion-mnist, imagefolder:PATH, cifar10:PATH or "
                "mnist:PATH")


class CliError(Exception):
    """A message for the user; the command stops with exit code 2."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause into one line and exit code 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (CliError, ValueError) as exc:
            err.print(f"[bold red]error:[/] {one_line(str(exc))}", markup=True, soft_wrap=True)
            raise typer.Exit(USER_ERROR) from None
        except OSError as exc:  # a missing file, no permission, a full disk
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[bold red]error:[/] {one_line(f'{where}{exc.strerror or exc}')}",
                      markup=True, soft_wrap=True)
            raise typer.Exit(USER_ERROR) from None

    return run


# Control characters (line breaks, tabs, terminal escapes) and the Unicode line separators,
# shown escaped (\\n, \\t, \\x1b, \\u2028): a path or value a user typed may hold them.
_ESCAPED = {c: repr(chr(c))[1:-1] for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}


def one_line(message: str) -> str:
    """``message`` as one line of plain text for rich: control characters escaped, markup
    escaped."""
    return escape(message.translate(_ESCAPED))


# --------------------------------------------------------------------------- helpers
def resolve_spec(arg: str) -> tuple[ArchSpec, dict | None]:
    """A zoo name (or alias), or a spec/checkpoint file -> spec and weights (if any)."""
    from nas.export import load_checkpoint
    from search_spaces import zoo

    if arg in zoo.names() or arg in zoo.ALIASES:
        return zoo.get(arg), None
    if Path(arg).exists():
        return load_checkpoint(arg)
    known = ", ".join(zoo.names())
    fail(f"{arg!r} is neither a file nor a zoo model (known: {known})")


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
