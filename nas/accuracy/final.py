"""Final training: the fixed recipe that reports a network's *test* accuracy (docs/accuracy.md).

Search-time estimators score on the validation split; a final report trains the network from
scratch with a named, frozen ``FinalRecipe`` and evaluates it once on the data set's official
test images. ``FINAL_RECIPES[name]`` is the recipe of a data set; benchmarks that compare
networks (``bench/v3_headtohead.py``) train every network with it and several seeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.accuracy.base import adapt_spec
from nas.accuracy.train import Recipe, evaluate, recalibrate_bn, train_model
from nas.build import build_model
from nas.data import ImageData, load_data
from nas.errors import EstimatorError
from nas.flops import count_madds
from nas.spec import ArchSpec
from nas.threads import exit_with_parent, torch_threads, training_threads

__all__ = ["FINAL_RECIPES", "FinalRecipe", "FinalScore", "Trainings", "final_recipe",
           "recipe_setting", "train_all", "train_final", "training_key"]


@dataclass(frozen=True)
class FinalRecipe:
    """A data set, how it is presented (resolution, training subset) and the training recipe.

    ``train_images``: a stratified, seeded subset of the training split (None: all of it);
    the validation and test splits are always whole. ``dropout``: the head's dropout for every
    network trained (None: each spec's own, 0.2 for the V3 family). ``seeds``: the training
    seeds a report uses (each seed is the recipe's ``seed``: initial weights, batch order,
    augmentation).
    """

    name: str
    data: str
    resolution: int
    recipe: Recipe
    seeds: tuple[int, ...] = (0, 1, 2)
    train_images: int | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        if not self.seeds:
            raise EstimatorError("a final recipe needs at least one seed")
        if self.train_images is not None and self.train_images < 1:
            raise EstimatorError(f"train_images must be at least 1, got {self.train_images}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise EstimatorError(f"dropout must be in [0, 1), got {self.dropout}")

    def load(self) -> ImageData:
        """The data as this recipe trains on it (train subset applied, test split whole)."""
        data = load_data(self.data, self.resolution)
        return data.subset(train=self.train_images) if self.train_images else data

    def trial(self, *, epochs: int | None = None, resolution: int | None = None,
              seeds: int | None = None, train_images: int | None = None,
              dropout: float | None = None, **recipe: Any) -> FinalRecipe:
        """This recipe with other epochs, resolution, training subset, head dropout or
        ``Recipe`` fields (``recipe``: e.g. ``label_smoothing=0.0``), all named in ``name`` so
        that its results never pass for the recipe's own; or its first ``seeds`` seeds (more:
        0, 1, 2, ...). An unknown or invalid field is an ``EstimatorError``."""
        changes: dict[str, Any] = {}
        tags = []
        fields = {f.name for f in dataclasses.fields(Recipe)} - {"seed", "epochs"}
        unknown = sorted(set(recipe) - fields)
        if unknown:
            raise EstimatorError(f"no recipe field {', '.join(map(repr, unknown))} (known: "
                                 f"{', '.join(sorted(fields))})")
        recipe = {k: v for k, v in recipe.items() if v != getattr(self.recipe, k)}
        if epochs is not None and epochs != self.recipe.epochs:
            recipe["epochs"] = epochs
            tags.append(f"{epochs} epochs")
        if recipe:
            changes["recipe"] = dataclasses.replace(self.recipe, **recipe)
            tags.extend(f"{k}={v}" for k, v in recipe.items() if k != "epochs")
        if dropout is not None and dropout != self.dropout:
            changes["dropout"] = dropout
            tags.append(f"dropout={dropout}")
        if resolution is not None and resolution != self.resolution:
            changes["resolution"] = resolution
            tags.append(f"{resolution} px")
        if train_images is not None and train_images != self.train_images:
            changes["train_images"] = train_images
            tags.append(f"{train_images:,} training images")
        if seeds is not None:
            changes["seeds"] = (self.seeds[:seeds] if seeds <= len(self.seeds)
                                else tuple(range(seeds)))
        if tags:
            changes["name"] = f"{self.name} ({', '.join(tags)})"
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "data": self.data, "resolution": self.resolution,
               "train_images": self.train_images, "seeds": list(self.seeds),
               "recipe": self.recipe.to_dict()}
        if self.dropout is not None:  # absent otherwise: earlier results keep their keys
            out["dropout"] = self.dropout
        return out


@dataclass(frozen=True)
class FinalScore:
    """One final training: test and validation top-1 (%) and its wall time."""

    seed: int
    test_top1: float
    val_top1: float
    seconds: float
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Fashion-MNIST at its native 28x28 (grey as three channels), the whole 50,000-image training
# split, 3 epochs of SGD-Nesterov with a short warm-up and cosine decay, random 2-pixel shifts
# and left-right flips, and no regulariser (no label smoothing, weight decay or head dropout):
# three epochs underfit, and the regularisers cost the wider networks what they would gain
# (bench/results/trials/: the only recipe tried whose chain separates two of its three steps).
# Four seeds. Chosen so that V3-Small trains in minutes on one core.
FINAL_RECIPES: dict[str, FinalRecipe] = {
    "fashion-mnist": FinalRecipe(
        name="fashion-mnist", data="fashion-mnist", resolution=28,
        recipe=Recipe(epochs=3, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=0.0,
                      label_smoothing=0.0, warmup_epochs=0.3, augment="crop-flip"),
        seeds=(0, 1, 2, 3), dropout=0.0),
}


def recipe_setting(text: str) -> tuple[str, Any]:
    """``"label_smoothing=0"`` -> ``("label_smoothing", 0.0)``: one ``Recipe`` field, its value
    converted to the field's type (a command line's ``--set``). Bad text is an
    ``EstimatorError``; ``FinalRecipe.trial`` checks the field and the value's range."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    types = {f.name: str(f.type) for f in dataclasses.fields(Recipe)}
    if not sep or not key or not value:
        raise EstimatorError(f"a recipe setting is KEY=VALUE, got {text!r}")
    kind = types.get(key, "str")
    try:
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return key, value.lower() in ("true", "1")
        if kind.startswith("int"):
            return key, None if value.lower() == "none" and "None" in kind else int(value)
        if kind == "float":
            return key, float(value)
    except ValueError:
        raise EstimatorError(f"{key} takes {kind.replace(' | None', '')}, got {value!r}") from None
    return key, value


def final_recipe(name: str) -> FinalRecipe:
    """``FINAL_RECIPES[name]``; an unknown name is an ``EstimatorError`` naming the known."""
    try:
        return FINAL_RECIPES[name]
    except KeyError:
        raise EstimatorError(f"no final recipe for {name!r} (known: "
                             f"{', '.join(FINAL_RECIPES)})") from None


def train_final(spec: ArchSpec, final: FinalRecipe, seed: int, *, data: ImageData | None = None,
                device: str = "cpu", threads: int | None = None) -> FinalScore:
    """Train ``spec`` from scratch with ``final`` and ``seed``; test and validation top-1.

    ``data``: ``final.load()`` when not given (pass it to train several networks on one copy).
    A diverging training raises ``TrainingFailed``: a final report has no failed entries.
    """
    data = data if data is not None else final.load()
    if not data.has_test:
        raise EstimatorError(f"{data.name} has no test split: a final recipe needs one")
    recipe = dataclasses.replace(final.recipe, seed=seed)
    spec = adapt_spec(spec, data.num_classes, data.resolution, data.channels)
    if final.dropout is not None:
        spec = dataclasses.replace(spec, head=dataclasses.replace(spec.head,
                                                                  dropout=final.dropout))
    start = time.perf_counter()
    with torch_threads(threads or training_threads()):
        torch.manual_seed(seed)  # dropout draws from the global generator
        model = build_model(spec, seed=seed)
        summary = train_model(model, data, recipe, device=device)
        recalibrate_bn(model, data, device=device, channels_last=recipe.channels_last,
                       seed=seed)
        test = evaluate(model, data, device=device, channels_last=recipe.channels_last,
                        split="test")
        val = evaluate(model, data, device=device, channels_last=recipe.channels_last)
    return FinalScore(seed=seed, test_top1=test, val_top1=val,
                      seconds=round(time.perf_counter() - start, 1), steps=summary["steps"])



def training_key(spec: ArchSpec, final: FinalRecipe, seed: int) -> str:
    """What decides a training's result: the architecture and the recipe's settings (not
    their names), and the seed; not how many seeds the recipe has (a run with more seeds
    reuses the first ones)."""
    arch = {k: v for k, v in spec.to_dict().items() if k not in ("name", "input_size")}
    recipe = {k: v for k, v in final.to_dict().items() if k not in ("name", "seeds")}
    text = json.dumps([arch, recipe, seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Trainings:
    """Finished final trainings, one JSON line each in ``path``, appended as they finish
    (``reuse``: those already there count; otherwise the file starts empty)."""

    def __init__(self, path: Path, reuse: bool):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        if reuse and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["key"]] = row
        elif self.path.exists():
            self.path.unlink()

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def add(self, row: dict) -> None:
        self.rows[row["key"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as sink:
            sink.write(json.dumps(row) + "\n")


_DATA: dict = {}  # per worker process: the recipe's data, loaded once


def _train_one(spec: ArchSpec, final: FinalRecipe, seed: int) -> dict:
    """One training (in a worker process: one torch thread)."""
    if final.name not in _DATA:
        _DATA[final.name] = final.load()
    return train_final(spec, final, seed, data=_DATA[final.name], threads=1).to_dict()


def train_all(networks: list[ArchSpec], final: FinalRecipe, trainings: Trainings,
              deadline: float | None, workers: int = 1, heartbeat: float = 60.0, *,
              seeds: tuple[int, ...] | None = None,
              log: Callable[[str], None] = lambda line: print(line, flush=True)) -> bool:
    """Train every network with every seed (``seeds``, else the recipe's) not yet in
    ``trainings`` on ``workers`` processes (one thread each), seed by seed (a partial run then
    has every network at the first seeds), largest first within a seed. False if
    ``deadline`` (``time.monotonic()``) stopped it. Every ``heartbeat`` seconds without a
    finished training, one ``log`` line says what is training."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    seeds = final.seeds if seeds is None else seeds
    todo = [(spec, seed) for seed in seeds
            for spec in sorted(networks, key=lambda s: -count_madds(s))
            if not trainings.get(training_key(spec, final, seed))]
    if not todo:
        return True
    total, done, started = len(todo), 0, time.monotonic()
    with ProcessPoolExecutor(min(workers, len(todo)),
                             mp_context=multiprocessing.get_context("spawn"),
                             initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        running: dict = {}
        while todo or running:
            while todo and len(running) < workers:
                if deadline is not None and time.monotonic() > deadline:
                    todo = []
                    break
                spec, seed = todo.pop(0)
                running[pool.submit(_train_one, spec, final, seed)] = (spec, seed)
            if not running:
                break
            finished, _ = wait(running, timeout=heartbeat, return_when=FIRST_COMPLETED)
            if not finished:  # a training takes minutes: say the run is alive
                now = ", ".join(f"{spec.name} seed {seed}" for spec, seed in running.values())
                log(f"  training {now}; {done} of {total} done, "
                    f"{(time.monotonic() - started) / 60:.1f} min")
            for future in finished:
                spec, seed = running.pop(future)
                score = future.result()
                done += 1
                trainings.add({"key": training_key(spec, final, seed), "name": spec.name,
                               "recipe": final.name, **score,
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
                log(f"  {spec.name:<28} seed {seed}: test {score['test_top1']:.2f}%, val "
                    f"{score['val_top1']:.2f}% ({score['seconds']:.0f} s)")
    return all(trainings.get(training_key(spec, final, seed))
               for seed in seeds for spec in networks)
