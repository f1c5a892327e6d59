"""What every ``nas`` command shares: consoles, the one-line error handling, the options
several commands take, spec arguments."""

from __future__ import annotations

import errno
import functools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nas.errors import NasError
from nas.spec import ArchSpec, TableRow
from search_spaces import zoo

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

USER_ERROR = 2
# the --data sources of nas.data.load_data (torch is not imported to print help)
DATA_SOURCES = ("digits, digits-hard, fashion-mnist, imagefolder:PATH, cifar10:PATH or "
                "mnist:PATH")
# the names of latency_models.backends.BACKENDS, likewise
LATENCY_BACKENDS = "torch, torchscript, onnxruntime, cuda or cuda-graph"

# --------------------------------------------------------------------------- shared options
# Each option several commands take is declared here once; a command takes it by annotating a
# parameter of the option's name (``seed: Seed = 0``), with its own default.
Seed = Annotated[int, typer.Option(help="seed of everything random in the command (weights, "
                                        "batch order, sampled networks)")]
Device = Annotated[str, typer.Option(help="training device: cpu or cuda")]
Data = Annotated[str, typer.Option(help=DATA_SOURCES)]
RunsDir = Annotated[Path, typer.Option(help="where run directories go")]
LatencyBackend = Annotated[str, typer.Option(help=LATENCY_BACKENDS)]
LatencyThreads = Annotated[int, typer.Option(help="threads of the latency target")]
LatencyTable = Annotated[str | None, typer.Option(help="latency table file (default: this "
                                                       "device's, profiled on first use)")]
Recalibrate = Annotated[bool, typer.Option(help="rescale the latency calibration to the "
                                                "machine's speed when the run starts")]
Estimator = Annotated[str, typer.Option(
    help="the search's accuracy estimator: supernet (trained here once per data set, then "
         "cached), supernet:PATH, train or zero-cost:params|synflow|naswot")]
SupernetSteps = Annotated[int, typer.Option(
    help="--estimator supernet: training steps of the cached supernet")]


class CliError(NasError):
    """A mistake only the command line can see (options that exclude each other, a value out
    of an option's range); the command stops with exit code 2."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


# The OS errors a user can act on: a path that is missing, of the wrong kind or not theirs, and
# a disk that is full (or over quota, or read-only). Any other OSError is not their mistake.
_USER_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                   PermissionError)
_USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a mistake the user can mend (one line, exit 2), not a bug."""
    return isinstance(exc, (NasError, *_USER_OS_ERRORS)) or (
        isinstance(exc, OSError) and exc.errno in _USER_ERRNOS)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause (:class:`NasError`, a missing file, no permission, a
    full disk) into one red line and exit code 2. Everything else propagates: it is a bug, and
    the entry point shows its traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (NasError, OSError) as exc:
            if not is_user_error(exc):
                raise
            message = str(exc)
            if isinstance(exc, OSError):
                where = f"{exc.filename}: " if exc.filename else ""
                message = f"{where}{exc.strerror or exc}"
            err.print(f"[bold red]error:[/] {one_line(message)}", markup=True, soft_wrap=True)
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
def fmt_count(value: float, unit: str = "") -> str:
    """A parameter or MAdds count in millions (or billions): ``5.48M``."""
    if value >= 1e9:
        return f"{value / 1e9:.2f}G{unit}"
    return f"{value / 1e6:.2f}M{unit}"


def spec_table(spec: ArchSpec, title: str) -> Table:
    """The paper-style table of ``spec`` for the terminal."""
    table = Table(title=title, title_justify="left")
    input_column, operator_column, *numbers = TableRow.COLUMNS
    table.add_column(input_column, no_wrap=True)
    table.add_column(operator_column, no_wrap=True)
    for column in numbers:
        table.add_column(column, justify="right")
    for row in spec.table_rows():
        table.add_row(*row.cells())
    return table


def check_width(width: float) -> None:
    """A width multiplier in (0, 4], or a one-line error."""
    if not 0 < width <= 4:
        fail(f"--width must be in (0, 4], got {width}")


def resolve_spec(arg: str) -> tuple[ArchSpec, dict | None]:
    """A zoo name (or alias), or a spec/checkpoint file -> spec and weights (if any)."""
    from nas.export import load_checkpoint  # torch: see nas/cli/app.py

    if arg in zoo.names() or arg in zoo.ALIASES:
        return zoo.get(arg), None
    if Path(arg).exists():
        return load_checkpoint(arg)
    known = ", ".join(zoo.names())
    fail(f"{arg!r} is neither a file nor a zoo model (known: {known})")


def terminate_cleanly() -> None:
    """SIGTERM (a scheduler's stop, `kill`) unwinds like Ctrl-C: worker processes are shut
    down; every finished trial or iteration is already saved."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
