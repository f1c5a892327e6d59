"""``nas doctor``: the environment, what is missing, and the command that fixes it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from nas.cli.common import RunsDir, out, user_errors
from nas.doctor import MISSING, run_checks, worst

_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "missing": "[bold red]missing[/]",
         "n/a": "[dim]n/a[/]"}


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    @user_errors
    def doctor(
        runs_dir: RunsDir = Path("runs"),
    ) -> None:
        """Check this machine: packages, torch threads, latency backends, cached latency
        tables for this device, the embedded data, runs in use. Prints the fix for each gap;
        exits 1 if something required is missing."""
        checks = run_checks(runs_dir=runs_dir)
        for section in dict.fromkeys(c.section for c in checks):
            table = Table(title=section, title_justify="left", show_header=False, box=None,
                          pad_edge=False)
            table.add_column(no_wrap=True)
            table.add_column(no_wrap=True)
            table.add_column(overflow="fold")
            for check in (c for c in checks if c.section == section):
                table.add_row(escape(check.name), _MARK[check.status], escape(check.detail))
            out.print(table)
        fixes = [c for c in checks if c.fix]
        if fixes:
            out.print("\n[bold]to fix:[/]")
            for check in fixes:
                out.print(f"  {escape(check.name)}: [cyan]{escape(check.fix)}[/]")
        else:
            out.print("\n[green]nothing missing[/]")
        if worst(checks) == MISSING:
            raise typer.Exit(1)
