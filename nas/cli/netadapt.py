"""``nas netadapt``: per-layer filter counts tuned against latency (MobileNetV3's step 2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nas.cli.common import (
    Data,
    Device,
    LatencyBackend,
    LatencyTable,
    LatencyThreads,
    Recalibrate,
    RunsDir,
    Seed,
    err,
    fail,
    out,
    resolve_spec,
    terminate_cleanly,
    user_errors,
)
from nas.cli.progress import netadapt_events, progress, progress_bar
from nas.runlock import RunLock
from nas.search.budget import BudgetError, parse_budget
from nas.spec.tables import plural, table_diff

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.


def parse_delta(text: str) -> tuple[float, float | None]:
    """``0.01`` (a fraction of the current latency) or ``0.3ms`` -> (fraction, ms or None)."""
    try:
        return 0.01, parse_budget(text)
    except BudgetError:
        pass
    try:
        value = float(text)
    except ValueError:
        fail(f"--delta {text!r} not understood: a fraction of the latency (0.01) or a time "
             f"(0.3ms)")
    return value, None


def start_network(arg: str, input_size: int, num_classes: int, data) -> tuple[Any, Any]:
    """(deployment spec, weights or None) of SPEC_OR_CHECKPOINT; checks weights fit ``data``."""
    spec, weights = resolve_spec(arg)
    if weights is not None:
        if spec.num_classes != data.num_classes or spec.stem.in_ch != data.channels:
            fail(f"{arg} was trained for {spec.num_classes} classes of {spec.stem.in_ch}-channel "
                 f"images; the data ({data.name}) has {data.num_classes} classes of "
                 f"{data.channels}-channel images: give its spec (JSON) instead, NetAdapt then "
                 f"trains it first")
    deploy = dataclasses.replace(spec.scaled(), input_size=input_size, num_classes=num_classes,
                                 stem=dataclasses.replace(spec.scaled().stem, in_ch=3))
    return deploy, weights


@user_errors
def netadapt_command(
    network: Annotated[str, typer.Argument(
        metavar="SPEC_OR_CHECKPOINT",
        help="a zoo name (v3-large), a spec file, or a checkpoint trained on --data")],
    target: Annotated[str, typer.Option(help="stop at this latency, e.g. 40ms")],
    delta: Annotated[str, typer.Option(help="cut per iteration: a fraction of the current "
                                       "latency (0.01) or a time (0.3ms)")] = "0.01",
    delta_decay: Annotated[float, typer.Option(
        help="schedule: the cut is multiplied by this every iteration")] = 1.0,
    short_steps: Annotated[int, typer.Option(help="fine-tune steps per proposal (T)")] = 40,
    long_epochs: Annotated[int, typer.Option(help="final fine-tune epochs (0: none)")] = 10,
    init_epochs: Annotated[int, typer.Option(
        help="training of a network given without weights")] = 10,
    select: Annotated[str, typer.Option(
        help="ratio (ΔAcc/|ΔLatency|, MobileNetV3) or accuracy (original NetAdapt)")] = "ratio",
    data: Data = "digits",
    resolution: Annotated[int, typer.Option(help="training resolution")] = 16,
    input_size: Annotated[int, typer.Option(help="input size latency is measured at")] = 224,
    classes: Annotated[int, typer.Option(help="classes of the deployed classifier (latency)")]
        = 1000,
    latency: Annotated[str, typer.Option(
        help="paired (re-measure the layers in question side by side every iteration) or "
             "table (table values as they are)")] = "paired",
    latency_rounds: Annotated[int, typer.Option(help="rounds of a paired measurement")] = 7,
    latency_backend: LatencyBackend = "torch",
    latency_threads: LatencyThreads = 1,
    table: LatencyTable = None,
    recalibrate: Recalibrate = True,
    max_iterations: Annotated[int, typer.Option(help="stop after this many iterations")] = 1000,
    seed: Seed = 0,
    device: Device = "cpu",
    name: Annotated[str | None, typer.Option(help="run name (default from the settings)")]
        = None,
    runs_dir: RunsDir = Path("runs/netadapt"),
    resume: Annotated[bool, typer.Option(help="continue the run NAME")] = False,
    overwrite: Annotated[bool, typer.Option(help="start the run NAME again")] = False,
) -> None:
    """Shrink a network layer by layer until it meets --target (NetAdapt, as in MobileNetV3).

    Every iteration (spec, weights, latency, accuracy, all proposals) is saved under
    runs/netadapt/NAME/iterations; --resume continues after an interruption, also to a lower
    --target or with another --delta.
    """
    from nas.accuracy.train import check_device
    from nas.data import load_data
    from nas.netadapt import NetAdaptSettings, check_run_dir
    from nas.netadapt.prune import check_prunable

    terminate_cleanly()
    if resume and overwrite:
        fail("--resume and --overwrite exclude each other")
    check_device(device)  # NetAdapt trains after profiling: a bad device must fail now
    target_ms = parse_budget(target)
    fraction, delta_ms = parse_delta(delta)
    settings = NetAdaptSettings(
        target_ms=target_ms, delta=fraction, delta_ms=delta_ms, delta_decay=delta_decay,
        short_steps=short_steps, long_epochs=long_epochs, init_epochs=init_epochs,
        select=select, seed=seed, data=data, resolution=resolution, latency=latency,
        latency_rounds=latency_rounds, max_iterations=max_iterations, device=device)
    dataset = load_data(data, resolution, seed=seed)
    start, weights = start_network(network, input_size, classes, dataset)
    check_prunable(start)  # before any profiling: a shufflenet fails in one line, at once
    run_dir = runs_dir / (name or f"{start.name}-{target_ms:g}ms-{select}")
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)  # before any profiling
    with RunLock(run_dir):  # one writer per directory, from the first file written into it
        _netadapt(settings, run_dir, start, weights, dataset, resume=resume,
                  overwrite=overwrite, latency_backend=latency_backend,
                  latency_threads=latency_threads, table=table, recalibrate=recalibrate)


def _netadapt(settings, run_dir: Path, start, weights, dataset, *, resume: bool,
              overwrite: bool, latency_backend: str, latency_threads: int, table: str | None,
              recalibrate: bool) -> None:
    from nas.netadapt import NetAdapt, device_latency

    latency, latency_rounds = settings.latency, settings.latency_rounds
    target_ms, fraction, delta_ms = settings.target_ms, settings.delta, settings.delta_ms
    short_steps, select = settings.short_steps, settings.select
    with progress_bar("latency ") as update:
        measured, info, measure_networks = device_latency(
            start, run_dir, mode=latency, rounds=latency_rounds, backend=latency_backend,
            threads=latency_threads, table=table, recalibrate=recalibrate, resume=resume,
            progress=update)
    run = NetAdapt(settings, run_dir, start, dataset, measured, weights=weights, resume=resume,
                   overwrite=overwrite, extra_info=info, measure_networks=measure_networks)
    start_ms = measured(start)
    out.print(f"run {run_dir}: {start.name} at {start_ms:.2f} ms predicted → target "
              f"{target_ms:g} ms; cut per iteration "
              f"{f'{delta_ms:g} ms' if delta_ms else f'{fraction:g} × latency'}; "
              f"select by {'ΔAcc/|ΔLat|' if select == 'ratio' else 'accuracy'}")
    out.print(f"accuracy: {dataset.describe()}; proposals fine-tuned {short_steps} steps, "
              f"scored on a {settings.holdout:.0%} holdout of the training images")
    if target_ms >= start_ms:
        out.print(f"[yellow]the start network already meets {target_ms:g} ms[/]", markup=True)
    with run:
        result = _run_with_progress(run)
    _print_result(run, result)


def _run_with_progress(run):
    with progress() as bar:
        run.on_event = netadapt_events(bar, bar.add_task("netadapt", total=None))
        try:
            return run.run()
        except KeyboardInterrupt:
            bar.stop()
            from nas.netadapt import load_iterations

            done = len(load_iterations(run.dir)) - 1
            err.print(f"interrupted: {max(done, 0)} finished iteration(s) are saved in "
                      f"{run.dir}; add --resume to continue")
            raise typer.Exit(130) from None


def _print_result(run, result) -> None:
    from nas.netadapt.report import write_report

    last = result.iterations[-1]
    out.print(f"stopped ({result.stop_reason}) after {plural(last['iteration'], 'iteration')}: "
              f"{result.iterations[0]['latency_ms']:.2f} → {last['latency_ms']:.2f} ms "
              f"predicted")
    paths = write_report(run.dir, result, run.settings.target_ms)
    out.print(layer_diff_table(run.start, result.spec, "start", "NetAdapt"))
    if result.final:
        final = result.final
        table = Table(title="After the long fine-tune", title_justify="left")
        for column in ("network", "predicted ms", "measured ms", "val top-1"):
            table.add_column(column, justify="left" if column == "network" else "right")
        measured = final.get("measured_ms", {})
        table.add_row("start", f"{result.iterations[0]['latency_ms']:.2f}",
                      f"{measured['start']:.2f}" if measured else "-", "-")
        table.add_row("NetAdapt", f"{final['latency_ms']:.2f}",
                      f"{measured['final']:.2f}" if measured else "-",
                      f"{final['val_accuracy']:.2f}%")
        out.print(table)
    out.print(f"files: {', '.join(str(p.relative_to(run.dir)) for p in paths)} in {run.dir}")


def layer_diff_table(left, right, left_name: str, right_name: str) -> Table:
    """The two networks' paper tables side by side, row by row; differing cells in yellow."""
    table = Table(title=f"{left_name} vs {right_name}", title_justify="left")
    rows = table_diff(left, right)
    for column in rows.columns:
        table.add_column(column)
    for cells, changed in rows.rows:
        table.add_row(*[f"[bold yellow]{c}[/]" if ch else c for c, ch in zip(cells, changed,
                                                                             strict=True)])
    return table


def register(app: typer.Typer) -> None:
    app.command("netadapt")(netadapt_command)
