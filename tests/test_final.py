"""Final training (nas/accuracy/final.py) and training-time augmentation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nas.accuracy.final import FINAL_RECIPES, FinalRecipe, recipe_setting, train_final
from nas.accuracy.train import CROP_PAD, Recipe, augment_batch
from nas.build import build_model
from nas.errors import EstimatorError
from search_spaces import zoo

from .test_data import _fashion_like


def test_flip_mirrors_about_half_of_the_images():
    images = torch.arange(64 * 3 * 4 * 5, dtype=torch.float32).view(64, 3, 4, 5)
    out = augment_batch(images, "flip", torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, images, strict=True)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, images, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48
    assert torch.equal(augment_batch(images, "none", torch.Generator()), images)


def test_crop_shifts_each_image_by_at_most_the_padding():
    images = torch.rand(32, 1, 9, 9)
    out = augment_batch(images, "crop-flip", torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    moved = 0
    for o, i in zip(out, images, strict=True):
        candidates = []
        padded = torch.nn.functional.pad(i[None], (CROP_PAD,) * 4, mode="replicate")[0]
        for dy in range(2 * CROP_PAD + 1):
            for dx in range(2 * CROP_PAD + 1):
                window = padded[:, dy:dy + 9, dx:dx + 9]
                candidates += [window, window.flip(-1)]
        assert any(torch.equal(o, c) for c in candidates)
        moved += not (torch.equal(o, i) or torch.equal(o, i.flip(-1)))
    assert moved > 16  # most images are shifted
    again = augment_batch(images, "crop-flip", torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # drawn from the generator only


def test_recipe_refuses_an_unknown_augmentation():
    with pytest.raises(EstimatorError, match="augment must be one of none, flip, crop-flip"):
        Recipe(augment="mixup")


def test_train_final_reports_test_and_val_and_is_deterministic(tmp_path, monkeypatch):
    _fashion_like(tmp_path / "fm", per_class=8, test_per_class=3)
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    final = dataclasses.replace(
        FINAL_RECIPES["fashion-mnist"], resolution=16, train_images=40,
        recipe=dataclasses.replace(FINAL_RECIPES["fashion-mnist"].recipe, epochs=1,
                                   batch_size=16))
    data = final.load()
    assert len(data.y_train) == 40 and len(data.y_test) == 30  # the test split stays whole
    spec = zoo.get("v3-small", width_mult=0.5).scaled()
    first = train_final(spec, final, 3, data=data, threads=1)
    again = train_final(spec, final, 3, data=data, threads=1)
    assert (first.test_top1, first.val_top1) == (again.test_top1, again.val_top1)
    assert first.steps == 2 and first.seed == 3
    assert first.test_top1 * 30 / 100 == pytest.approx(round(first.test_top1 * 30 / 100))


def test_a_final_recipe_needs_a_test_split_and_seeds():
    digits = FinalRecipe(name="digits", data="digits", resolution=8, recipe=Recipe(epochs=1))
    with pytest.raises(EstimatorError, match="no test split"):
        train_final(zoo.get("v3-small"), digits, 0)
    with pytest.raises(EstimatorError, match="at least one seed"):
        dataclasses.replace(digits, seeds=())


def test_a_trial_names_what_it_changes_and_keeps_the_rest():
    """A trial's results must never pass for the recipe's own: every change is in its name."""
    base = FINAL_RECIPES["fashion-mnist"]
    trial = base.trial(epochs=base.recipe.epochs + 2, resolution=56, train_images=20000, seeds=2)
    assert trial.name == (f"{base.name} ({base.recipe.epochs + 2} epochs, 56 px, "
                          f"20,000 training images)")
    assert (trial.recipe.epochs, trial.resolution, trial.train_images, trial.seeds) == \
        (base.recipe.epochs + 2, 56, 20000, (0, 1))
    assert trial.recipe.lr == base.recipe.lr and trial.data == base.data
    same = base.trial(epochs=base.recipe.epochs, resolution=base.resolution, seeds=5)
    assert same.name == base.name and same.seeds == (0, 1, 2, 3, 4)  # seeds are not a change
    with pytest.raises(EstimatorError, match="train_images must be at least 1"):
        base.trial(train_images=0)


def test_a_trial_overrides_recipe_fields_and_dropout_and_names_them(tmp_path, monkeypatch):
    base = FINAL_RECIPES["fashion-mnist"]
    settings = dict(map(recipe_setting, ["label_smoothing=0.1", "weight_decay=1e-5"]))
    assert settings == {"label_smoothing": 0.1, "weight_decay": 1e-5}
    trial = base.trial(dropout=0.2, **settings)
    assert trial.name == f"{base.name} (label_smoothing=0.1, weight_decay=1e-05, dropout=0.2)"
    assert (trial.recipe.label_smoothing, trial.recipe.weight_decay, trial.dropout) == \
        (0.1, 1e-5, 0.2)
    assert trial.recipe.lr == base.recipe.lr and base.to_dict()["dropout"] == 0.0
    assert trial.to_dict()["dropout"] == 0.2
    # without a head dropout of its own, a recipe's dict has none (earlier results' keys)
    assert "dropout" not in dataclasses.replace(base, dropout=None).to_dict()
    assert base.trial(label_smoothing=base.recipe.label_smoothing).name == base.name
    for text, message in [("lr=fast", "lr takes float"), ("momentum=0.8", "no recipe field"),
                          ("label_smoothing=1", "label_smoothing in"), ("lr", "KEY=VALUE"),
                          ("channels_last=maybe", "channels_last takes bool")]:
        with pytest.raises(EstimatorError, match=message):
            base.trial(**dict([recipe_setting(text)]))
    with pytest.raises(EstimatorError, match="dropout must be in"):
        base.trial(dropout=1.0)
    # the dropout reaches the head of the network that is trained
    _fashion_like(tmp_path / "fm", per_class=8, test_per_class=3)
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    small = dataclasses.replace(  # None: each network's own head dropout
        base, resolution=16, dropout=None,
        recipe=dataclasses.replace(base.recipe, epochs=1, batch_size=16))
    spec = zoo.get("v3-small", width_mult=0.5).scaled()
    built = []
    monkeypatch.setattr("nas.accuracy.final.build_model",
                        lambda s, seed: built.append(s.head.dropout) or build_model(s, seed=seed))
    for dropout in (None, 0.0, 0.5):
        train_final(spec, small.trial(dropout=dropout), 0, threads=1)
    assert built == [spec.head.dropout, 0.0, 0.5]
