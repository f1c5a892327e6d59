"""Accuracy estimators: determinism, failures as results, zero-cost proxies' properties."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nas.accuracy import AccuracyEstimator, Estimate, adapt_spec
from nas.accuracy.train import Recipe, TrainEstimator, recalibrate_bn, train_model
from nas.accuracy.zero_cost import PROXIES, ZeroCostEstimator, naswot, synflow
from nas.build import build_model
from nas.data import load_data
from search_spaces import zoo

from .test_cli import run


@pytest.fixture(scope="module")
def digits16():
    return load_data("digits", resolution=16)


def small_spec():
    return zoo.get("mobilenet_v3_small")


def test_adapt_spec_keeps_the_architecture():
    spec = adapt_spec(zoo.get("mobilenet_v3_large"), 10, 32, 1)
    assert (spec.num_classes, spec.input_size, spec.stem.in_ch) == (10, 32, 1)
    assert spec.blocks == zoo.get("mobilenet_v3_large").blocks


def test_training_is_deterministic_and_learns(digits16):
    recipe = Recipe(epochs=2, batch_size=64, seed=3)
    first = TrainEstimator(digits16, recipe, threads=1).estimate(small_spec())
    second = TrainEstimator(digits16, recipe, threads=1).estimate(small_spec())
    assert not first.failed, first.reason
    assert first.score == second.score
    assert first.details["final_loss"] == second.details["final_loss"]
    assert first.details["recipe"] == recipe.to_dict()
    assert "ema_decay" not in recipe.to_dict()  # off: earlier results' recipe dicts unchanged
    assert first.score > 50  # 10 classes: chance is 10%
    other = TrainEstimator(digits16, dataclasses.replace(recipe, seed=4)).estimate(small_spec())
    assert other.details["final_loss"] != first.details["final_loss"]


def test_recipe_validation():
    with pytest.raises(ValueError, match="at least one epoch"):
        Recipe(epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        Recipe(optimizer="lbfgs")


def test_an_ema_recipe_ends_with_the_averaged_weights(digits16):
    """With ``ema_decay`` the trained model holds the weights' moving average: a decay near 0
    averages nothing (the last weights), a large one keeps them near the start."""
    spec = adapt_spec(small_spec(), 10, 16, 3)
    recipe = Recipe(epochs=1, batch_size=32, seed=1, steps=15)

    def trained(decay: float) -> list[torch.Tensor]:
        torch.manual_seed(1)  # dropout draws from the global generator
        model = build_model(spec, seed=1)
        train_model(model, digits16, dataclasses.replace(recipe, ema_decay=decay))
        return [p.detach().clone() for p in model.parameters()]

    start = [p.detach().clone() for p in build_model(spec, seed=1).parameters()]
    last, nothing, slow = trained(0.0), trained(1e-12), trained(0.999)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(last, nothing, strict=True))

    def distance(a, b):
        return sum(float((x - y).norm()) for x, y in zip(a, b, strict=True))

    assert distance(slow, start) < 0.5 * distance(last, start)
    assert Recipe(ema_decay=0.99).to_dict()["ema_decay"] == 0.99
    with pytest.raises(ValueError, match="ema_decay must be in"):
        Recipe(ema_decay=1.0)


def test_bn_recalibration_replaces_stale_statistics(digits16):
    model = build_model(adapt_spec(small_spec(), 10, 16, 3))
    recalibrate_bn(model, digits16, batches=2, batch_size=32)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.momentum == 0.01 for m in norms)  # restored
    assert all(int(m.num_batches_tracked) == 2 for m in norms)
    assert not torch.allclose(norms[0].running_mean, torch.zeros_like(norms[0].running_mean))


def test_nan_loss_fails_the_candidate_not_the_caller(digits16):
    diverging = Recipe(epochs=1, lr=1e30, warmup_epochs=0.0, optimizer="sgd")
    result = TrainEstimator(digits16, diverging).estimate(small_spec())
    assert result.failed and result.score is None
    assert "loss became" in result.reason or "non-finite" in result.reason


def test_exceptions_and_non_finite_scores_are_recorded():
    class Broken(AccuracyEstimator):
        name = "broken"

        def __init__(self, outcome):
            self.outcome = outcome

        def _score(self, spec):
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome, {}

    spec = small_spec()
    assert Broken(RuntimeError("boom")).estimate(spec).reason.startswith("RuntimeError: boom")
    assert Broken(MemoryError()).estimate(spec).reason == "out of memory"
    cuda_oom = Broken(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert cuda_oom.estimate(spec).reason.startswith("out of memory (CUDA out of memory.")
    cpu_oom = Broken(RuntimeError("[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: "
                                  "can't allocate memory: you tried to allocate 9 GB"))
    assert cpu_oom.estimate(spec).reason.startswith("out of memory ([enforce fail")
    assert Broken(math.nan).estimate(spec).failed
    ok = Broken(0.5).estimate(spec)
    assert isinstance(ok, Estimate) and ok.score == 0.5 and not ok.failed


@pytest.mark.parametrize("proxy", PROXIES)
def test_zero_cost_proxies_are_finite_and_fast(digits16, proxy):
    estimator = ZeroCostEstimator(digits16, proxy, batch_size=32)
    for name in ("mobilenet_v3_small", "mnasnet_a1"):
        result = estimator.estimate(zoo.get(name))
        assert not result.failed, result.reason
        assert math.isfinite(result.score) and result.score > 0
        assert result.cost_seconds < 1.0


def test_naswot_ignores_batch_order_and_synflow_restores_weights(digits16):
    spec = adapt_spec(small_spec(), 10, 16, 3)
    images = next(digits16.batches("train", 32))[0]
    model = build_model(spec, seed=0)
    score = naswot(model, images)
    permuted = naswot(build_model(spec, seed=0), images[torch.randperm(32)])
    # equal up to the order of floating-point sums (which the thread count changes)
    assert permuted == pytest.approx(score, rel=1e-5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, (3, 16, 16))
    after = model.state_dict()
    assert all(torch.allclose(before[k].double(), after[k].double()) for k in before)


def test_unknown_proxy(digits16):
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'grasp'"):
        ZeroCostEstimator(digits16, "grasp")


def test_train_command(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compiled = []  # --compile hands the model to torch.compile (identity here: compiling
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)  # takes ~100 s)
    code, out, err = run(["train", "v3-small", "--epochs", "1", "--resolution", "16"], capsys)
    assert code == 0, err
    assert "validation top-1:" in out and "train images/s" in out
    assert not compiled
    code, out, err = run(["train", "v3-small", "--epochs", "1", "--resolution", "16",
                          "--compile"], capsys)
    assert code == 0, err
    assert len(compiled) == 1 and "validation top-1:" in out
    code, out, err = run(["train", "v3-small", "--data", f"imagefolder:{tmp_path}/none"], capsys)
    assert code == 2 and "no such directory" in err and len(err.strip().splitlines()) == 1
