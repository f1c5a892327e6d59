"""``nas reproduce``: a paper network as built here, or with --search found here the way the
paper found it (block search -> NetAdapt -> long fine-tune) and compared row by row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nas.cli.common import (
    DATA_SOURCES,
    Device,
    Estimator,
    Seed,
    SupernetSteps,
    check_width,
    err,
    fail,
    fmt_count,
    out,
    spec_table,
    terminate_cleanly,
    user_errors,
)
from nas.cli.netadapt import layer_diff_table
from nas.cli.progress import netadapt_events, pipeline_events, progress
from nas.spec import ArchSpec
from search_spaces import zoo

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.
if TYPE_CHECKING:
    from nas.pipeline import PipelineSettings


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    @user_errors
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
        estimator: Estimator = "supernet",
        supernet_steps: SupernetSteps = 400,
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
        reward: Annotated[str | None, typer.Option(
            help="--search: the reward preset (soft, soft-small, hard; default: the paper's, "
                 "soft for v3-large, soft-small for v3-small)")] = None,
        budget_fraction: Annotated[float, typer.Option(
            help="--search: budget and NetAdapt target as this share of the canonical "
                 "network's latency (0.85 with --reward hard: its accuracy at 0.85x its "
                 "latency)")] = 1.0,
        rescore: Annotated[int, typer.Option(
            help="--search: train the N best finalists again with the data set's final recipe "
                 "and let its validation top-1 choose (0: the search's score decides)")] = 0,
        device: Device = "cpu",
    ) -> None:
        """Emit a paper network (table, params, MAdds; spec.json, table.md, arch.txt, model.pt), or
        with --search find one here the way the paper did and compare it row by row."""
        if search:
            from nas.pipeline import PRESETS, PipelineSettings

            name = zoo.canonical_name(model)
            if name not in PRESETS:
                fail(f"--search reproduces v3-large or v3-small (the paper's two searches), not "
                     f"{name}")
            if width != 1.0:
                fail("--search reproduces the 1.0 networks; drop --width")
            if workers is not None and workers < 1:
                fail("--workers must be at least 1")
            settings = PipelineSettings(model=name, strategy=strategy, trials=trials,
                                        estimator=estimator, supernet_steps=supernet_steps,
                                        data=data, resolution=resolution, init_epochs=init_epochs,
                                        short_steps=short_steps, long_epochs=long_epochs,
                                        delta=delta, seed=seed, device=device, reward=reward,
                                        budget_fraction=budget_fraction, rescore=rescore)
            _reproduce_with_search(settings, out_dir or Path("runs") / f"{name}-search", workers)
            return
        from nas.build import build_model, count_params
        from nas.export import save, write_text
        from nas.flops import count_madds

        check_width(width)
        name = zoo.canonical_name(model)
        spec = zoo.get(name, width_mult=width)
        run_name = name if width == 1.0 else f"{name}_{round(width * 100):03d}"
        directory = out_dir or Path("runs") / run_name
        net = build_model(spec, seed=seed)
        params, madds = count_params(net), count_madds(net)

        out.print(spec_table(spec, f"{name} ×{width:g}"))
        summary = Table(show_header=True, title_justify="left")
        for column in ("", "params", "MAdds", "top-1"):
            summary.add_column(column, justify="right")
        summary.add_row("this build", f"{params:,}", fmt_count(madds), "untrained")
        paper = zoo.PAPER_FIGURES.get((name, width))
        if paper:
            summary.add_row(f"paper ({paper.source})", fmt_count(paper.params),
                            fmt_count(paper.madds), f"{paper.top1:.1f}%")
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


def _reproduce_with_search(settings: PipelineSettings, directory: Path,
                           workers: int | None) -> None:
    """Block search -> NetAdapt -> long fine-tune in ``directory`` (``workers`` search workers,
    default: this machine's), then the found network beside the canonical one."""
    from nas.data import load_data
    from nas.pipeline import reproduce_search
    from nas.search.run import default_workers

    name = settings.model
    load_data(settings.data, settings.resolution, seed=settings.seed)  # a bad --data fails
    # here, in one line (the pipeline loads it again, inside its run directory's lock)
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
                      fmt_count(row["params"]), fmt_count(row["madds"]))
    out.print(table)
    out.print(f"wrote found.json, comparison.md, summary.json to {directory}/")


