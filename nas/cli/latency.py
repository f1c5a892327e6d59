"""``nas latency``: profile this device, predict, break a network down, validate, import OFA."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from typer.core import TyperGroup

from latency_models.layers import BlockLayer, HeadLayer
from nas.cli.common import LATENCY_BACKENDS, Seed, fail, out, resolve_spec
from nas.cli.common import user_errors as _user_errors
from nas.cli.progress import progress_bar

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.


class _SpecFallbackGroup(TyperGroup):
    """``nas latency SPEC`` is ``nas latency show SPEC``."""

    def parse_args(self, ctx, args):  # noqa: ANN001 - click's signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_SpecFallbackGroup, no_args_is_help=True, add_completion=False,
                  help="Latency on this device: profile, predict, show a breakdown, validate.")

Backend = Annotated[str, typer.Option(help=LATENCY_BACKENDS)]
Threads = Annotated[int, typer.Option(help="intra-op threads (1: the paper's single core)")]
Batch = Annotated[int, typer.Option(help="batch size")]
Resolution = Annotated[int, typer.Option(help="input resolution")]
TablePath = Annotated[Path | None, typer.Option("--table", help="table file (default: the "
                                                "cache entry of this device)")]
NoProfile = Annotated[bool, typer.Option("--no-profile", help="never measure; fail if the "
                                         "table is missing, stale or incomplete")]


def _setup(backend: str, threads: int, batch: int, resolution: int):
    from latency_models.store import LatencySetup

    return LatencySetup(backend, threads, batch, resolution)


@app.command("profile")
@_user_errors
def profile_command(backend: Backend = "torch", threads: Threads = 1, batch: Batch = 1,
                    resolution: Resolution = 224, table: TablePath = None,
                    force: Annotated[bool, typer.Option(help="measure again from scratch")] = False,
                    ) -> None:
    """Profile every layer of the MobileNetV3 space on this device, then calibrate.

    Resumable: an interrupted profile keeps every finished chunk; run it again to go on.
    """
    from latency_models.store import load_predictor
    from search_spaces.mobilenetv3 import default_space

    setup = _setup(backend, threads, batch, resolution)
    if force:
        from latency_models.lut import cached_table_path

        target = table or cached_table_path(setup.fingerprint)
        target.unlink(missing_ok=True)
    out.print(f"device: {setup.fingerprint}")
    start = time.perf_counter()
    with progress_bar() as update:
        predictor, path = load_predictor(setup, default_space(resolution), path=table,
                                         progress=update)
    cal = predictor.calibration
    out.print(f"{len(predictor.table)} layers in {path} ({time.perf_counter() - start:.0f} s)")
    out.print(f"calibration: latency = {cal.overhead_ms:.3f} ms + {cal.scale:.3f} × sum "
              f"+ {cal.per_block_ms:.3f} ms × blocks "
              f"(max error on its {predictor.table.calibration['archs']} networks "
              f"{predictor.table.calibration['max_abs_error']:.1%})")


def _predictor_for(specs, backend, threads, batch, table, no_profile):
    from latency_models.store import load_predictor

    resolutions = {spec.input_size for spec in specs}
    if len(resolutions) > 1:
        fail(f"the specs have different input sizes {sorted(resolutions)}; predict one at a time")
    setup = _setup(backend, threads, batch, resolutions.pop())
    with progress_bar() as update:
        predictor, _ = load_predictor(setup, specs=specs, path=table, no_profile=no_profile,
                                      progress=update)
    return predictor, setup


@app.command("predict")
@_user_errors
def predict_command(specs: Annotated[list[str], typer.Argument(metavar="SPEC...",
                                                               help="zoo names or spec files")],
                    backend: Backend = "torch", threads: Threads = 1, batch: Batch = 1,
                    table: TablePath = None, no_profile: NoProfile = False) -> None:
    """Predicted latency of one or more networks."""
    from latency_models.predictor import LUTPredictor

    resolved = [resolve_spec(arg)[0] for arg in specs]
    predictor, setup = _predictor_for(resolved, backend, threads, batch, table, no_profile)
    plain = LUTPredictor.plain_sum(predictor.table)
    result = Table(title=f"predicted latency on {setup.fingerprint}", title_justify="left")
    for column in ("spec", "blocks", "predicted ms", "plain table sum ms"):
        result.add_column(column, justify="left" if column == "spec" else "right")
    for arg, spec, ms, raw in zip(specs, resolved, predictor.predict(resolved),
                                  plain.predict(resolved), strict=True):
        result.add_row(arg, str(len(spec.blocks)), f"{ms:.2f}", f"{raw:.2f}")
    out.print(result)


@app.command("show")
@_user_errors
def show_command(spec_arg: Annotated[str, typer.Argument(metavar="SPEC")],
                 measure: Annotated[bool, typer.Option(help="also measure end to end")] = False,
                 backend: Backend = "torch", threads: Threads = 1, batch: Batch = 1,
                 table: TablePath = None, no_profile: NoProfile = False) -> None:
    """Per-layer breakdown of a network's predicted latency (``nas latency SPEC``)."""
    from latency_models.profile import measure_specs

    spec, _ = resolve_spec(spec_arg)
    predictor, setup = _predictor_for([spec], backend, threads, batch, table, no_profile)
    parts = predictor.breakdown(spec)
    total = float(predictor.predict([spec])[0])
    result = Table(title=f"{spec.name} on {setup.fingerprint}", title_justify="left")
    for column in ("#", "layer", "input", "ms", "share"):
        result.add_column(column, justify="left" if column in ("layer", "input") else "right")
    for index, (layer, ms) in enumerate(parts):
        if isinstance(layer, BlockLayer):
            name = f"{layer.kind} {layer.kernel}x{layer.kernel} exp {layer.exp_ch} -> " \
                   f"{layer.out_ch}{' SE' if layer.se_ch else ''} {layer.act} s{layer.stride}"
        elif isinstance(layer, HeadLayer):
            name = "head"
        else:
            name = f"stem conv {layer.kernel}x{layer.kernel} -> {layer.out_ch}"
        result.add_row(str(index), name, f"{layer.res}²×{layer.in_ch}", f"{ms:.3f}",
                       f"{ms / total:.1%}")
    overhead = predictor.calibration.overhead_ms
    result.add_row("", "per-network overhead (fitted)", "", f"{overhead:.3f}",
                   f"{overhead / total:.1%}")
    out.print(result)
    out.print(f"predicted: {total:.2f} ms")
    if measure:
        with progress_bar() as update:
            timing = measure_specs([spec], setup.backend, setup.settings, rounds=40,
                                   on_progress=lambda d: update("measurement", d, 1))[0]
        out.print(f"measured:  {timing.min_ms:.2f} ms (min of 40 runs; median "
                  f"{timing.median_ms:.2f} ms); prediction error "
                  f"{total / timing.min_ms - 1:+.1%}")


@app.command("validate")
@_user_errors
def validate_command(archs: Annotated[int, typer.Option(help="random networks of the space")] = 50,
                     rounds: Annotated[int, typer.Option(help="interleaved rounds")] = 30,
                     backend: Backend = "torch", threads: Threads = 1,
                     seed: Seed = 1,
                     ) -> None:
    """Predicted against measured latency on random networks and the zoo (see bench/)."""
    from latency_models.validate import print_report, validate

    setup = _setup(backend, threads, 1, 224)
    with progress_bar() as update:
        report = validate(setup, archs=archs, rounds=rounds, seed=seed, progress=update)
    print_report(report, out)


@app.command("import-ofa")
@_user_errors
def import_ofa_command(path: Annotated[Path, typer.Argument(metavar="FILE")],
                       out_path: Annotated[Path | None, typer.Option("--out", help="where to "
                                           "write the table")] = None) -> None:
    """Convert a Once-for-All latency table (YAML) into this project's format."""
    from latency_models.lut import import_ofa_table

    if not path.is_file():
        fail(f"{path}: no such file")
    table = import_ofa_table(path)
    target = out_path or Path("runs") / "latency" / f"{path.stem}.json"
    table.save(target)
    out.print(f"imported {len(table)} entries from {path} into {target}; predict with "
              f"`nas latency predict SPEC --table {target} --no-profile`")
