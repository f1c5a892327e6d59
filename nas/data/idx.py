"""The ``mnist:PATH`` and ``fashion-mnist`` sources: MNIST-format IDX files."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch

from nas.data.images import DataError, ImageData, resize, short_reason, source_dir, with_held_out

__all__ = ["FASHION_MNIST_DIR", "fashion_mnist_dir", "load_mnist"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_ENV = "NAS_FASHION_MNIST_DIR"
MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
               "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _idx_file(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def _read_idx(file: Path, dims: int) -> np.ndarray:
    """An IDX array of unsigned bytes with ``dims`` dimensions (images 3, labels 1)."""
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:  # a truncated or corrupted gzip stream
        raise DataError(f"mnist {file}: not readable ({short_reason(exc)})") from None
    # Header: two zero bytes, the type (0x08 = unsigned byte), the number of dimensions, then
    # each dimension as a big-endian 32-bit integer.
    header = 4 + 4 * dims
    if len(raw) < header or raw[:4] != bytes([0, 0, 8, dims]):
        raise DataError(f"mnist {file}: not an IDX file of unsigned bytes with {dims} "
                        f"dimension(s)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if len(raw) - header != math.prod(shape):
        raise DataError(f"mnist {file}: holds {len(raw) - header} bytes of data, its header "
                        f"says {math.prod(shape)} ({'x'.join(map(str, shape))})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(path: str | Path, resolution: int = 32, *, name: str | None = None) -> ImageData:
    """MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST), grey images as three channels:
    ``val`` a fixed sixth of the training file, ``test`` the t10k files."""
    root = source_dir("mnist", path, resolution, "the four IDX files train-images-idx3-ubyte, "
                       "train-labels-idx1-ubyte, t10k-…, .gz or not")
    if _idx_file(root, MNIST_FILES["x_train"]) is None and (root / "raw").is_dir():
        root = root / "raw"  # torchvision's layout: <root>/<Dataset>/raw/
    files = {key: _idx_file(root, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[key] for key, file in files.items() if file is None]
    if missing:
        raise DataError(f"mnist {root}: missing {', '.join(missing)} (.gz or not)")
    arrays = {key: _read_idx(file, 3 if key.startswith("x") else 1)
              for key, file in files.items() if file is not None}
    for split, least in (("train", 2), ("test", 1)):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels) or len(labels) < least:
            raise DataError(f"mnist {root}: {len(images)} {split} images but {len(labels)} "
                            f"labels")
    classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    tensors = {key: torch.from_numpy(array.copy()) for key, array in arrays.items()}
    x_train = resize(tensors["x_train"].unsqueeze(1), resolution)
    pixels = x_train.float() / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    x_test = resize(tensors["x_test"].unsqueeze(1), resolution)
    return with_held_out(name or f"mnist:{Path(path)}", x_train.repeat(1, 3, 1, 1),
                          tensors["y_train"].long(), x_test.repeat(1, 3, 1, 1),
                          tensors["y_test"].long(), tuple(str(c) for c in range(classes)),
                          (mean,) * 3, (std,) * 3)


def fashion_mnist_dir() -> Path:
    """Where ``fashion-mnist`` is read from: ``$NAS_FASHION_MNIST_DIR``, else Debian's
    package directory; a missing folder is a ``DataError`` naming the install command."""
    configured = os.environ.get(FASHION_MNIST_ENV)
    root = Path(configured) if configured else FASHION_MNIST_DIR
    if not root.is_dir() or _idx_file(root, MNIST_FILES["x_train"]) is None:
        where = f"${FASHION_MNIST_ENV}={configured}" if configured else str(root)
        raise DataError(f"fashion-mnist: no IDX files in {where}; install them with "
                        f"`apt-get install dataset-fashion-mnist`, or set "
                        f"{FASHION_MNIST_ENV} to a folder holding the four files")
    return root
