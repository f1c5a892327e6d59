"""``nas zoo``: the seed model zoo with its params and MAdds."""

from __future__ import annotations

import typer
from rich.table import Table

from nas.cli.common import fmt_count, out, user_errors
from search_spaces import zoo

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.


def register(app: typer.Typer) -> None:
    @app.command("zoo")
    @user_errors
    def zoo_command() -> None:
        """List the seed model zoo with params and MAdds (224x224, 1000 classes)."""
        from nas.build import count_params
        from nas.flops import count_madds

        table = Table(title="Model zoo (224×224, 1000 classes; MAdds via FlopCounterMode)",
                      title_justify="left")
        table.add_column("name", no_wrap=True)
        for column in ("blocks", "params", "MAdds", "paper top-1", "paper MAdds"):
            table.add_column(column, justify="right")
        for name in zoo.names():
            spec = zoo.get(name)
            paper = zoo.PAPER_FIGURES.get((name, 1.0))
            table.add_row(
                name,
                str(len(spec.blocks)),
                f"{count_params(spec):,}",
                fmt_count(count_madds(spec)),
                f"{paper.top1:.1f}%" if paper else "",
                fmt_count(paper.madds) if paper else "",
            )
        out.print(table)
