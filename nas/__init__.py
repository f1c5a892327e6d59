"""Hardware-aware neural architecture search in the manner of MobileNetV3.

The public API::

    from search_spaces import zoo
    import nas

    spec = zoo.get("mobilenet_v3_large", width_mult=0.75)
    model = nas.build_model(spec)
    nas.count_madds(spec), nas.count_params(spec)
    nas.save(model, "v3l.pt"); model = nas.load("v3l.pt")

Attributes that need torch are imported on first use, so ``import nas.spec`` stays pure Python.
"""

from __future__ import annotations

import importlib
from typing import Any

from nas.spec import ArchSpec, BlockSpec, HeadSpec, SpecError, StemSpec

__version__ = "0.1.0"

_LAZY = {
    "build_model": "nas.build",
    "count_params": "nas.build",
    "spec_of": "nas.build",
    "count_madds": "nas.flops",
    "save": "nas.export",
    "load": "nas.export",
    "load_spec": "nas.export",
}

__all__ = ["ArchSpec", "BlockSpec", "HeadSpec", "SpecError", "StemSpec", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
