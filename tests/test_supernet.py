"""The weight-sharing supernet: sub-networks are exact, share weights, and training resumes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nas.accuracy.supernet import (
    ELASTIC_ORDER,
    Supernet,
    SupernetEstimator,
    SupernetRecipe,
    largest_spec,
    load_supernet,
    sample_phase,
    sandwich_smallest,
    smallest_spec,
    train_supernet,
)
from nas.data import load_data
from search_spaces.mobilenetv3 import V3_SMALL_HEAD, BlockwiseSpace, StageChoices, default_space


def tiny_space() -> BlockwiseSpace:
    return BlockwiseSpace(
        input_size=16, num_classes=10, stem_widths=(8, 16), stem_acts=("RE", "HS"),
        stages=(
            StageChoices(stride=2, depths=(1, 2), widths=(16, 24), exp_ratios=(1.0, 3.0, 6.0)),
            StageChoices(stride=1, depths=(0, 1), widths=(32,), exp_ratios=(2.5, 4.0)),
        ),
        heads=(V3_SMALL_HEAD,),
    )


def random_supernet(space: BlockwiseSpace) -> Supernet:
    """A supernet in eval mode with every weight and BN statistic random, so outputs (and any
    mismatch between two paths) are far from zero."""
    net = Supernet(space).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(values + 0.5 if "running_var" in name else values - 0.5)
    return net


@pytest.mark.parametrize("space", [tiny_space(), default_space(32, 10)], ids=["tiny", "v3"])
def test_extracted_subnetworks_equal_the_supernet(space):
    net = random_supernet(space)
    rng = np.random.default_rng(1)
    x = torch.randn(2, 3, space.input_size, space.input_size)
    for spec in [largest_spec(space), smallest_spec(space)] + [space.sample(rng)
                                                                for _ in range(4)]:
        with torch.no_grad():
            expected = net(x, spec)
            got = net.extract(spec).eval()(x)
        assert expected.shape == (2, space.num_classes)
        assert float(expected.abs().mean()) > 1e-3  # a real signal, not zeros
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_subnetworks_share_weights():
    space = tiny_space()
    net = random_supernet(space)
    spec = largest_spec(space)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        before = net(x, spec)
        net.stages[0][0].expanded.depthwise.weight[0].add_(1.0)  # the first expansion channel
        after = net(x, spec)
        smallest_before = net.extract(smallest_spec(space)).eval()(x)
    assert not torch.allclose(before, after)
    assert net.extract(spec).features[1].block[1][0].weight[0].equal(
        net.stages[0][0].expanded.depthwise.kernel(spec.blocks[0].exp_ch, spec.blocks[0].kernel)[0])
    assert smallest_before.shape == (1, 10)


def test_sort_channels_keeps_full_width_functions():
    """Sorting reorders expansion channels: networks using all of them keep their function
    (narrower ones are meant to get the more important channels)."""
    space = tiny_space()
    net = random_supernet(space)
    spec = largest_spec(space)
    x = torch.randn(2, 3, 16, 16)
    # Full-width networks keep their function; so does one whose ratio-1 blocks run the
    # depthwise conv on their input channels (those have weights of their own, never permuted).
    ratio_one = dataclasses.replace(spec, blocks=tuple(
        dataclasses.replace(b, exp_ch=b.in_ch) if i < 2 else b
        for i, b in enumerate(spec.blocks)))
    samples = [spec, ratio_one]
    with torch.no_grad():
        before = [net(x, s) for s in samples]
        net.sort_channels()
        after = [net(x, s) for s in samples]
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Sorting really reorders, in stages with and without ratio 1: importance-ordered channels.
    for block in (net.stages[0][0], net.stages[0][1], net.stages[1][0]):
        importance = block.expanded.project.weight.abs().sum(dim=(0, 2, 3))
        assert torch.all(importance[:-1] >= importance[1:])
    assert net.stages[1][0].unexpanded is None  # that stage has no ratio 1


def test_unexpanded_blocks_have_weights_of_their_own():
    space = tiny_space()
    net = random_supernet(space)
    largest = largest_spec(space)
    ratio_one = dataclasses.replace(largest, blocks=(
        dataclasses.replace(largest.blocks[0], exp_ch=largest.blocks[0].in_ch),
        *largest.blocks[1:]))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = [net(x, largest), net(x, ratio_one)]
        net.stages[0][0].unexpanded.depthwise.weight.add_(1.0)
        after = [net(x, largest), net(x, ratio_one)]
        extracted = net.extract(ratio_one).eval()(x)
    torch.testing.assert_close(after[0], before[0])
    assert not torch.allclose(after[1], before[1], atol=1e-4)
    torch.testing.assert_close(extracted, after[1], rtol=1e-5, atol=1e-5)


def test_rejects_specs_outside_the_space():
    net = Supernet(tiny_space())
    with pytest.raises(ValueError, match="not in the supernet's space"):
        net(torch.randn(1, 3, 16, 16), largest_spec(default_space(16, 10)))


def test_training_resumes_exactly(tmp_path):
    data = load_data("digits", 16)
    recipe = SupernetRecipe(steps=4, batch_size=16, random_subnets=1, sort_every=2,
                            save_every=2)
    straight = train_supernet(tiny_space(), data, recipe)
    checkpoint = tmp_path / "supernet.pt"

    def killed_after_step_2(step, _total, _loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(tiny_space(), data, recipe, checkpoint=checkpoint,
                       on_step=killed_after_step_2)
    assert load_supernet(checkpoint)[1]["step"] == 2
    resumed = train_supernet(tiny_space(), data, recipe, checkpoint=checkpoint)
    assert load_supernet(checkpoint)[1]["step"] == 4
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, msg=name)
    estimate = SupernetEstimator(resumed, data, bn_batches=2).estimate(
        resumed.space.sample(np.random.default_rng(0)))
    assert not estimate.failed and 0 <= estimate.score <= 100


def _choices(spec):
    """Every choice of a spec, by elastic dimension."""
    blocks = spec.blocks
    return {"kernel": [b.kernel for b in blocks],
            "depth": [b.stride for b in blocks],  # depths change the stride pattern's length
            "expand": [b.exp_ch / b.in_ch for b in blocks],
            "width": [spec.stem.out_ch] + [b.out_ch for b in blocks],
            "switch": [spec.stem.act, spec.head] + [(b.se, b.act) for b in blocks]}


def test_progressive_phases_open_one_group_of_choices_at_a_time():
    space = default_space(32, 10)
    largest = _choices(largest_spec(space))
    rng = np.random.default_rng(0)
    for phase in range(len(ELASTIC_ORDER) + 1):
        opened = {dim for dims in ELASTIC_ORDER[:phase] for dim in dims}
        samples = [sample_phase(space, rng, phase) for _ in range(40)]
        assert all(space.contains(spec) for spec in samples)
        for dim in largest:
            varied = any(_choices(spec)[dim] != largest[dim] for spec in samples)
            # Depth decides how many blocks there are: the other dimensions are compared when it
            # is fixed (before phase 1 every dimension is).
            if dim in opened or (phase == 0 or "depth" not in opened):
                assert varied == (dim in opened), (phase, dim)
    # Once expansion is elastic, the sandwich's smallest alternates between the smallest shared
    # expansion prefix and ratio 1 (which has its own weights).
    for phase in range(1, len(ELASTIC_ORDER) + 1):
        for step in (0, 1):
            smallest = sandwich_smallest(space, phase, step)
            assert space.contains(smallest)
            ratio = 6.0 if phase < 2 else 2.3 if step == 0 else 1.0
            assert all(b.exp_ch == space.stages[0].exp_width(b.in_ch, ratio)
                       for b in smallest.blocks), (phase, step)
    assert smallest_spec(space).blocks == sandwich_smallest(space, len(ELASTIC_ORDER), 1).blocks


def test_distillation_teaches_the_smaller_networks_only():
    # The largest network learns from the labels alone: with only the largest trained, the
    # distillation weight changes nothing; in the sandwich phase it changes the weights.
    data = load_data("digits", 16)

    def trained(distill, phases):
        recipe = SupernetRecipe(steps=2, batch_size=16, random_subnets=1, sort_every=0,
                                phases=phases, distill=distill)
        return train_supernet(tiny_space(), data, recipe).state_dict()

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.values(), b.values(), strict=True))

    assert same(trained(0.0, (1.0, 0.0)), trained(1.0, (1.0, 0.0)))
    assert not same(trained(0.0, (0.0, 0.0)), trained(1.0, (0.0, 0.0)))
    assert same(trained(0.5, (0.0, 0.0)), trained(0.5, (0.0, 0.0)))  # deterministic


def test_supernet_cli(capsys, tmp_path, monkeypatch):
    from .test_cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("search_spaces.mobilenetv3.default_space",
                        lambda *a, **k: tiny_space())
    code, out, err = run(["supernet", "train", "--budget", "2", "--resolution", "16",
                          "--batch-size", "16"], capsys)
    assert code == 0, err
    assert (tmp_path / "runs/supernet/supernet.pt").exists()
    code, out, err = run(["supernet", "train", "--budget", "2"], capsys)
    assert code == 2 and "pass --resume" in err
    code, out, err = run(["supernet", "eval", "v3-small"], capsys)
    assert code == 0 and "failed: EstimatorError" in out  # V3-Small is not in the tiny space
    code, out, err = run(["supernet", "eval", "v3-small", "--checkpoint", "none.pt"], capsys)
    assert code == 2 and "no supernet checkpoint" in err
    (tmp_path / "sub.json").write_text(tiny_space().sample(np.random.default_rng(0)).to_json())
    code, out, err = run(["supernet", "eval", "sub.json", "--finetune-steps", "2"], capsys)
    assert code == 0 and "sub.json: " in out and "%" in out, err
    code, out, err = run(["supernet", "eval", "sub.json", "--finetune-steps", "-1"], capsys)
    assert code == 2 and "--finetune-steps must be at least 0" in err


def test_bad_recipes_and_checkpoints_are_value_errors(tmp_path):
    # found by tests/test_fuzz.py: --budget 0 trained nothing and saved it; a garbage checkpoint
    # was an UnpicklingError, and one holding code was run
    for bad in ({"steps": 0}, {"batch_size": 0}, {"lr": float("inf")}, {"save_every": 0},
                {"distill": 1.5}, {"distill": -0.1}, {"phases": (0.5, 0.4, 0.2)},
                {"phases": (0.1, 0.1, 0.1, 0.1)}, {"phases": (-0.1,)}):
        with pytest.raises(ValueError):
            SupernetRecipe(**bad)
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk")
    with pytest.raises(ValueError, match="junk.pt: not a supernet checkpoint"):
        load_supernet(tmp_path / "junk.pt")
    torch.save({"format": "nas.supernet", "version": 1, "space": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="old.pt: a supernet checkpoint of format version 1"):
        load_supernet(tmp_path / "old.pt")
    torch.save({"format": "nas.supernet", "version": 2, "space": {"stages": 3}},
               tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="odd.pt: a damaged supernet checkpoint"):
        load_supernet(tmp_path / "odd.pt")
    torch.save({"format": "nas.supernet", "space": tmp_path}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="not a supernet checkpoint .*Weights only"):
        load_supernet(tmp_path / "code.pt")


def test_search_job_fine_tunes_inherited_subnetworks(tmp_path):
    from nas.accuracy.supernet import save_checkpoint
    from nas.search.objective import AccuracyJob

    checkpoint = tmp_path / "supernet.pt"
    save_checkpoint(checkpoint, random_supernet(tiny_space()), None, 0, SupernetRecipe())
    plain = AccuracyJob(data="digits", resolution=16, estimator=f"supernet:{checkpoint}",
                        finetune_steps=0)
    tuned = dataclasses.replace(plain, finetune_steps=3)
    assert plain.build().finetune is None
    # unless told otherwise, a supernet's sub-networks get the 60 steps that ranked best
    assert dataclasses.replace(plain, finetune_steps=None).finetune_steps == 60
    estimator = tuned.build()
    assert (estimator.finetune.steps, estimator.finetune.lr) == (3, 0.05)
    assert "fine-tuned 3 steps at lr 0.05" in tuned.describe()
    spec = tiny_space().sample(np.random.default_rng(0))
    estimate = estimator.estimate(spec)
    assert not estimate.failed and estimate.details["finetune"]["steps"] == 3
    with pytest.raises(ValueError, match="supernet estimator"):
        AccuracyJob(estimator="train", finetune_steps=3)
    with pytest.raises(ValueError, match="finetune steps"):
        dataclasses.replace(plain, finetune_steps=-1)


def test_fine_tuned_scores_do_not_depend_on_what_was_scored_before():
    from nas.accuracy.supernet import finetune_recipe

    space = tiny_space()
    supernet = random_supernet(space)
    data = load_data("digits", 16).subset(256, 128, seed=0)
    first, second = (space.sample(np.random.default_rng(seed)) for seed in (1, 2))

    def score(*specs):
        estimator = SupernetEstimator(supernet, data, bn_batches=2,
                                      finetune=finetune_recipe(4, batch_size=32))
        return [estimator.estimate(spec) for spec in specs][-1]

    alone = score(second)
    torch.manual_seed(123)  # a different global generator state, and one more candidate first
    after = score(first, second)
    assert not alone.failed and alone.score == after.score
    assert alone.details["finetune"]["final_loss"] == after.details["finetune"]["final_loss"]


def test_default_search_estimator_trains_its_supernet_once_and_caches_it(tmp_path, monkeypatch):
    from nas.accuracy.supernet import save_checkpoint
    from nas.search.objective import AccuracyJob

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    default = AccuracyJob()
    assert (default.estimator, default.data, default.resolution, default.finetune_steps,
            default.finetune_lr) == ("supernet", "digits-hard", 32, 60, 0.05)
    assert AccuracyJob(estimator="train").finetune_steps == 0
    job = AccuracyJob(data="digits", resolution=16, supernet_steps=2, finetune_steps=1,
                      batch_size=16)
    path = job.supernet_path()
    assert path.parent == tmp_path / "supernets" and path.name.startswith("digits-16px-2steps")
    # another data set, resolution, recipe or seed is another supernet
    others = [dataclasses.replace(job, **change).supernet_path()
              for change in ({"data": "digits-hard"}, {"resolution": 24},
                             {"supernet_steps": 3}, {"seed": 1})]
    assert len({path, *others}) == 5
    assert AccuracyJob(estimator="train").supernet_path() is None

    steps = []
    estimator = job.build(on_step=lambda step, total, loss: steps.append((step, total)))
    assert steps == [(1, 2), (2, 2)] and path.is_file()
    cached = job.build(on_step=lambda *args: steps.append(args))  # loaded, not trained again
    assert len(steps) == 2
    for name, tensor in estimator.supernet.state_dict().items():
        assert torch.equal(tensor, cached.supernet.state_dict()[name]), name
    spec = default_space().sample(np.random.default_rng(0))
    result = cached.estimate(spec)
    assert not result.failed and 0 <= result.score <= 100
    assert result.details["finetune"]["steps"] == 1

    # an interrupted training (a checkpoint short of its steps) continues where it stopped
    save_checkpoint(path, estimator.supernet, None, 1, job.supernet_recipe)
    steps.clear()
    job.build(on_step=lambda step, total, loss: steps.append(step))
    assert steps == [2]
    # a damaged cache file is trained again rather than failing every search
    path.write_bytes(b"not a checkpoint")
    steps.clear()
    job.build(on_step=lambda step, total, loss: steps.append(step))
    assert steps == [1, 2]


def test_an_unknown_activation_is_an_error_naming_the_known_ones():
    """It was ReLU6, silently."""
    from nas.accuracy.supernet import elastic

    x = torch.linspace(-8, 8, 17)
    assert torch.equal(elastic._act(x, "RE6"), x.clamp(0, 6))
    with pytest.raises(ValueError, match=r"unknown activation 'GELU' \(known: RE, HS, RE6\)"):
        elastic._act(x, "GELU")
