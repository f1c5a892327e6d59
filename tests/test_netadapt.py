"""NetAdapt end to end on a tiny network, tiny data and a synthetic device."""

from __future__ import annotations

import json

import pytest
import torch

from latency_models.backends import Timing
from latency_models.device import DeviceFingerprint
from latency_models.layers import BlockLayer, HeadLayer, StemLayer, layers_of
from latency_models.lut import LatencyTable
from latency_models.predictor import Calibration
from nas.data import load_digits_data
from nas.export import load
from nas.netadapt import (
    NetAdapt,
    NetAdaptError,
    NetAdaptSettings,
    ProposalLatency,
    load_iterations,
)
from nas.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec


def tiny_spec() -> ArchSpec:
    b = BlockSpec
    blocks = (
        b(kind="bneck", kernel=3, in_ch=16, exp_ch=16, out_ch=16, act="RE"),
        b(kind="bneck", kernel=3, in_ch=16, exp_ch=64, out_ch=24, stride=2, act="RE"),
        b(kind="bneck", kernel=3, in_ch=24, exp_ch=72, out_ch=24, act="RE"),
        b(kind="bneck", kernel=5, in_ch=24, exp_ch=96, out_ch=40, stride=2, se=True, act="HS"),
        b(kind="bneck", kernel=5, in_ch=40, exp_ch=120, out_ch=40, se=True, act="HS"),
    )
    return ArchSpec(name="tiny", input_size=64, num_classes=10, stem=StemSpec(out_ch=16),
                    blocks=blocks, head=HeadSpec(conv_ch=160, hidden_ch=256))


def synthetic_ms(layer) -> float:
    """A device whose time is proportional to multiply-adds, plus a fixed cost per layer."""
    if isinstance(layer, StemLayer):
        out = -(-layer.res // layer.stride)
        madds = out * out * layer.in_ch * layer.out_ch * layer.kernel ** 2
    elif isinstance(layer, BlockLayer):
        out = -(-layer.res // layer.stride)
        exp = layer.exp_ch
        madds = (layer.res ** 2 * layer.in_ch * exp * (exp != layer.in_ch)
                 + out * out * exp * layer.kernel ** 2 + out * out * exp * layer.out_ch
                 + 2 * exp * layer.se_ch)
    else:
        assert isinstance(layer, HeadLayer)
        madds = layer.res ** 2 * layer.in_ch * (layer.conv_ch or 1) + \
            (layer.conv_ch or layer.in_ch) * (layer.hidden_ch or 1) + \
            (layer.hidden_ch or 1) * layer.num_classes
    return 0.005 + madds * 1e-6


class SyntheticDevice:
    """``measure`` for ProposalLatency; ``drift`` multiplies every call's times by the next
    factor (a machine whose speed changes between iterations)."""

    def __init__(self, drift=(1.0,)):
        self.drift, self.calls = list(drift), 0

    def __call__(self, layers, rounds=None):
        factor = self.drift[self.calls % len(self.drift)]
        self.calls += 1
        return {layer.key: Timing(synthetic_ms(layer) * factor, synthetic_ms(layer) * factor, 5)
                for layer in layers}


def source_table(spec: ArchSpec) -> LatencyTable:
    fp = DeviceFingerprint("synthetic", 2, 1, "2.x", "torch", "float32", 1, spec.input_size)
    table = LatencyTable(fingerprint=fp, settings={"statistic": "min"})
    table.add(SyntheticDevice()(layers_of(spec)))
    return table


@pytest.fixture(scope="module")
def data():
    return load_digits_data(resolution=16)


def settings(**kw) -> NetAdaptSettings:
    base = dict(target_ms=0.0, delta=0.05, short_steps=2, init_epochs=1, long_epochs=1,
                batch_size=64, latency_rounds=1, threads=1)
    base.update(kw)
    if not base["target_ms"]:
        start = sum(synthetic_ms(layer) for layer in layers_of(tiny_spec()))
        base["target_ms"] = 0.85 * start
    return NetAdaptSettings(**base)


def make_run(tmp_path, data, *, device=None, mode="paired", resume=False, on_event=None,
             **kw) -> NetAdapt:
    spec = tiny_spec()
    latency = ProposalLatency(source_table(spec), Calibration(), tmp_path / "latency_table.json",
                              measure=device or SyntheticDevice(), mode=mode)
    return NetAdapt(settings(**kw), tmp_path, spec, data, latency, resume=resume,
                    on_event=on_event)


def test_a_small_run_reaches_the_target_with_every_step_cutting_delta(tmp_path, data):
    result = make_run(tmp_path, data).run()
    its = result.iterations
    assert result.stop_reason == "target reached"
    assert its[-1]["latency_ms"] <= settings().target_ms < its[-2]["latency_ms"]
    for before, step in zip(its, its[1:], strict=False):
        assert step["latency_before_ms"] == pytest.approx(before["latency_ms"])
        assert step["latency_before_ms"] - step["latency_ms"] >= step["delta_ms"] - 1e-12
        assert step["delta_ms"] == pytest.approx(0.05 * step["latency_before_ms"])
        # the smallest reduction meeting the cut: one divisor more would not have made it
        chosen = next(p for p in step["proposals"] if p["what"] == step["chosen"])
        assert chosen["latency_ms"] == step["latency_ms"]
        # ΔAcc/|ΔLat| decides
        best = max(p["ratio"] for p in step["proposals"])
        assert chosen["ratio"] == best
    # Everything is on disk: weights, spec and record of every iteration, then the final model.
    assert load_iterations(tmp_path) == its
    final = load(tmp_path / "final" / "model.pt")
    assert final.arch_spec.blocks == ArchSpec.from_dict(its[-1]["spec"]).blocks
    assert final(torch.randn(2, data.channels, 16, 16)).shape == (2, 10)
    assert 0 <= result.final["val_accuracy"] <= 100
    # The result is an ordinary spec: irregular widths, the tiny network's structure.
    spec = result.spec
    assert len(spec.blocks) == 5 and spec != tiny_spec()
    assert [b.has_residual for b in spec.blocks] == [b.has_residual for b in tiny_spec().blocks]


def test_each_proposal_is_the_smallest_cut_that_meets_delta(tmp_path, data):
    """Re-derive iteration 1's proposals from the synthetic device alone."""
    from nas.netadapt.prune import candidate_widths, proposal_sites

    result = make_run(tmp_path, data, long_epochs=0, max_iterations=1).run()
    step = result.iterations[1]
    spec = tiny_spec()
    latency = sum(synthetic_ms(layer) for layer in layers_of(spec))
    assert step["latency_before_ms"] == pytest.approx(latency)
    expected = {}
    for site in proposal_sites(spec):
        for width, cand in candidate_widths(spec, site):
            if sum(synthetic_ms(layer) for layer in layers_of(cand)) <= latency * 0.95:
                expected[tuple(site)] = width
                break
    got = {tuple(p["site"]): p["width"] for p in step["proposals"]}
    assert got == expected and len(got) >= 5


def test_paired_latency_is_immune_to_the_machine_drifting_between_iterations(tmp_path, data):
    steady = make_run(tmp_path / "a", data, long_epochs=0).run()
    drifting = make_run(tmp_path / "b", data, long_epochs=0,
                        device=SyntheticDevice(drift=(1.0, 1.4, 0.7, 1.2))).run()
    assert [r["spec"] for r in drifting.iterations] == [r["spec"] for r in steady.iterations]
    assert [r["latency_ms"] for r in drifting.iterations] == pytest.approx(
        [r["latency_ms"] for r in steady.iterations])


class FlatteringDevice(SyntheticDevice):
    """Measures a layer 40% too fast the first time it sees it: the noise that makes a scan of
    many widths pick one that does not really make the cut."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def __call__(self, layers, rounds=None):
        timings = super().__call__(layers, rounds)
        for key, t in timings.items():
            if key not in self.seen:
                timings[key] = Timing(t.min_ms * 0.6, t.median_ms * 0.6, t.samples)
        self.seen.update(timings)
        return timings


def test_picks_are_confirmed_on_a_fresh_measurement(tmp_path, data):
    result = make_run(tmp_path, data, long_epochs=0, device=FlatteringDevice()).run()
    true = [sum(synthetic_ms(layer) for layer in layers_of(ArchSpec.from_dict(r["spec"])))
            for r in result.iterations]
    assert len(true) >= 3
    for k, step in enumerate(result.iterations[1:], 1):
        assert true[k - 1] - true[k] >= step["delta_ms"] * (1 - 1e-9)
        assert len(step["latency_refresh"]) >= 2  # the scan, then at least one confirmation


def test_table_mode_cuts_delta_on_the_final_table(tmp_path, data):
    result = make_run(tmp_path, data, mode="table", long_epochs=0).run()
    latency = ProposalLatency(source_table(tiny_spec()), Calibration(),
                              tmp_path / "latency_table.json", mode="table")
    specs = [ArchSpec.from_dict(r["spec"]) for r in result.iterations]
    for k, (a, b) in enumerate(zip(specs, specs[1:], strict=False), 1):
        assert latency(a) - latency(b) >= result.iterations[k]["delta_ms"] - 1e-12


def test_resume_after_an_interruption_repeats_no_iteration(tmp_path, data):
    straight = make_run(tmp_path / "straight", data, long_epochs=0).run()
    assert len(straight.iterations) >= 4

    class Stop(Exception):
        pass

    def interrupt(kind, payload):
        if kind == "accepted" and payload["iteration"] == 2:
            raise Stop

    with pytest.raises(Stop):
        make_run(tmp_path / "cut", data, long_epochs=0, on_event=interrupt).run()
    assert len(load_iterations(tmp_path / "cut")) == 3
    stamps = [(tmp_path / "cut" / "iterations" / f"{i:04d}" / "model.pt").stat().st_mtime_ns
              for i in range(3)]
    events = []
    resumed = make_run(tmp_path / "cut", data, long_epochs=0, resume=True,
                       on_event=lambda kind, payload: events.append((kind, payload))).run()
    assert [k for k, _ in events if k in ("pretrain", "start")] == []
    assert [p["iteration"] for k, p in events if k == "iteration"][0] == 3
    assert stamps == [(tmp_path / "cut" / "iterations" / f"{i:04d}" / "model.pt").stat()
                      .st_mtime_ns for i in range(3)]
    assert [r["spec"] for r in resumed.iterations] == [r["spec"] for r in straight.iterations]
    assert [r["accuracy"] for r in resumed.iterations] == \
        [r["accuracy"] for r in straight.iterations]


def test_a_run_directory_is_not_reused_by_accident(tmp_path, data):
    make_run(tmp_path, data, long_epochs=0, max_iterations=1).run()
    with pytest.raises(NetAdaptError, match="--resume"):
        make_run(tmp_path, data, long_epochs=0, max_iterations=1)
    with pytest.raises(NetAdaptError, match="short_steps"):
        make_run(tmp_path, data, long_epochs=0, short_steps=3, resume=True)
    # a lower target or another cut is fine when resuming: it continues from where it stopped
    more = make_run(tmp_path, data, long_epochs=0, resume=True, max_iterations=2,
                    delta=0.04).run()
    assert more.iterations[2]["delta_ms"] == pytest.approx(0.04 * more.iterations[1]
                                                           ["latency_ms"])
    assert len(more.iterations) == 3
    with pytest.raises(NetAdaptError, match="nothing to resume"):
        make_run(tmp_path / "new", data, resume=True)


def test_select_accuracy_takes_the_most_accurate_proposal(tmp_path, data):
    result = make_run(tmp_path, data, long_epochs=0, max_iterations=2, select="accuracy").run()
    for step in result.iterations[1:]:
        chosen = next(p for p in step["proposals"] if p["what"] == step["chosen"])
        assert chosen["accuracy"] == max(p["accuracy"] for p in step["proposals"])


@pytest.mark.parametrize("bad, match", [
    (dict(delta=1.5), "--delta"), (dict(select="greedy"), "--select"),
    (dict(latency="guess"), "--latency"), (dict(target_ms=-1.0), "target"),
    (dict(delta_decay=0.0), "decay"), (dict(short_steps=0), "short-steps"),
])
def test_bad_settings_say_what_is_wrong(bad, match):
    with pytest.raises(NetAdaptError, match=match):
        settings(**bad)


def test_record_files_are_plain_json(tmp_path, data):
    make_run(tmp_path, data, long_epochs=0, max_iterations=1).run()
    record = json.loads((tmp_path / "iterations" / "0001" / "record.json").read_text())
    assert {"latency_before_ms", "latency_ms", "delta_ms", "accuracy", "chosen", "proposals",
            "spec"} <= set(record)
    assert ArchSpec.from_json((tmp_path / "iterations" / "0001" / "spec.json").read_text()) \
        == ArchSpec.from_dict(record["spec"])
