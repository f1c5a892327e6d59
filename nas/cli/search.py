"""``nas search`` (also ``nas-search``) and ``nas space``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nas.cli.common import (
    Data,
    Device,
    Estimator,
    LatencyBackend,
    LatencyTable,
    LatencyThreads,
    Recalibrate,
    RunsDir,
    Seed,
    SupernetSteps,
    err,
    fail,
    out,
    terminate_cleanly,
    user_errors,
)
from nas.cli.progress import progress, progress_bar
from nas.errors import BudgetError
from nas.search.budget import parse_budget
from search_spaces import zoo

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.

STRATEGY_HELP = "random, evolution, tpe, nsga2, rl (REINFORCE) or ppo"


@user_errors
def search_command(
    budget: Annotated[str, typer.Option(help="latency budget, e.g. 60ms or 0.06s")] = "60ms",
    strategy: Annotated[str, typer.Option(help=STRATEGY_HELP)] = "evolution",
    trials: Annotated[int, typer.Option(help="candidates to score")] = 200,
    reward: Annotated[str, typer.Option(help="soft (V3-Large, w=-0.07), soft-small (V3-Small, "
                                        "w=-0.15), hard, or pareto")] = "soft",
    seed: Seed = 0,
    seed_arch: Annotated[str | None, typer.Option(
        help="start from this architecture: mnasnet-a1, v3-large, v3-small or a spec file")]
        = None,
    population: Annotated[int | None, typer.Option(
        help="evolution: population size (default 100, as Once-for-All)")] = None,
    stage_moves: Annotated[float, typer.Option(
        help="evolution: probability that a mutant's stage gets one value of one block option "
             "(kernel, ratio, se or act) in all its blocks (default 0: Once-for-All's "
             "per-decision mutation)")] = 0.0,
    data: Data = "digits-hard",
    resolution: Annotated[int, typer.Option(
        help="resolution of the proxy task (the ranking benchmark's: 32)")] = 32,
    estimator: Estimator = "supernet",
    epochs: Annotated[int, typer.Option(help="--estimator train: epochs per candidate")] = 1,
    finetune_steps: Annotated[int | None, typer.Option(
        help="supernet estimators: fine-tune each inherited sub-network this many steps "
             "(lr 0.05) before scoring it [default: 60; why: docs/accuracy.md]")] = None,
    supernet_steps: SupernetSteps = 400,
    device: Device = "cpu",
    workers: Annotated[int | None, typer.Option(
        help="candidates scored at once (default: one per core, at most 8)")] = None,
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="--executor ray: the cluster to use, HEAD:PORT as `ray start --head` prints it "
             "(default: a Ray started here)")] = None,
    name: Annotated[str | None, typer.Option(help="run name (default from the settings)")]
        = None,
    runs_dir: RunsDir = Path("runs"),
    resume: Annotated[bool, typer.Option(help="continue the run NAME (it must exist)")] = False,
    overwrite: Annotated[bool, typer.Option(help="start the run NAME again from scratch")]
        = False,
    latency_backend: LatencyBackend = "torch",
    latency_threads: LatencyThreads = 1,
    table: LatencyTable = None,
    recalibrate: Recalibrate = True,
    report: Annotated[bool, typer.Option(help="write best.*, pareto.png and report.md")] = True,
) -> None:
    """Block-wise architecture search under a latency budget (MnasNet reward).

    Every finished trial lands in runs/NAME/study.db (Optuna storage; `optuna-dashboard
    runs/NAME/study.db`); an interrupted run continues where it stopped when started again.
    """
    terminate_cleanly()
    budget_ms = parse_budget(budget)
    if resume and overwrite:
        fail("--resume and --overwrite exclude each other")
    options = {"population": population} if population is not None else {}
    if population is not None and strategy != "evolution":
        fail("--population is an option of --strategy evolution")
    if population is not None and population < 2:
        fail(f"--population must be at least 2, got {population}")
    if stage_moves and strategy != "evolution":
        fail("--stage-moves is an option of --strategy evolution")
    if not 0 <= stage_moves <= 1:
        fail(f"--stage-moves is a probability in [0, 1], got {stage_moves}")
    if stage_moves:
        options["stage_prob"] = stage_moves
    if executor not in ("local", "ray"):
        fail(f"--executor must be local or ray, got {executor!r}")
    # Imported after the checks above, which thus answer a mistyped flag without paying for
    # torch's import (see nas/cli/app.py).
    from nas.search.objective import AccuracyJob
    from nas.search.run import SearchRun, SearchSettings, default_workers, resolve_seed_arch
    from search_spaces.mobilenetv3 import default_space

    settings = SearchSettings(
        budget_ms=budget_ms, reward=reward, strategy=strategy, trials=trials, seed=seed,
        seed_arch=seed_arch, strategy_options=options,
        job=AccuracyJob(data=data, resolution=resolution, estimator=estimator, epochs=epochs,
                        finetune_steps=finetune_steps, supernet_steps=supernet_steps,
                        seed=seed, device=device),
        latency_backend=latency_backend, latency_threads=latency_threads, table=table,
        recalibrate=recalibrate)
    workers = workers or default_workers()
    if workers < 1:
        fail("--workers must be at least 1")
    # The order of work: check every input (seconds), then whether the budget can be met at
    # all, then the latency table (profiled the first time), then the supernet (trained the
    # first time), then the search. A mistake costs seconds, not the minutes of the later steps.
    if seed_arch:
        resolve_seed_arch(seed_arch, default_space())
    settings.job.validate()
    _check_reachable(settings)
    name = name or f"{strategy}-{budget_ms:g}ms-{reward}-seed{seed}"
    run_dir = runs_dir / name
    with progress_bar("") as update:
        run = SearchRun(settings, run_dir, overwrite=overwrite, resume=resume,
                        progress=update)
    with run:  # no other process writes to run_dir meanwhile
        _prepare_estimator(run)
        _search(run, trials, workers, executor, ray_address, report)


# A budget below this share of the smallest network's measured latency is refused before the
# table is profiled. Timed alone, end to end, that network may be a little slower than the
# space's true minimum (the table's bound, checked exactly once the table exists).
QUICK_CHECK_MARGIN = 0.8


def _check_reachable(settings) -> None:
    """Refuse a budget no network of the space can meet, in seconds: from the cached latency
    table if there is one, else by timing the space's smallest network alone."""
    from latency_models.store import LatencySetup, fastest_reachable
    from search_spaces.mobilenetv3 import default_space

    space = default_space()
    setup = LatencySetup(settings.latency_backend, settings.latency_threads,
                         resolution=space.input_size)
    fastest, predicted = fastest_reachable(setup, space, settings.table)
    if settings.budget_ms < fastest * (1.0 if predicted else QUICK_CHECK_MARGIN):
        how = "predicted from the latency table" if predicted else \
            "its smallest network, measured end to end"
        raise BudgetError(f"the budget {settings.budget_ms:g} ms is below the fastest network "
                          f"this space reaches on this device: {fastest:.2f} ms ({how}); "
                          f"raise the budget")


def _search(run, trials: int, workers: int, executor: str, ray_address: str | None,
            report: bool) -> None:
    from nas.search.report import write_outputs

    settings, run_dir, budget_ms = run.settings, run.dir, run.budget_ms
    stored = len(run.store.history())
    out.print(f"run {run_dir}: {settings.strategy}, {trials} trials, budget {budget_ms:g} ms, "
              f"{run.reward.describe()}")
    out.print(f"accuracy: {settings.job.describe()}; {workers} worker(s), {executor}")
    out.print(f"latency: {run.predictor.table.fingerprint.describe()}; fastest in the space "
              f"{run.info['min_latency_ms']:.2f} ms")
    if stored:
        out.print(f"continuing: {stored} finished trial(s) in storage are replayed, not "
                  f"trained again")

    best = {"result": None}
    unit = settings.job.unit
    with progress() as bar:
        task = bar.add_task("search", total=trials)

        def on_result(result, done: int, total: int) -> None:
            if result.ok and (best["result"] is None or result.reward > best["result"].reward):
                best["result"] = result
            b = best["result"]
            text = f"best {b.accuracy:.4g}{unit} @ {b.latency_ms:.1f} ms" if b else \
                "no result yet"
            bar.update(task, completed=done, description=f"search ({text})")

        try:
            results = run.run(workers=workers, on_result=on_result, executor=executor,
                              ray_address=ray_address)
        except KeyboardInterrupt:
            bar.stop()
            saved = len(run.store.history())
            err.print(f"interrupted: {saved} finished trial(s) are saved in {run.dir}; run the "
                      f"same command again to continue")
            raise typer.Exit(130) from None
    if not report:
        return
    with progress_bar("") as update:
        summary = write_outputs(run, results, progress=update)
    _print_summary(run, results, summary, summary["best"])


def _prepare_estimator(run) -> None:
    """Build the run's estimator before the search starts; for ``--estimator supernet`` that
    trains its supernet the first time, with progress (an interruption keeps the last
    checkpoint, and the next search continues it)."""
    job = run.settings.job
    path, trained = job.supernet_path(), []
    with progress_bar("training ") as update:
        def on_step(step: int, total: int, _loss: float) -> None:
            if not trained:
                trained.append(step)
                out.print(f"training the search's supernet on {job.data} at "
                          f"{job.resolution}px ({total} steps), once for this data set; kept "
                          f"in {path}")
            update("supernet", step, total)

        try:
            run.prepare(on_step=on_step)
        except KeyboardInterrupt:
            err.print(f"interrupted: the supernet's training is saved every "
                      f"{job.supernet_recipe.save_every} steps in {path}; the next search "
                      f"continues from there")
            raise typer.Exit(130) from None
    if path is not None and not trained:
        out.print(f"supernet: {path}")


def _print_summary(run, results, summary, best) -> None:
    from nas.search.report import proxy_label

    failed = summary["failed"]
    out.print(f"{len(results)} trials ({failed} failed); outputs in {run.dir}")
    if best is None:
        fail("no candidate finished; the failures are recorded in study.db")
    table = Table(title=f"Best architecture: trial {best.index} (reward {best.reward:.3f})",
                  title_justify="left")
    for column in ("network", "params", "MAdds", "predicted ms", "measured ms",
                   proxy_label(run.settings.job.unit)):
        table.add_column(column, justify="left" if column == "network" else "right")
    for row in summary["rows"]:
        accuracy = f"{row['accuracy']:.4g}{run.settings.job.unit}" \
            if row["accuracy"] is not None else "failed"
        table.add_row(row["network"], f"{row['params'] / 1e6:.2f}M",
                      f"{row['madds'] / 1e6:.0f}M", f"{row['predicted_ms']:.2f}",
                      f"{row['measured_ms']:.2f}", accuracy)
    out.print(table)
    out.print(f"files: best.json best.md best.pt best.py pareto.png report.md study.db "
              f"(optuna-dashboard {run.dir / 'study.db'})")


@user_errors
def space_command(
    resolution: Annotated[int, typer.Option(help="input resolution")] = 224,
) -> None:
    """Describe the block-wise MobileNetV3 search space: decisions and size."""
    # numpy, ~0.05 s to import (-X importtime): not for `nas --help`
    from search_spaces.mobilenetv3 import default_space

    space = default_space(resolution)
    table = Table(title=f"{space.name} space at {resolution}x{resolution}", title_justify="left")
    for column in ("stage", "stride", "depths", "widths", "kernels", "expansion ratios",
                   "SE", "act"):
        table.add_column(column)
    for i, stage in enumerate(space.stages):
        table.add_row(str(i), str(stage.stride), _join(stage.depths), _join(stage.widths),
                      _join(stage.kernels), _join(stage.exp_ratios),
                      _join("on" if s else "off" for s in stage.se), _join(stage.acts))
    out.print(table)
    out.print(f"stem widths {_join(space.stem_widths)} ({_join(space.stem_acts)}); "
              f"heads: {', '.join(_head(h) for h in space.heads)}")
    out.print(f"{len(space.decisions)} decisions; {space.size():.3e} architectures "
              f"(10^{space.log10_size():.1f})")
    for name in ("v3-large", "v3-small", "mnasnet-a1"):
        spec = dataclasses.replace(zoo.get(name, input_size=resolution), se_style="v3")
        out.print(f"contains {name}: {'yes' if space.contains(spec) else 'no'}")


def _join(values) -> str:
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _head(head) -> str:
    hidden = f" -> fc {head.hidden_ch}" if head.hidden_ch else ""
    return f"conv {head.conv_ch}{hidden}"


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
    app.command("space")(space_command)
