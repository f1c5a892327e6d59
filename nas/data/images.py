"""Image data held in memory: the splits, batching and normalisation, and the helpers every
source uses to build one (resizing, seeded stratified splits, the held-out validation share).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import DataError

__all__ = ["DataError", "ImageData", "check_resolution", "resize", "short_reason", "source_dir",
           "split_indices", "stratified_indices", "with_held_out"]

# The share of an official training file held out as the validation split, and the seed of
# that split: fixed, so that every run scores on the same images.
HELD_OUT_FRACTION = 1 / 6
HELD_OUT_SEED = 0


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
        train, held = split_indices(len(self.y_train), self.y_train.numpy(), seed, fraction)
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
            kept = torch.from_numpy(stratified_indices(y.numpy(), count, seed))
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
def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, resolution, resolution), bilinear."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear",
                        align_corners=False, antialias=images.shape[-1] > resolution)
    return out.round().clamp(0, 255).to(torch.uint8)


def split_indices(count: int, labels: np.ndarray, seed: int, val_fraction: float = 0.2):
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


def stratified_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices, each class in proportion (largest remainders), seeded; sorted."""
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    share = sizes * count / len(labels)
    quota = np.floor(share).astype(int)
    quota[np.argsort(-(share - quota), kind="stable")[:count - quota.sum()]] += 1
    kept = [rng.choice(np.flatnonzero(labels == label), size=q, replace=False)
            for label, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(kept))


def check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int) or not 8 <= resolution <= 1024:
        raise DataError(f"resolution must be an integer between 8 and 1024, got {resolution!r}")


def source_dir(kind: str, path: str | Path, resolution: int, expected: str) -> Path:
    """The directory of a ``kind:PATH`` source, after the resolution is checked."""
    check_resolution(resolution)
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{kind} {root}: no such directory (expected {expected})")
    return root



def with_held_out(name: str, x_train: torch.Tensor, y_train: torch.Tensor,
                   x_test: torch.Tensor, y_test: torch.Tensor, classes: tuple[str, ...],
                   mean: tuple[float, ...], std: tuple[float, ...]) -> ImageData:
    """A source with an official test set: ``val`` is a fixed, stratified share of the
    training images (``HELD_OUT_FRACTION``), ``test`` the official test images."""
    train, val = split_indices(len(y_train), y_train.numpy(), HELD_OUT_SEED, HELD_OUT_FRACTION)
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return ImageData(name=name, x_train=x_train[train_t], y_train=y_train[train_t],
                     x_val=x_train[val_t], y_val=y_train[val_t], classes=classes,
                     mean=mean, std=std, x_test=x_test, y_test=y_test)


def short_reason(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
