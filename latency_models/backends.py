"""Execution backends: each turns a module and an example input into a zero-argument ``run``
callable, timed by :mod:`latency_models.timer`."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nas.errors import LatencyError
from nas.threads import torch_threads

__all__ = ["BACKENDS", "Backend", "Timing", "get_backend", "steady_allocator"]

Runner = Callable[[], object]


# Which per-layer figure a table's sums use: the fastest call, or the median call.
STATISTICS = ("min", "median")


def check_statistic(statistic: str) -> str:
    """``statistic`` if it is one of :data:`STATISTICS`, else a ``LatencyError`` naming them."""
    if statistic not in STATISTICS:
        raise LatencyError(f"unknown latency statistic {statistic!r} (known: "
                           f"{', '.join(STATISTICS)})")
    return statistic


@dataclass(frozen=True)
class Timing:
    """Per-call milliseconds of one candidate."""

    min_ms: float
    median_ms: float
    samples: int
    raw_ms: tuple[float, ...] = ()  # every sample, in round order

    def value(self, statistic: str) -> float:
        return self.min_ms if check_statistic(statistic) == "min" else self.median_ms


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_STEADY: bool | None = None


def steady_allocator() -> bool:
    """Keep freed memory in the process (glibc), so a forward pass does not page-fault.

    By default glibc returns every large block (a multi-MB activation) to the kernel on
    free and takes it back on the next forward: thousands of page faults per inference,
    erratic on a virtual machine and different for a block alone and inside a network (what
    that cost here: docs/latency.md, "A steady allocator"). Applied once per process; returns
    whether it took effect.
    """
    global _STEADY
    if _STEADY is None:
        _STEADY = False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None)
            if mallopt is not None:
                _STEADY = bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
                               and mallopt(_M_TRIM_THRESHOLD, 1 << 40)
                               and mallopt(_M_TOP_PAD, 64 * 1024 * 1024))
        except OSError:
            _STEADY = False
    return _STEADY


class Backend(ABC):
    """Runs modules on one device/runtime. ``threads`` is the intra-op thread count."""

    name: str = ""
    device: str = "cpu"

    def __init__(self, threads: int | None = None):
        self.threads = threads or torch.get_num_threads()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(usable here, why not)."""
        return True, ""

    @abstractmethod
    def prepare(self, module: nn.Module, example: torch.Tensor) -> Runner:
        """A callable that runs ``module`` once on ``example`` (inference, no autograd)."""

    def synchronize(self) -> None:  # noqa: B027 - optional hook, a no-op on the CPU
        """Wait for queued work (GPU backends); the timer calls it around every sample."""

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Thread count and inference mode for the duration of a measurement."""
        steady_allocator()
        with torch_threads(self.threads), torch.inference_mode():
            yield


class TorchBackend(Backend):
    """Eager PyTorch on the CPU."""

    name = "torch"

    def prepare(self, module: nn.Module, example: torch.Tensor) -> Runner:
        module = module.eval()

        def run() -> object:
            return module(example)

        return run


class TorchScriptBackend(Backend):
    """Scripted and frozen (``torch.jit.freeze`` folds BatchNorm into the convolutions)."""

    name = "torchscript"

    def prepare(self, module: nn.Module, example: torch.Tensor) -> Runner:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            frozen = torch.jit.freeze(torch.jit.script(module.eval()))

        def run() -> object:
            return frozen(example)

        return run


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime, CPU execution provider, ``threads`` intra-op threads."""

    name = "onnxruntime"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False, "onnxruntime is not installed"
        return True, ""

    def prepare(self, module: nn.Module, example: torch.Tensor) -> Runner:
        import onnxruntime  # lazy: optional, ~0.24 s to import (-X importtime); this backend only

        buffer = io.BytesIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            # The profiler builds layers and inputs under inference mode; the exporter traces
            # with autograd's machinery, which refuses inference tensors: a plain copy of the
            # input, and no_grad so that nothing is saved for a backward pass.
            example = example.clone()
            # The TorchScript-based exporter is quick per block; the dynamo one is far slower,
            # which would dominate the profile of thousands of blocks.
            torch.onnx.export(module.eval(), (example,), buffer, dynamo=False,
                              input_names=["input"], output_names=["output"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                               providers=["CPUExecutionProvider"])
        feed = {"input": example.numpy()}

        def run() -> object:
            return session.run(None, feed)

        return run


class CudaBackend(Backend):
    """Eager PyTorch on the GPU; samples are bracketed by ``torch.cuda.synchronize``."""

    name = "cuda"
    device = "cuda"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if not torch.cuda.is_available():
            return False, "no CUDA device is visible to torch"
        return True, ""

    def prepare(self, module: nn.Module, example: torch.Tensor) -> Runner:
        module = module.eval().to("cuda")
        example = example.to("cuda")

        def run() -> object:
            return module(example)

        return run

    def synchronize(self) -> None:
        torch.cuda.synchronize()


class CudaGraphBackend(CudaBackend):
    """The module captured once as a CUDA graph and replayed: no per-kernel launch cost."""

    name = "cuda-graph"

    def prepare(self, module: nn.Module, example: torch.Tensor) -> Runner:
        module = module.eval().to("cuda")
        static_input = example.to("cuda").clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up on a side stream before capture, as CUDA requires
                module(static_input)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            module(static_input)
        return graph.replay


BACKENDS: dict[str, type[Backend]] = {
    b.name: b for b in (TorchBackend, TorchScriptBackend, OnnxRuntimeBackend, CudaBackend,
                        CudaGraphBackend)
}


def get_backend(name: str, threads: int | None = None) -> Backend:
    if name not in BACKENDS:
        raise LatencyError(f"unknown latency backend {name!r} (known: {', '.join(BACKENDS)})")
    ok, why = BACKENDS[name].available()
    if not ok:
        raise LatencyError(f"the {name} backend is not available here: {why}")
    return BACKENDS[name](threads)
