"""Shared fixtures and hypothesis strategies. Reference figures live in tests/data/.

The suite is hermetic: before any test runs, ``HOME``, ``NAS_CACHE_DIR``, the XDG folders and
the caches of torch and matplotlib point into one temporary home for the whole session (CLI
subprocesses inherit it), holding synthetic latency tables for this machine so that no test
profiles the full space. The user's own cache (wherever ``NAS_CACHE_DIR``, ``XDG_CACHE_HOME``
or ``HOME`` put it when pytest started) is fingerprinted first and checked unchanged when the
session ends: a test that wrote there fails the run.
"""

from __future__ import annotations

import json
import os
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

# `make test` runs the suite on two xdist workers (one per core of the 2-core reference
# machine): each worker computes on one thread so that the two do not fight for the cores.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


# --------------------------------------------------------------------------- hermetic session
HERMETIC = pytest.StashKey[tuple[Path, Path, dict | None]]()  # (home, user cache, snapshot)


def user_cache_dir(environ=os.environ) -> Path:
    """Where nas keeps its cache for ``environ`` (as ``latency_models.lut.cache_dir``)."""
    if environ.get("NAS_CACHE_DIR"):
        return Path(environ["NAS_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or Path(environ.get("HOME") or Path.home()) / ".cache"
    return Path(base) / "nas"


def snapshot(root: Path) -> dict[str, tuple[int, int]] | None:
    """Every file below ``root`` with its size and modification time (None: no folder)."""
    if not root.is_dir():
        return None
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def pytest_configure(config) -> None:
    user_cache = user_cache_dir()
    home = Path(tempfile.mkdtemp(prefix="nas-tests-home-"))
    config.stash[HERMETIC] = (home, user_cache, snapshot(user_cache))
    os.environ.update({
        "HOME": str(home), "NAS_CACHE_DIR": str(home / ".cache" / "nas"),
        "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
        "TORCH_HOME": str(home / ".cache" / "torch"),
    })
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the commands a worker runs: one thread too
        os.environ["OMP_NUM_THREADS"] = "1"
    from tests.helpers import write_synthetic_tables

    write_synthetic_tables(Path(os.environ["NAS_CACHE_DIR"]))


def pytest_sessionfinish(session, exitstatus) -> None:
    home, user_cache, before = session.config.stash[HERMETIC]
    shutil.rmtree(home, ignore_errors=True)
    if snapshot(user_cache) != before:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nERROR: the test session changed the user's cache {user_cache}; tests must "
              f"use the session's temporary NAS_CACHE_DIR")


@pytest.fixture(scope="session")
def user_cache(request) -> tuple[Path, dict | None]:
    """The user's own cache folder and its fingerprint from before the session."""
    _, path, before = request.config.stash[HERMETIC]
    return path, before


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
