"""``nas supernet``: train the weight-sharing supernet and score sub-networks with it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.cli.common import Data, Seed, err, fail, out, resolve_spec
from nas.cli.common import user_errors as _user_errors
from nas.cli.progress import progress_bar

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Weight-sharing supernet over the MobileNetV3 space.")

Checkpoint = Annotated[Path, typer.Option("--checkpoint", help="supernet checkpoint file")]


@app.command("train")
@_user_errors
def train_command(
    budget: Annotated[int, typer.Option(help="training steps (each: largest, smallest and "
                                        "random sub-networks)")] = 400,
    data: Data = "digits-hard",
    resolution: Annotated[int, typer.Option(help="input resolution")] = 32,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 32,
    seed: Seed = 0,
    checkpoint: Checkpoint = Path("runs/supernet/supernet.pt"),
    resume: Annotated[bool, typer.Option(help="continue an interrupted training")] = False,
) -> None:
    """Train the supernet with the sandwich rule; saved every 100 steps, resumable."""
    from nas.accuracy.supernet import SupernetRecipe, train_supernet
    from nas.data import load_data
    from search_spaces.mobilenetv3 import default_space

    if checkpoint.exists() and not resume:
        fail(f"{checkpoint} exists: pass --resume to continue it, or another --checkpoint")
    recipe = SupernetRecipe(steps=budget, batch_size=batch_size, sort_every=max(1, budget // 3),
                            seed=seed)
    dataset = load_data(data, resolution, seed=seed)
    out.print(f"supernet on {dataset.describe()}")
    with progress_bar("training ") as update:
        try:
            train_supernet(default_space(), dataset, recipe, checkpoint=checkpoint,
                           on_step=lambda step, total, _loss: update("supernet", step, total))
        except KeyboardInterrupt:
            err.print(f"interrupted: the training is saved every {recipe.save_every} steps in "
                      f"{checkpoint}; add --resume to continue")
            raise typer.Exit(130) from None
    out.print(f"saved {checkpoint}")


@app.command("eval")
@_user_errors
def eval_command(
    specs: Annotated[list[str], typer.Argument(metavar="SPEC...", help="zoo names or files")],
    data: Annotated[str, typer.Option(help="the data the supernet was trained on")] =
    "digits-hard",
    checkpoint: Checkpoint = Path("runs/supernet/supernet.pt"),
    finetune_steps: Annotated[int, typer.Option(
        help="fine-tune each sub-network this many steps (lr 0.05) first; the search uses 60 "
             "(why, measured: docs/accuracy.md)")] = 0,
) -> None:
    """Validation accuracy of sub-networks with inherited weights (BN recalibrated)."""
    from nas.accuracy.supernet import SupernetEstimator, finetune_recipe, load_supernet
    from nas.data import load_data

    if finetune_steps < 0:
        fail(f"--finetune-steps must be at least 0, got {finetune_steps}")
    if not checkpoint.is_file():
        fail(f"{checkpoint}: no supernet checkpoint (train one with `nas supernet train`)")
    supernet, _ = load_supernet(checkpoint)
    dataset = load_data(data, supernet.space.input_size)
    finetune = finetune_recipe(finetune_steps) if finetune_steps else None
    estimator = SupernetEstimator(supernet, dataset, finetune=finetune)
    for arg in specs:
        result = estimator.estimate(resolve_spec(arg)[0])
        text = f"{result.score:.2f}%" if not result.failed else f"failed: {result.reason}"
        out.print(f"{arg}: {text} ({result.cost_seconds:.1f} s)")
