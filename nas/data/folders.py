"""The ``imagefolder:PATH`` and ``cifar10:PATH`` sources: images read from local files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nas.data.images import (
    DataError,
    ImageData,
    resize,
    short_reason,
    source_dir,
    split_indices,
    with_held_out,
)

__all__ = ["load_cifar10", "load_image_folder"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)



def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, classes: list[str], resolution: int):
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
                raise DataError(f"{file}: not a readable image ({short_reason(exc)})") from None
            except Exception as exc:  # Pillow's decoders fail in many ways on broken files
                raise DataError(f"{file}: not a readable image ({type(exc).__name__}: "
                                f"{short_reason(exc)})") from None
            labels.append(label)
    return images, labels



def load_image_folder(path: str | Path, resolution: int = 32, *, seed: int = 0) -> ImageData:
    root = source_dir("imagefolder", path, resolution, "PATH/<class>/<image> folders")
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
        train, val = split_indices(len(y_all), y_all, seed)
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
    root = source_dir("cifar10", path, resolution, "the cifar-10-batches-py folder with "
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
    return with_held_out(f"cifar10:{root}", resize(x_train, resolution), y_train,
                          resize(x_test, resolution), y_test, CIFAR10_CLASSES,
                          CIFAR10_MEAN, CIFAR10_STD)
