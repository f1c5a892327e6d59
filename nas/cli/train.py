"""``nas train``: train a network briefly from scratch on the proxy data."""

from __future__ import annotations

from typing import Annotated

import typer

from nas.cli.common import Data, Device, Seed, fail, out, resolve_spec, user_errors
from nas.cli.progress import progress_bar

# Library modules that import torch are imported inside the commands: see nas/cli/app.py.


def register(app: typer.Typer) -> None:
    @app.command("train")
    @user_errors
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
