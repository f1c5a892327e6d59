"""The ``nas`` command line (``nas-search`` is ``nas search``).

The CLI alone talks to the terminal. A user mistake (a missing file, malformed JSON, an unknown
block kind or format, inconsistent channels: a ``nas.errors.NasError`` or a named OS error) is
answered with one red line and exit code 2; anything else is a bug, shown with its traceback,
exit code 1.

The command modules import the library modules that need torch inside the commands that use
them, never at the top: torch takes ~1.4 s to import (``python -X importtime``, on the 2-core
machine of the benchmarks), which ``nas --help`` and every command's own checks of its
arguments do not pay.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer

from nas.cli import doctor, export, netadapt, reproduce, search, train, zoo
from nas.cli.common import USER_ERROR, err, one_line
from nas.cli.latency import app as latency_app
from nas.cli.supernet import app as supernet_app

app = typer.Typer(
    name="nas",
    help="Hardware-aware neural architecture search in the manner of MobileNetV3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register_subcommands() -> None:
    """Every command group, each from its module, in the order ``nas --help`` lists them."""
    app.add_typer(latency_app, name="latency")
    app.add_typer(supernet_app, name="supernet")
    for register in (zoo.register, reproduce.register, export.register, train.register,
                     search.register, netadapt.register, doctor.register):
        register(app)


# --------------------------------------------------------------------------- entry points
def _run(command: Any, args: list[str], prog: str) -> int:
    try:
        result = command.main(args=args, prog_name=prog, standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except typer.TyperException as exc:
        # Usage mistakes (unknown option, missing argument): one line, like every user error.
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err.print(f"[bold red]error:[/] {one_line(message)} (see `{prog} --help`)",
                  markup=True, soft_wrap=True)
        return USER_ERROR
    except Exception as exc:  # not a user mistake (those end in the commands): a bug of ours
        if os.environ.get("NAS_DEBUG"):
            raise  # to a debugger or the interpreter, untouched
        traceback.print_exc()
        err.print(f"[bold red]internal error:[/] {one_line(f'{type(exc).__name__}: {exc}')} "
                  f"(a bug: please report it with the traceback above)", markup=True,
                  soft_wrap=True)
        return 1
    # Without standalone mode, click returns the exit code of typer.Exit instead of raising.
    return result if isinstance(result, int) else 0


_register_subcommands()


def main() -> None:
    args = sys.argv[1:] or ["--help"]
    sys.exit(_run(typer.main.get_command(app), args, "nas"))


def search_main() -> None:
    group = typer.main.get_command(app)
    sys.exit(_run(group.commands["search"], sys.argv[1:], "nas-search"))

