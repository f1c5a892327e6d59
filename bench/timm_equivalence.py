"""`nas export --format timm` built by timm itself: parameter counts and outputs against ours.

For V3-Large, V3-Small, V3-Large ×0.75 and networks sampled from the block-wise search space
(the first seeds whose head is one of V3's: timm's MobileNetV3 has no head without the hidden
layer; and one whose stem's activation differs from the head's): the spec is exported with
``--format timm``, the written file's ``create_model()`` builds timm's ``MobileNetV3`` with
timm's decoder, and the two networks are compared: parameter counts (must be equal), then our
weights copied into timm's tensor by tensor in registration order (shapes must agree up to the
hidden layer's 1x1-conv form) and the outputs of both in eval mode on one batch (max abs
difference must be <= 1e-5). For V3-Large and V3-Small timm's own preset
(``mobilenetv3_large_100``, ``mobilenetv3_small_100``) is counted beside.

Needs timm (and a torch it imports beside): `make bench-torchvision` runs it in `.venv-tv`,
and `bench/torchvision_equivalence.py` stores its rows.

    python bench/timm_equivalence.py
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nas.build import build_model, count_params  # noqa: E402
from nas.export import export  # noqa: E402
from search_spaces import zoo  # noqa: E402
from search_spaces.mobilenetv3 import V3_LARGE_HEAD, V3_SMALL_HEAD, default_space  # noqa: E402

TOLERANCE = 1e-5
TIMM_PRESETS = {"mobilenet_v3_large": "mobilenetv3_large_100",
                "mobilenet_v3_small": "mobilenetv3_small_100"}
SAMPLED = 3  # sampled networks with a V3 head


def networks() -> list[tuple[str, object]]:
    """(label, spec) of every network compared."""
    chosen = [(name, zoo.get(name)) for name in TIMM_PRESETS]
    chosen.append(("mobilenet_v3_large x0.75", zoo.get("mobilenet_v3_large", width_mult=0.75)))
    space, seed, relu_stem = default_space(), 0, False
    while len(chosen) < len(TIMM_PRESETS) + 1 + SAMPLED or not relu_stem:
        spec = space.sample(np.random.default_rng(seed), name=f"sampled_seed{seed}")
        seed += 1
        if spec.head not in (V3_LARGE_HEAD, V3_SMALL_HEAD):
            continue
        if len(chosen) < len(TIMM_PRESETS) + 1 + SAMPLED:
            chosen.append((f"search space sample, seed {seed - 1}", spec))
        elif spec.stem.act != spec.head.hidden_act:  # the stem's activation set after the build
            chosen.append((f"search space sample, seed {seed - 1} (ReLU stem)", spec))
        relu_stem |= spec.stem.act != spec.head.hidden_act
    return chosen


def _load(path: Path):
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def copy_in_order(source: torch.nn.Module, target: torch.nn.Module) -> str:
    """Copy ``source``'s state into ``target`` entry by entry in registration order; '' when
    every pair has the same number of elements, else why not."""
    ours, theirs = list(source.state_dict().items()), list(target.state_dict().items())
    if len(ours) != len(theirs):
        return f"{len(ours)} state entries vs timm's {len(theirs)}"
    state = {}
    for (name, tensor), (timm_name, timm_tensor) in zip(ours, theirs, strict=True):
        if tensor.numel() != timm_tensor.numel():
            return f"{name} {tuple(tensor.shape)} vs timm's {timm_name} {tuple(timm_tensor.shape)}"
        state[timm_name] = tensor.reshape(timm_tensor.shape).clone()
    target.load_state_dict(state, strict=True)
    return ""


def compare(label: str, spec, path: Path) -> dict:
    import timm

    export(spec, "timm", path)
    module = _load(path)
    torch.manual_seed(0)
    ours = build_model(spec).eval()
    theirs = module.create_model().eval()
    row = {"network": label, "arch_def": module.ARCH_DEF, "params_ours": count_params(ours),
           "params_timm": count_params(theirs), "timm_preset": None, "params_timm_preset": None}
    preset = TIMM_PRESETS.get(label)
    if preset:
        row["timm_preset"] = preset
        row["params_timm_preset"] = count_params(timm.create_model(preset, pretrained=False))
    why = copy_in_order(ours, theirs)
    row["weights_copied"] = not why
    row["not_copied_because"] = why or None
    row["max_abs_diff"] = None
    if not why:
        size = spec.scaled().input_size
        x = torch.randn(2, spec.stem.in_ch, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            row["max_abs_diff"] = (ours(x) - theirs(x)).abs().max().item()
    return row


def timm_rows() -> tuple[list[dict], list[str], str]:
    """(rows, failures, timm version)."""
    import timm

    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, spec) in enumerate(networks()):
            row = compare(label, spec, Path(tmp) / f"network{index}_timm.py")
            rows.append(row)
            if row["params_ours"] != row["params_timm"]:
                failures.append(f"timm {label}: {row['params_ours']:,} params vs timm "
                                f"{row['params_timm']:,}")
            if row["max_abs_diff"] is None or row["max_abs_diff"] > TOLERANCE:
                failures.append(f"timm {label}: outputs not equal "
                                f"({row['not_copied_because'] or row['max_abs_diff']})")
    return rows, failures, timm.__version__


def print_rows(rows: list[dict], version: str) -> None:
    print(f"# --format timm built by timm {version}")
    print("| network | params ours | params timm (from our arch_def) | timm preset | "
          "max abs diff |")
    print("|---|---|---|---|---|")
    for r in rows:
        preset = f"{r['timm_preset']} {r['params_timm_preset']:,}" if r["timm_preset"] else "-"
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        print(f"| {r['network']} | {r['params_ours']:,} | {r['params_timm']:,} | {preset} | "
              f"{diff} |")


def main() -> int:
    try:
        import timm  # noqa: F401
    except Exception as exc:
        sys.exit(f"timm does not import here ({exc}); run `make bench-torchvision`")
    rows, failures, version = timm_rows()
    print_rows(rows, version)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
