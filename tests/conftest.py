"""Shared fixtures and hypothesis strategies. Reference figures live in tests/data/."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st

from nas.spec import (
    ACTIVATIONS,
    DILATIONS,
    KERNELS,
    SE_STYLES,
    ArchSpec,
    BlockSpec,
    HeadSpec,
    StemSpec,
)

DATA = Path(__file__).parent / "data"

torch.set_num_threads(2)


def load_data(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="session", autouse=True)
def ray_stays_on_loopback():
    """Any Ray that a test (or a command it runs) starts binds to 127.0.0.1 only and keeps its
    session files in a temporary directory. Out of the box Ray takes the machine's external
    interface, even for a cluster started at 127.0.0.1, unless this variable (meant for
    single-machine Windows and macOS) is off; it is read when Ray is imported, so it is set
    before any test runs. The directory is short because Ray's socket paths must fit in 107
    bytes."""
    directory = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        env.setenv("RAY_TMPDIR", directory)
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def zoo_figures() -> dict:
    return load_data("zoo_figures.json")["models"]


@pytest.fixture(scope="session")
def paper_tables() -> dict:
    return load_data("mobilenetv3_tables.json")


@st.composite
def block_specs(draw, in_ch: int, max_ch: int = 48) -> BlockSpec:
    kind = draw(st.sampled_from(["bneck", "dwsep", "shuffle"]))
    stride = draw(st.sampled_from([1, 2]))
    if kind == "shuffle" and stride == 1 and in_ch % 2:
        stride = 2  # a stride-1 unit must keep an odd width, which it cannot split
    dilation = 1 if stride == 2 else draw(st.sampled_from(DILATIONS))
    common = dict(kind=kind, kernel=draw(st.sampled_from(KERNELS)), in_ch=in_ch,
                  act=draw(st.sampled_from(ACTIVATIONS)), stride=stride, dilation=dilation)
    if kind == "bneck":
        return BlockSpec(exp_ch=draw(st.integers(1, 2 * max_ch)),
                         out_ch=draw(st.integers(1, max_ch)), se=draw(st.booleans()), **common)
    if kind == "shuffle":
        out = in_ch if stride == 1 else 2 * draw(st.integers(1, max_ch // 2))
        return BlockSpec(out_ch=out, **common)
    return BlockSpec(out_ch=draw(st.integers(1, max_ch)), **common)


@st.composite
def arch_specs(draw, max_blocks: int = 5) -> ArchSpec:
    """Random valid specs, small enough to build and run in milliseconds."""
    stem = StemSpec(out_ch=draw(st.integers(1, 32)), kernel=draw(st.sampled_from(KERNELS)),
                    stride=draw(st.sampled_from([1, 2])),
                    act=draw(st.sampled_from(ACTIVATIONS)), maxpool=draw(st.booleans()),
                    in_ch=draw(st.sampled_from([1, 3])))
    blocks, in_ch = [], stem.out_ch
    for _ in range(draw(st.integers(1, max_blocks))):
        block = draw(block_specs(in_ch))
        blocks.append(block)
        in_ch = block.out_ch
    optional_ch = st.none() | st.integers(1, 64)
    head = HeadSpec(conv_ch=draw(optional_ch), conv_act=draw(st.sampled_from(ACTIVATIONS)),
                    hidden_ch=draw(optional_ch), hidden_act=draw(st.sampled_from(ACTIVATIONS)),
                    dropout=draw(st.sampled_from([0.0, 0.1, 0.2, 0.5])))
    return ArchSpec(
        name=draw(st.from_regex(r"[a-z][a-z0-9_.\-]{0,15}", fullmatch=True)),
        input_size=draw(st.integers(8, 40)),
        num_classes=draw(st.integers(1, 20)),
        width_mult=draw(st.sampled_from([0.35, 0.5, 0.75, 1.0, 1.25, 2.0])),
        stem=stem, blocks=tuple(blocks), head=head,
        bn_eps=draw(st.sampled_from([1e-5, 1e-3])),
        bn_momentum=draw(st.sampled_from([0.1, 0.01])),
        se_style=draw(st.sampled_from(SE_STYLES)),
    )
