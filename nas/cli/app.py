"""The ``nas`` command line (``nas-search`` is ``nas search``).

The CLI alone talks to the terminal. A user mistake (a missing file, malformed JSON, an unknown
block kind or format, inconsistent channels: a ``nas.errors.NasError`` or a named OS error) is
answered with one red line and exit code 2; anything else is a bug, shown with its traceback,
exit code 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nas.cli.common import (
    DATA_SOURCES,
    USER_ERROR,
    Data,
    Device,
    Seed,
    err,
    fail,
    one_line,
    out,
    resolve_spec,
    terminate_cleanly,
)
from nas.cli.common import user_errors as _user_errors
from nas.cli.progress import netadapt_events, pipeline_events, progress, progress_bar
from nas.spec import ArchSpec, TableRow

app = typer.Typer(
    name="nas",
    help="Hardware-aware neural architecture search in the manner of MobileNetV3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _fmt_count(value: float, unit: str = "") -> str:
    if value >= 1e9:
        return f"{value / 1e9:.2f}G{unit}"
    return f"{value / 1e6:.2f}M{unit}"


def _rich_table(spec: ArchSpec, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    input_column, operator_column, *numbers = TableRow.COLUMNS
    table.add_column(input_column, no_wrap=True)
    table.add_column(operator_column, no_wrap=True)
    for column in numbers:
        table.add_column(column, justify="right")
    for row in spec.table_rows():
        table.add_row(*row.cells())
    return table


def _check_width(width: float) -> None:
    if not 0 < width <= 4:
        fail(f"--width must be in (0, 4], got {width}")


# --------------------------------------------------------------------------- commands
@app.command("zoo")
@_user_errors
def zoo_command() -> None:
    """List the seed model zoo with params and MAdds (224x224, 1000 classes)."""
    from nas.build import count_params
    from nas.flops import count_madds
    from search_spaces import zoo

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
            _fmt_count(count_madds(spec)),
            f"{paper.top1:.1f}%" if paper else "",
            _fmt_count(paper.madds) if paper else "",
        )
    out.print(table)


@app.command("reproduce")
@_user_errors
def reproduce_command(
    model: Annotated[str, typer.Argument(help="v3-large, v3-small, or any zoo name")],
    width: Annotated[float, typer.Option(help="width multiplier (paper: 1.0 or 0.75)")] = 1.0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory "
                                                 "(default runs/<name>)")] = None,
    seed: Seed = 0,
    search: Annotated[bool, typer.Option(
        "--search", help="run the paper's recipe here: block search -> NetAdapt -> long "
                         "fine-tune, then compare with the canonical network")] = False,
    strategy: Annotated[str, typer.Option(help="--search: the block search's strategy")]
        = "ppo",
    trials: Annotated[int, typer.Option(help="--search: candidates of the block search")] = 100,
    data: Annotated[str, typer.Option(help=f"--search: {DATA_SOURCES}")] = "digits",
    resolution: Annotated[int, typer.Option(help="--search: training resolution")] = 16,
    init_epochs: Annotated[int, typer.Option(help="--search: first training of both "
                                             "networks")] = 10,
    short_steps: Annotated[int, typer.Option(help="--search: NetAdapt fine-tune steps per "
                                             "proposal")] = 40,
    long_epochs: Annotated[int, typer.Option(help="--search: the final fine-tune")] = 10,
    delta: Annotated[float, typer.Option(help="--search: NetAdapt's cut per iteration, × "
                                         "latency")] = 0.01,
    workers: Annotated[int | None, typer.Option(help="--search: search workers")] = None,
    device: Device = "cpu",
) -> None:
    """Emit a paper network (table, params, MAdds; spec.json, table.md, arch.txt, model.pt), or
    with --search find one here the way the paper did and compare it row by row."""
    if search:
        _reproduce_with_search(model, width, out_dir, seed, strategy, trials, data, resolution,
                               init_epochs, short_steps, long_epochs, delta, workers, device)
        return
    from nas.build import build_model, count_params
    from nas.export import save, write_text
    from nas.flops import count_madds
    from search_spaces import zoo

    _check_width(width)
    name = zoo.canonical_name(model)
    spec = zoo.get(name, width_mult=width)
    run_name = name if width == 1.0 else f"{name}_{round(width * 100):03d}"
    directory = out_dir or Path("runs") / run_name
    net = build_model(spec, seed=seed)
    params, madds = count_params(net), count_madds(net)

    out.print(_rich_table(spec, f"{name} ×{width:g}"))
    summary = Table(show_header=True, title_justify="left")
    for column in ("", "params", "MAdds", "top-1"):
        summary.add_column(column, justify="right")
    summary.add_row("this build", f"{params:,}", _fmt_count(madds), "untrained")
    paper = zoo.PAPER_FIGURES.get((name, width))
    if paper:
        summary.add_row(f"paper ({paper.source})", _fmt_count(paper.params),
                        _fmt_count(paper.madds), f"{paper.top1:.1f}%")
    out.print(summary)

    files = {
        "spec.json": lambda p: write_text(p, spec.to_json()),
        "table.md": lambda p: write_text(p, f"# {name} ×{width:g}\n\n" + spec.table()),
        "arch.txt": lambda p: write_text(p, spec.to_text()),
        "model.pt": lambda p: save(net, p),
    }
    for filename, write in files.items():
        write(directory / filename)
    out.print(f"wrote {', '.join(files)} to {directory}/")


def _reproduce_with_search(model, width, out_dir, seed, strategy, trials, data, resolution,
                           init_epochs, short_steps, long_epochs, delta, workers,
                           device) -> None:
    from nas.cli.netadapt import layer_diff_table
    from nas.data import load_data
    from nas.pipeline import PRESETS, PipelineSettings, reproduce_search
    from nas.search.run import default_workers
    from nas.spec import ArchSpec
    from search_spaces import zoo

    name = zoo.canonical_name(model)
    if name not in PRESETS:
        fail(f"--search reproduces v3-large or v3-small (the paper's two searches), not {name}")
    if width != 1.0:
        fail("--search reproduces the 1.0 networks; drop --width")
    if workers is not None and workers < 1:
        fail("--workers must be at least 1")
    settings = PipelineSettings(model=name, strategy=strategy, trials=trials, data=data,
                                resolution=resolution, init_epochs=init_epochs,
                                short_steps=short_steps, long_epochs=long_epochs, delta=delta,
                                seed=seed, device=device)
    load_data(data, resolution, seed=seed)  # a bad --data fails here, in one line (the
    # pipeline loads it again, inside its run directory's lock)
    directory = out_dir or Path("runs") / f"{name}-search"
    terminate_cleanly()
    with progress() as bar:
        task = bar.add_task("measuring the target", total=None)

        def on_search_result(result, done, total):
            bar.update(task, completed=done)

        try:
            summary = reproduce_search(settings, directory, workers=workers or default_workers(),
                                       on_event=pipeline_events(bar, task, name),
                                       on_search_result=on_search_result,
                                       on_netadapt_event=netadapt_events(bar, task))
        except KeyboardInterrupt:
            bar.stop()
            err.print(f"interrupted: finished work is saved in {directory}; run the same command "
                      f"again to continue")
            raise typer.Exit(130) from None
    canonical = zoo.get(name)
    found = ArchSpec.from_dict(summary["found"]["spec"])
    out.print(layer_diff_table(canonical, found, name, "found here"))
    table = Table(title="Same recipe, same machine", title_justify="left")
    for column in ("network", "measured ms", "val top-1", "params", "MAdds"):
        table.add_column(column, justify="left" if column == "network" else "right")
    for label, row in (("canonical", summary["canonical"]), ("found", summary["found"])):
        table.add_row(label, "-" if row["measured_ms"] is None else f"{row['measured_ms']:.2f}",
                      "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.2f}%",
                      _fmt_count(row["params"]), _fmt_count(row["madds"]))
    out.print(table)
    out.print(f"wrote found.json, comparison.md, summary.json to {directory}/")


@app.command("table")
@_user_errors
def table_command(
    spec_arg: Annotated[str, typer.Argument(metavar="SPEC", help="zoo name or spec file")],
    width: Annotated[float | None, typer.Option(help="override the width multiplier")] = None,
) -> None:
    """Print the paper-style table (Input, Operator, exp size, #out, SE, NL, s) as markdown."""
    import dataclasses

    spec, _ = resolve_spec(spec_arg)
    if width is not None:
        _check_width(width)
        spec = dataclasses.replace(spec, width_mult=width)
    sys.stdout.write(spec.table())


@app.command("export")
@_user_errors
def export_command(
    spec_arg: Annotated[str, typer.Argument(metavar="SPEC",
                                            help="zoo name, spec file or .pt checkpoint")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="pytorch, py, torchscript, onnx, "
                                     "json, timm or table")] = "pytorch",
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


@app.command("train")
@_user_errors
def train_command(
    spec_arg: Annotated[str, typer.Argument(metavar="SPEC", help="zoo name or spec file")],
    data: Data = "digits",
    epochs: Annotated[int, typer.Option(help="training epochs")] = 5,
    resolution: Annotated[int, typer.Option(help="input resolution")] = 32,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 64,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 0.1,
    seed: Seed = 0,
    device: Device = "cpu",
    compile_model: Annotated[bool, typer.Option(
        "--compile", help="torch.compile the model: slow to compile on a CPU, then faster or "
                          "slower by model and run (measured: docs/accuracy.md, "
                          "\"CPU efficiency\")")] = False,
) -> None:
    """Train a network briefly from scratch and print its validation accuracy."""
    from nas.accuracy.train import Recipe, TrainEstimator, check_device
    from nas.data import load_data

    check_device(device)
    spec, _ = resolve_spec(spec_arg)
    dataset = load_data(data, resolution, seed=seed)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                    compile=compile_model)
    out.print(f"{spec.name} on {dataset.describe()}")
    with progress_bar("") as update:
        estimator = TrainEstimator(dataset, recipe, device=device,
                                   on_step=lambda step, total, _loss: update("training", step,
                                                                             total))
        result = estimator.estimate(spec)
    if result.failed:
        fail(f"training failed: {result.reason}")
    images = result.details["steps"] * recipe.batch_size
    out.print(f"validation top-1: {result.score:.2f}%  ({result.cost_seconds:.1f} s, "
              f"{images / result.cost_seconds:,.0f} train images/s, final loss "
              f"{result.details['final_loss']:.3f})")


def _register_subcommands() -> None:
    from nas.cli.doctor import register as register_doctor
    from nas.cli.latency import app as latency_app
    from nas.cli.netadapt import register as register_netadapt
    from nas.cli.search import register
    from nas.cli.supernet import app as supernet_app

    app.add_typer(latency_app, name="latency")
    app.add_typer(supernet_app, name="supernet")
    register(app)
    register_netadapt(app)
    register_doctor(app)


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

