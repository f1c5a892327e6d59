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

from nas.data.digits import load_digits_data
from nas.data.folders import load_cifar10, load_image_folder
from nas.data.idx import FASHION_MNIST_DIR, fashion_mnist_dir, load_mnist
from nas.data.images import DataError, ImageData, check_resolution

__all__ = ["DATA_SOURCES", "DataError", "FASHION_MNIST_DIR", "ImageData", "load_cifar10",
           "load_data", "load_digits_data", "load_image_folder", "load_mnist"]

# What ``load_data`` accepts, for help texts.
DATA_SOURCES = ("digits, digits-hard, fashion-mnist, imagefolder:PATH, cifar10:PATH or "
                "mnist:PATH")


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
        check_resolution(resolution)
        return load_mnist(fashion_mnist_dir(), resolution, name="fashion-mnist")
    raise DataError(f"data source {source!r} not understood: use {DATA_SOURCES}")
