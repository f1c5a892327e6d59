"""``nas table`` and ``nas export``: a spec (or trained checkpoint) in another form."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from nas.cli.common import Seed, check_width, out, resolve_spec, user_errors

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.


def register(app: typer.Typer) -> None:
    @app.command("table")
    @user_errors
    def table_command(
        spec_arg: Annotated[str, typer.Argument(metavar="SPEC", help="zoo name or spec file")],
        width: Annotated[float | None, typer.Option(help="override the width multiplier")] = None,
    ) -> None:
        """Print the paper-style table (Input, Operator, exp size, #out, SE, NL, s) as markdown."""
        spec, _ = resolve_spec(spec_arg)
        if width is not None:
            check_width(width)
            spec = dataclasses.replace(spec, width_mult=width)
        sys.stdout.write(spec.table())

    @app.command("export")
    @user_errors
    def export_command(
        spec_arg: Annotated[str, typer.Argument(metavar="SPEC",
                                                help="zoo name, spec file or .pt checkpoint")],
        fmt: Annotated[str, typer.Option(
            "--format", "-f", help="pytorch, py, torchscript, onnx, json, text (this project's "
                                   "arch-def text), timm (a .py of timm's arch_def and "
                                   "create_model) or table")] = "pytorch",
        path: Annotated[Path | None, typer.Option("--out", help="output file "
                                                  "(default runs/<name>/<name><suffix>)")] = None,
        seed: Seed = 0,
    ) -> None:
        """Export a spec or trained checkpoint to another format (a spec without weights gets
        fresh ones, from --seed)."""
        from nas.export import FORMATS, build_with_weights, check_format, export

        check_format(fmt)
        spec, state_dict = resolve_spec(spec_arg)
        target = path or Path("runs") / spec.name / f"{spec.name}{FORMATS[fmt]}"
        needs_model = fmt in ("pytorch", "torchscript", "onnx")
        subject = build_with_weights(spec, state_dict, seed=seed, source=spec_arg) \
            if needs_model else spec
        export(subject, fmt, target)
        note = ""
        if needs_model and state_dict is None:
            note = f" (weights freshly initialised with seed {seed}; export a .pt for trained ones)"
        out.print(f"wrote {target}{note}")
