"""Datasets for estimating accuracy: nothing is ever downloaded.

``load_data(source, resolution=32)`` with ``source``:

* ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes),
  upsampled to ``resolution`` and split 80/20 with a fixed seed (stratified);
* ``digits-hard``: the same images, each moved by a random affine transform (rotation,
  scale, shift) and pixel noise, drawn once with a fixed seed: harder, so that architectures
  separate in accuracy, and still deterministic;
* ``imagefolder:PATH``: torchvision-style class folders (``PATH/<class>/<image>``), decoded with
  Pillow; ``PATH/train`` and ``PATH/val`` are used if present, otherwise a seeded 80/20 split;
* ``cifar10:PATH``: the standard ``cifar-10-batches-py`` pickle directory;
* ``mnist:PATH``: the four IDX files of MNIST or a drop-in replacement such as Fashion-MNIST
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-…``, gzipped or not; the
  folder itself or torchvision's ``raw/`` below it);
* ``fashion-mnist``: Fashion-MNIST's IDX files from ``$NAS_FASHION_MNIST_DIR`` if set, else
  from Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``).

Splits. Data sets that come with their own test set (the IDX sources, CIFAR-10) keep it apart:
``val``, the split every search-time score uses, is a fixed, stratified sixth of the *training*
file (10,000 of Fashion-MNIST's 60,000; the same images whatever the run's seed), ``train`` the
rest; the official test images are the ``test`` split, read only by final reports. The digits
and image folders have no official test set: ``test`` is absent there.

Images are kept in memory as uint8 (N, C, H, W) and normalised per batch.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import DataError

__all__ = ["DATA_SOURCES", "DataError", "FASHION_MNIST_DIR", "ImageData", "load_data"]

# What ``load_data`` accepts, for help texts.
DATA_SOURCES = ("digits, digits-hard, fashion-mnist, imagefolder:PATH, cifar10:PATH or "
                "mnist:PATH")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_ENV = "NAS_FASHION_MNIST_DIR"
# The share of an official training file held out as the validation split, and the seed of
# that split: fixed, so that every run scores on the same images.
HELD_OUT_FRACTION = 1 / 6
HELD_OUT_SEED = 0

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class ImageData:
    """Train and validation splits held in memory, and the test split where the source has one.

    ``val`` is what search-time scores use; ``test`` (None for sources without an official
    test set) is for final reports only.
    """

    name: str
    x_train: torch.Tensor  # uint8 (N, C, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    @property
    def has_test(self) -> bool:
        return self.y_test is not None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (images.float() / 255.0 - mean) / std

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised float batches of ``train``, ``val`` or ``test``; ``shuffle`` uses
        ``generator``."""
        x, y = self.split(split)
        order = torch.randperm(len(y), generator=generator) if shuffle else torch.arange(len(y))
        stop = len(y) - (len(y) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            yield self.normalise(x[index]), y[index]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of ``train``, ``val`` or ``test``."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "val":
            return self.x_val, self.y_val
        if name == "test":
            if self.x_test is None or self.y_test is None:
                raise DataError(f"{self.name} has no separate test split (use a data set "
                                f"with official test images, e.g. fashion-mnist)")
            return self.x_test, self.y_test
        raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")

    def holdout(self, fraction: float = 0.2, seed: int = 0) -> ImageData:
        """A split of the training images only: ``fraction`` of them (stratified, seeded) become
        the validation set, so that choices made on it (NetAdapt's proposals) never see the
        real validation images."""
        if not 0 < fraction < 1:
            raise DataError(f"the holdout fraction must be in (0, 1), got {fraction}")
        train, held = _split(len(self.y_train), self.y_train.numpy(), seed, fraction)
        train_t, held_t = torch.from_numpy(train), torch.from_numpy(held)
        return dataclasses.replace(
            self, name=f"{self.name} (train minus a {fraction:.0%} holdout)",
            x_train=self.x_train[train_t], y_train=self.y_train[train_t],
            x_val=self.x_train[held_t], y_val=self.y_train[held_t])

    def subset(self, train: int | None = None, val: int | None = None,
               seed: int = 0) -> ImageData:
        """At most ``train`` training and ``val`` validation images, stratified and seeded
        (the same images on every run): a cheaper proxy of a large data set. The test split,
        if any, is kept whole."""
        def pick(x: torch.Tensor, y: torch.Tensor, count: int | None):
            if count is None or count >= len(y):
                return x, y
            if count < self.num_classes:
                raise DataError(f"a subset needs at least one image per class "
                                f"({self.num_classes}), got {count}")
            kept = torch.from_numpy(_stratified(y.numpy(), count, seed))
            return x[kept], y[kept]

        x_train, y_train = pick(self.x_train, self.y_train, train)
        x_val, y_val = pick(self.x_val, self.y_val, val)
        if y_train is self.y_train and y_val is self.y_val:
            return self  # nothing left out
        return dataclasses.replace(
            self, name=f"{self.name} ({len(y_train)} train / {len(y_val)} val subset)",
            x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)

    def describe(self) -> str:
        test = f" / {len(self.y_test)} test" if self.y_test is not None else ""
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} val{test} images, "
                f"{self.num_classes} classes, {self.channels}x{self.resolution}x"
                f"{self.resolution}")


# --------------------------------------------------------------------------- helpers
def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, resolution, resolution), bilinear."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear",
                        align_corners=False, antialias=images.shape[-1] > resolution)
    return out.round().clamp(0, 255).to(torch.uint8)


def _split(count: int, labels: np.ndarray, seed: int, val_fraction: float = 0.2):
    """Stratified, seeded split: the same images go to validation on every run."""
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        val.extend(members[: max(1, round(len(members) * val_fraction))].tolist())
    val_mask = np.zeros(count, dtype=bool)
    val_mask[val] = True
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def _stratified(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices, each class in proportion (largest remainders), seeded; sorted."""
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    share = sizes * count / len(labels)
    quota = np.floor(share).astype(int)
    quota[np.argsort(-(share - quota), kind="stable")[:count - quota.sum()]] += 1
    kept = [rng.choice(np.flatnonzero(labels == label), size=q, replace=False)
            for label, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(kept))


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int) or not 8 <= resolution <= 1024:
        raise DataError(f"resolution must be an integer between 8 and 1024, got {resolution!r}")


def _source_dir(kind: str, path: str | Path, resolution: int, expected: str) -> Path:
    """The directory of a ``kind:PATH`` source, after the resolution is checked."""
    _check_resolution(resolution)
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{kind} {root}: no such directory (expected {expected})")
    return root


# --------------------------------------------------------------------------- digits
def _digits_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()  # bundled with scikit-learn, read from its package data
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)  # (1797, 8, 8)
    return images, digits.target.astype(np.int64)


def _harden(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed random affine transform and pixel noise per image (float (N, 1, H, W))."""
    generator = torch.Generator().manual_seed(seed)
    count = images.shape[0]
    angle = (torch.rand(count, generator=generator) - 0.5) * math.radians(50)
    scale = 0.8 + 0.4 * torch.rand(count, generator=generator)
    shift = (torch.rand(count, 2, generator=generator) - 0.5) * 0.4
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    noise = torch.randn(moved.shape, generator=generator) * 0.15 * 255
    return (moved + noise).clamp(0, 255)


def load_digits_data(resolution: int = 32, *, hard: bool = False, seed: int = 0) -> ImageData:
    _check_resolution(resolution)
    images, labels = _digits_images()
    tensor = torch.from_numpy(images).unsqueeze(1).float()  # (N, 1, 8, 8)
    tensor = F.interpolate(tensor, size=(resolution, resolution), mode="bilinear",
                           align_corners=False)
    if hard:
        tensor = _harden(tensor, seed + 1)
    tensor = tensor.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1)  # RGB stems
    train, val = _split(len(labels), labels, seed)
    label_tensor = torch.from_numpy(labels)
    pixels = tensor[torch.from_numpy(train)].float() / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    return ImageData(
        name="digits-hard" if hard else "digits",
        x_train=tensor[train], y_train=label_tensor[train],
        x_val=tensor[val], y_val=label_tensor[val],
        classes=tuple(str(d) for d in range(10)),
        mean=(mean,) * 3, std=(std,) * 3,
    )


# --------------------------------------------------------------------------- image folders
def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, classes: list[str], resolution: int):
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
            if folder.is_dir() else []
        for file in files:
            try:
                with Image.open(file) as image:
                    rgb = image.convert("RGB").resize((resolution, resolution),
                                                      Image.Resampling.BILINEAR)
                    images.append(np.asarray(rgb, dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{file}: not a readable image ({_short(exc)})") from None
            except Exception as exc:  # Pillow's decoders fail in many ways on broken files
                raise DataError(f"{file}: not a readable image ({type(exc).__name__}: "
                                f"{_short(exc)})") from None
            labels.append(label)
    return images, labels


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_image_folder(path: str | Path, resolution: int = 32, *, seed: int = 0) -> ImageData:
    root = _source_dir("imagefolder", path, resolution, "PATH/<class>/<image> folders")
    split_dirs = (root / "train").is_dir() and (root / "val").is_dir()
    class_root = root / "train" if split_dirs else root
    classes = [p.name for p in _class_folders(class_root)]
    if len(classes) < 2:
        raise DataError(f"imagefolder {class_root}: expected at least two class folders "
                        f"(PATH/<class>/<image>), found {len(classes)}")
    images, labels = _read_folder(class_root, classes, resolution)
    if not images:
        raise DataError(f"imagefolder {class_root}: the class folders hold no images "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    # Every class needs training images, and without a val/ folder one for validation too.
    needed = 1 if split_dirs else 2
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < needed:
        name = classes[int(counts.argmin())]
        raise DataError(f"imagefolder {class_root}: class folder {name!r} holds "
                        f"{int(counts.min())} image(s), needs at least {needed}"
                        f"{'' if split_dirs else ' (one for training, one for validation)'}")
    if split_dirs:
        val_images, val_labels = _read_folder(root / "val", classes, resolution)
        if not val_images:
            raise DataError(f"imagefolder {root / 'val'}: no images in the class folders")
        x_train = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        x_val = torch.from_numpy(np.stack(val_images)).permute(0, 3, 1, 2).contiguous()
        y_train, y_val = torch.tensor(labels), torch.tensor(val_labels)
    else:
        x_all = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        y_all = np.array(labels)
        train, val = _split(len(y_all), y_all, seed)
        x_train, x_val = x_all[train], x_all[val]
        y_train, y_val = torch.from_numpy(y_all[train]), torch.from_numpy(y_all[val])
    return ImageData(name=f"imagefolder:{root}", x_train=x_train, y_train=y_train.long(),
                     x_val=x_val, y_val=y_val.long(), classes=tuple(classes),
                     mean=IMAGENET_MEAN, std=IMAGENET_STD)


# --------------------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def _cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(file, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated pickles and wrong contents fail in many ways
        raise DataError(f"cifar10 {file}: not a CIFAR-10 python batch ({type(exc).__name__})") \
            from None
    # Checked, not cast: a cast would wrap 256 to 0 and turn labels of shape (N, 1) into images.
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or (data.size and (
            data.dtype.kind not in "iu" or not 0 <= data.min() <= data.max() <= 255)):
        raise DataError(f"cifar10 {file}: 'data' must be N x 3072 pixel values in 0..255")
    if labels.ndim != 1 or len(labels) != len(data) or (len(labels) and (
            labels.dtype.kind not in "iu" or not 0 <= labels.min() <= labels.max() < 10)):
        raise DataError(f"cifar10 {file}: images and labels do not match")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(path: str | Path, resolution: int = 32) -> ImageData:
    root = _source_dir("cifar10", path, resolution, "the cifar-10-batches-py folder with "
                       "data_batch_1..5 and test_batch")
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
    missing = [f.name for f in [*train_files, root / "test_batch"] if not f.is_file()]
    if missing:
        raise DataError(f"cifar10 {root}: missing {', '.join(missing)} (expected the "
                        f"cifar-10-batches-py folder with data_batch_1..5 and test_batch)")
    parts = [_cifar_batch(f) for f in train_files]
    x_train = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    y_train = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    x_test, y_test = (torch.from_numpy(a) for a in _cifar_batch(root / "test_batch"))
    if len(y_train) < 2 or not len(y_test):
        raise DataError(f"cifar10 {root}: the {'training' if len(y_train) < 2 else 'test'} "
                        f"batches hold {'too few' if len(y_train) else 'no'} images")
    return _with_held_out(f"cifar10:{root}", _resize(x_train, resolution), y_train,
                          _resize(x_test, resolution), y_test, CIFAR10_CLASSES,
                          CIFAR10_MEAN, CIFAR10_STD)


def _with_held_out(name: str, x_train: torch.Tensor, y_train: torch.Tensor,
                   x_test: torch.Tensor, y_test: torch.Tensor, classes: tuple[str, ...],
                   mean: tuple[float, ...], std: tuple[float, ...]) -> ImageData:
    """A source with an official test set: ``val`` is a fixed, stratified share of the
    training images (``HELD_OUT_FRACTION``), ``test`` the official test images."""
    train, val = _split(len(y_train), y_train.numpy(), HELD_OUT_SEED, HELD_OUT_FRACTION)
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return ImageData(name=name, x_train=x_train[train_t], y_train=y_train[train_t],
                     x_val=x_train[val_t], y_val=y_train[val_t], classes=classes,
                     mean=mean, std=std, x_test=x_test, y_test=y_test)


# --------------------------------------------------------------------------- MNIST (IDX)
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
        raise DataError(f"mnist {file}: not readable ({_short(exc)})") from None
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
    root = _source_dir("mnist", path, resolution, "the four IDX files train-images-idx3-ubyte, "
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
    x_train = _resize(tensors["x_train"].unsqueeze(1), resolution)
    pixels = x_train.float() / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    x_test = _resize(tensors["x_test"].unsqueeze(1), resolution)
    return _with_held_out(name or f"mnist:{Path(path)}", x_train.repeat(1, 3, 1, 1),
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


# --------------------------------------------------------------------------- entry point
def load_data(source: str = "digits", resolution: int = 32, *, seed: int = 0) -> ImageData:
    """One of ``DATA_SOURCES``: ``digits``, ``digits-hard``, ``fashion-mnist``,
    ``imagefolder:PATH``, ``cifar10:PATH`` or ``mnist:PATH``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise DataError(f"the data seed must be an integer in [0, 2^63), got {seed!r}")
    kind, sep, path = source.partition(":")
    if kind in ("digits", "digits-hard") and not sep:
        return load_digits_data(resolution, hard=kind == "digits-hard", seed=seed)
    if kind == "imagefolder" and path:
        return load_image_folder(path, resolution, seed=seed)
    if kind == "cifar10" and path:
        return load_cifar10(path, resolution)
    if kind == "mnist" and path:
        return load_mnist(path, resolution)
    if kind == "fashion-mnist" and not sep:
        _check_resolution(resolution)
        return load_mnist(fashion_mnist_dir(), resolution, name="fashion-mnist")
    raise DataError(f"data source {source!r} not understood: use {DATA_SOURCES}")
