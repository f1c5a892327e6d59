"""A synthetic device for the tests: complete, calibrated latency tables keyed by *this*
machine's fingerprint, so that no test profiles layers (minutes) unless profiling is what it
tests. conftest.py writes them into the session's temporary cache; tests that run the CLI in a
cache of their own write them there."""

from __future__ import annotations

from pathlib import Path


def _madds(layer) -> float:
    """Multiply-adds of one table layer, from its key fields (enough to rank layers)."""
    from latency_models.layers import BlockLayer, StemLayer

    def out(size: int, stride: int) -> int:
        return -(-size // stride)

    if isinstance(layer, StemLayer):
        return out(layer.res, layer.stride) ** 2 * layer.in_ch * layer.out_ch * layer.kernel ** 2
    if isinstance(layer, BlockLayer):
        size = out(layer.res, layer.stride) ** 2
        if layer.kind != "bneck":
            return size * layer.in_ch * (layer.kernel ** 2 + layer.out_ch)
        expand = 0 if layer.exp_ch == layer.in_ch else layer.res ** 2 * layer.in_ch * layer.exp_ch
        return (expand + size * layer.exp_ch * (layer.kernel ** 2 + layer.out_ch)
                + 2 * layer.exp_ch * layer.se_ch)
    channels = layer.conv_ch or layer.in_ch
    total = layer.res ** 2 * layer.in_ch * (layer.conv_ch or 0)
    if layer.hidden_ch:
        total += channels * layer.hidden_ch
        channels = layer.hidden_ch
    return total + channels * layer.num_classes


def write_synthetic_tables(cache: Path, resolutions=(224, 32)) -> None:
    """A complete, calibrated table per resolution, keyed by this machine's fingerprint, with
    times that grow with each layer's MAdds (0.45 ms + 0.0436 ms per million: close to this
    project's 2-core VMs on V3-Large and V3-Small)."""
    from latency_models.device import fingerprint
    from latency_models.layers import layers_of, space_layers
    from latency_models.lut import Entry, LatencyTable
    from search_spaces import zoo
    from search_spaces.mobilenetv3 import default_space

    for resolution in resolutions:
        fp = fingerprint("torch", 1, 1, resolution)
        layers = list(space_layers(default_space(resolution)))
        for name in ("v3-large", "v3-small"):
            for width in (1.0, 0.75):
                layers += layers_of(zoo.get(name, width_mult=width, input_size=resolution))
        table = LatencyTable(fingerprint=fp, settings={
            "statistic": "min", "synthetic": "tests/synthetic.py stands in for profiling"})
        for layer in layers:
            ms = 0.45 + 0.0436 * _madds(layer) / 1e6
            table.entries[layer.key] = Entry(ms, ms * 1.05, 15)
        table.calibration = {"coefficients": {"scale": 1.0, "per_block_ms": 0.0,
                                              "overhead_ms": 0.0},
                             "archs": 0, "rounds": 0, "measured_at": "synthetic",
                             "max_abs_error": 0.0}
        table.save(cache / "latency" / f"torch-{fp.key()}.json")
