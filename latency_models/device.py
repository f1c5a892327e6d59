"""Device fingerprint: what a latency figure was measured on. The key of every cached table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.errors import LatencyError

__all__ = ["DeviceFingerprint", "cpu_model", "fingerprint"]


_INT_FIELDS = ("logical_cores", "threads", "batch", "resolution")
_OPTIONAL_FIELDS = ("cuda_device", "cuda_driver")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@dataclass(frozen=True)
class DeviceFingerprint:
    cpu: str
    logical_cores: int
    threads: int
    torch: str
    backend: str
    dtype: str
    batch: int
    resolution: int
    cuda_device: str | None = None
    cuda_driver: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DeviceFingerprint:
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - names:
            raise ValueError(f"not a device fingerprint (an object with the fields "
                             f"{', '.join(sorted(names))})")
        for name, value in data.items():
            if name in _INT_FIELDS:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str) or (value is None and name in _OPTIONAL_FIELDS)
            if not ok:
                raise ValueError(f"device fingerprint field {name!r}: unexpected "
                                 f"{type(value).__name__}")
        return cls(**data)

    def key(self) -> str:
        """Short stable hash, used in cache file names."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def differences(self, other: DeviceFingerprint) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {theirs[k]!r} (table) vs {mine[k]!r} (here)"
                for k in mine if mine[k] != theirs[k]]

    def describe(self) -> str:
        device = self.cuda_device or self.cpu
        return (f"{device}, {self.backend}, {self.threads}/{self.logical_cores} threads, "
                f"torch {self.torch}, {self.dtype}, batch {self.batch}, "
                f"{self.resolution}x{self.resolution}")

    def __str__(self) -> str:
        return self.describe()


def fingerprint(backend: str = "torch", threads: int | None = None, batch: int = 1,
                resolution: int = 224, dtype: str = "float32") -> DeviceFingerprint:
    cuda_device = cuda_driver = None
    if backend.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LatencyError("the cuda backend needs a CUDA device, and torch sees none here")
        cuda_device = torch.cuda.get_device_name()
        cuda_driver = torch.version.cuda
    return DeviceFingerprint(
        cpu=cpu_model(),
        logical_cores=os.cpu_count() or 1,
        threads=threads or torch.get_num_threads(),
        torch=torch.__version__,
        backend=backend,
        dtype=dtype,
        batch=batch,
        resolution=resolution,
        cuda_device=cuda_device,
        cuda_driver=cuda_driver,
    )
