"""Data sources: the bundled digits, and tiny fake copies of every user format."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from nas.cli.common import DATA_SOURCES
from nas.data import DataError, load_data


def test_digits_split_is_fixed_and_stratified():
    data = load_data("digits", resolution=32)
    assert data.x_train.shape[1:] == (3, 32, 32) and data.x_train.dtype == torch.uint8
    assert len(data.y_train) + len(data.y_val) == 1797
    assert data.num_classes == 10 and data.resolution == 32
    assert abs(len(data.y_val) - 1797 * 0.2) <= 10
    assert set(data.y_val.tolist()) == set(range(10))
    again = load_data("digits", resolution=32)
    assert torch.equal(data.x_val, again.x_val) and torch.equal(data.y_val, again.y_val)
    other_seed = load_data("digits", resolution=32, seed=1)
    assert not torch.equal(data.y_val, other_seed.y_val)
    x, y = next(data.batches("train", 64))
    assert x.dtype == torch.float32 and x.shape == (64, 3, 32, 32)
    assert abs(float(data.normalise(data.x_train).mean())) < 0.05


def test_digits_hard_is_a_fixed_harder_copy():
    easy, hard = load_data("digits", 16), load_data("digits-hard", 16)
    assert torch.equal(easy.y_val, hard.y_val)
    assert not torch.equal(easy.x_val, hard.x_val)
    assert torch.equal(hard.x_val, load_data("digits-hard", 16).x_val)


def test_batches_cover_the_split_and_shuffle_with_a_generator():
    data = load_data("digits", 8)
    seen = torch.cat([y for _, y in data.batches("val", 50)])
    assert torch.equal(seen, data.y_val)
    a = [y for _, y in data.batches("train", 100, shuffle=True,
                                       generator=torch.Generator().manual_seed(3))]
    b = [y for _, y in data.batches("train", 100, shuffle=True,
                                       generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert sum(len(y) for _, y in data.batches("train", 100, drop_last=True)) % 100 == 0


def _image_folder(root, classes=("cat", "dog"), per_class=5, size=(20, 14)):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_image_folder(tmp_path):
    _image_folder(tmp_path / "pets")
    data = load_data(f"imagefolder:{tmp_path / 'pets'}", resolution=16)
    assert data.classes == ("cat", "dog")
    assert data.x_train.shape[1:] == (3, 16, 16)
    assert len(data.y_train) + len(data.y_val) == 10 and len(data.y_val) == 2


def test_image_folder_with_train_and_val(tmp_path):
    _image_folder(tmp_path / "ds" / "train", per_class=4)
    _image_folder(tmp_path / "ds" / "val", per_class=2)
    data = load_data(f"imagefolder:{tmp_path / 'ds'}", resolution=8)
    assert (len(data.y_train), len(data.y_val)) == (8, 4)


def _cifar(root, per_batch=6):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist()}
        with open(root / name, "wb") as handle:
            pickle.dump(batch, handle)


def test_cifar10(tmp_path):
    _cifar(tmp_path / "cifar-10-batches-py")
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):
        data = load_data(f"cifar10:{path}", resolution=32)
        # val is held out of the five training batches; the test batch is the test split
        assert len(data.y_train) + len(data.y_val) == 30 and len(data.y_val) >= 1
        assert data.x_train.shape[1:] == (3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert load_data(f"cifar10:{tmp_path}", resolution=16).x_train.shape[-1] == 16


def _cifar_like(root, data=None, labels=None):
    """Every CIFAR-10 batch file holding ``data`` and ``labels`` (two valid images by default)."""
    data = np.zeros((2, 3072), np.uint8) if data is None else data
    labels = [1, 2] if labels is None else labels
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}))


def _png_header(path, side):
    """A PNG that claims ``side`` x ``side`` pixels and holds none."""
    import struct
    import zlib

    def chunk(tag, body):
        return (struct.pack(">I", len(body)) + tag + body +
                struct.pack(">I", zlib.crc32(tag + body)))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _mnist(root, train=12, val=4, val_labels=None, skip=None, compress=True):
    """The four MNIST IDX files of random 9x9 images (gzipped like the originals by default)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (train, 9, 9)),
              "train-labels-idx1-ubyte": np.arange(train) % 3,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (val, 9, 9)),
              "t10k-labels-idx1-ubyte": np.arange(val if val_labels is None else val_labels) % 3}
    for name, array in arrays.items():
        if name != skip:
            body = _idx_bytes(array)
            (root / (name + ".gz" if compress else name)).write_bytes(
                gzip.compress(body) if compress else body)
    return arrays


def test_mnist_idx_files(tmp_path):
    arrays = _mnist(tmp_path / "gz")
    data = load_data(f"mnist:{tmp_path / 'gz'}", resolution=9)
    # val: one image per class held out of the 12 training images; test: the 4 t10k images
    assert data.x_train.shape == (9, 3, 9, 9) and data.x_val.shape == (3, 3, 9, 9)
    assert data.x_test.shape == (4, 3, 9, 9) and data.y_test.tolist() == [0, 1, 2, 0]
    assert data.classes == ("0", "1", "2")
    # grey pixels as three equal channels, exactly as stored
    assert torch.equal(data.x_test[:, 1], torch.from_numpy(
        arrays["t10k-images-idx3-ubyte"].astype(np.uint8)))
    assert torch.equal(data.x_train[:, 0], data.x_train[:, 2])
    train_file = {bytes(image) for image in arrays["train-images-idx3-ubyte"].astype(np.uint8)}
    for split in (data.x_train, data.x_val):
        assert {bytes(image[0].numpy()) for image in split} <= train_file
    assert sorted(data.y_val.tolist()) == [0, 1, 2]
    # uncompressed files in torchvision's <root>/raw/ layout, resized
    _mnist(tmp_path / "FashionMNIST" / "raw", compress=False)
    plain = load_data(f"mnist:{tmp_path / 'FashionMNIST'}", resolution=16)
    assert plain.x_train.shape == (9, 3, 16, 16) and plain.num_classes == 3


def test_subset_is_stratified_and_fixed():
    data = load_data("digits", 8)
    small = data.subset(train=200, val=50, seed=3)
    assert len(small.y_train) == 200 and len(small.y_val) == 50
    counts = torch.bincount(small.y_train, minlength=10)
    assert counts.min() >= 19 and counts.max() <= 21
    again = data.subset(train=200, val=50, seed=3)
    assert torch.equal(small.x_train, again.x_train) and torch.equal(small.y_val, again.y_val)
    assert not torch.equal(small.y_train, data.subset(train=200, seed=4).y_train)
    assert data.subset() is data and data.subset(train=10**6) is data  # no limit: as is
    assert len(data.subset(val=10**6).y_val) == len(data.y_val)
    assert "200 train" in small.name
    with pytest.raises(ValueError, match="at least one image per class"):
        data.subset(train=5)


@pytest.mark.parametrize(
    ("make", "source", "words"),
    [
        (lambda p: None, "imagefolder:{p}/absent", "no such directory"),
        (lambda p: (p / "one").mkdir(), "imagefolder:{p}", "at least two class folders"),
        (lambda p: [(p / c).mkdir() for c in "ab"], "imagefolder:{p}", "hold no images"),
        (lambda p: [(p / c).mkdir() for c in "ab"] and (p / "a" / "x.png").write_text("no"),
         "imagefolder:{p}", "not a readable image"),
        (lambda p: None, "cifar10:{p}/absent", "no such directory"),
        (lambda p: (p / "data_batch_1").write_bytes(b""), "cifar10:{p}", "missing data_batch_2"),
        (lambda p: [(p / n).write_bytes(b"junk") for n in
                    [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]],
         "cifar10:{p}", "not a CIFAR-10 python batch"),
        # found by tests/test_fuzz.py: each once loaded as is or escaped as another error
        (lambda p: [(p / c).mkdir() for c in "ab"] and _png_header(p / "a" / "x.png", 10**5),
         "imagefolder:{p}", "DecompressionBombError"),
        (lambda p: _image_folder(p, per_class=1), "imagefolder:{p}", "needs at least 2"),
        (lambda p: _image_folder(p / "train", per_class=1) or
         _image_folder(p / "val", ("cat",), per_class=1) or (p / "train" / "eel").mkdir(),
         "imagefolder:{p}", "class folder 'eel' holds 0 image(s)"),
        (lambda p: _cifar_like(p, data=np.full((2, 3072), 300)), "cifar10:{p}", "0..255"),
        (lambda p: _cifar_like(p, data=np.zeros((2, 3072), np.float32)), "cifar10:{p}", "0..255"),
        (lambda p: _cifar_like(p, labels=[[1], [2]]), "cifar10:{p}", "do not match"),
        (lambda p: _cifar_like(p, data=np.zeros((0, 3072), np.uint8), labels=[]), "cifar10:{p}",
         "the training batches hold no images"),
        (lambda p: None, "cifar100:{p}", f"not understood: use {DATA_SOURCES}"),
        (lambda p: None, "mnist:{p}/absent", "no such directory"),
        (lambda p: _mnist(p, skip="t10k-labels-idx1-ubyte"), "mnist:{p}",
         "missing t10k-labels-idx1-ubyte"),
        (lambda p: _mnist(p) and (p / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08"),
         "mnist:{p}", "not readable"),
        (lambda p: _mnist(p) and (p / "t10k-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(bytes([0, 0, 13, 3]) + bytes(12))), "mnist:{p}",
         "not an IDX file of unsigned bytes with 3"),
        (lambda p: _mnist(p) and (p / "t10k-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(np.zeros((4, 5, 5), np.uint8))[:-3])), "mnist:{p}",
         "holds 97 bytes of data, its header says 100"),
        (lambda p: _mnist(p, val_labels=3), "mnist:{p}", "4 test images but 3 labels"),
        (lambda p: None, "imagefolder:", "not understood"),
    ],
)
def test_bad_data_is_one_clear_error(tmp_path, make, source, words):
    make(tmp_path)
    with pytest.raises(DataError) as info:
        load_data(source.format(p=tmp_path), resolution=16)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_the_seed_is_checked_before_any_data_is_read():
    with pytest.raises(DataError, match=r"seed must be an integer in \[0, 2\^63\), got -1"):
        load_data("digits", 8, seed=-1)


def _fashion_like(root, per_class=12, test_per_class=2):
    """A small Fashion-MNIST look-alike: 10 classes of 28x28 IDX files, gzipped."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), per_class)
    test_labels = np.repeat(np.arange(10), test_per_class)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (len(labels), 28, 28)),
              "train-labels-idx1-ubyte": labels,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (len(test_labels), 28, 28)),
              "t10k-labels-idx1-ubyte": test_labels}
    for name, array in arrays.items():
        (root / f"{name}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    return arrays


def test_fashion_mnist_from_the_environment_with_fixed_splits(tmp_path, monkeypatch):
    arrays = _fashion_like(tmp_path / "fm")
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    data = load_data("fashion-mnist", resolution=32)
    assert data.name == "fashion-mnist" and data.num_classes == 10
    # val: a fixed sixth of the training file, two per class here; test: the t10k files
    assert len(data.y_val) == 20 and len(data.y_train) == 100 and len(data.y_test) == 20
    assert np.bincount(data.y_val.numpy(), minlength=10).tolist() == [2] * 10
    assert data.x_train.shape[1:] == (3, 32, 32)
    again = load_data("fashion-mnist", resolution=32, seed=7)  # the split ignores the seed
    assert torch.equal(again.x_val, data.x_val) and torch.equal(again.x_test, data.x_test)
    native = load_data("fashion-mnist", resolution=28)
    test_file = {bytes(image) for image in arrays["t10k-images-idx3-ubyte"].astype(np.uint8)}
    assert {bytes(image[0].numpy()) for image in native.x_test} == test_file
    assert not {bytes(image[0].numpy()) for image in native.x_val} & test_file
    assert "20 test" in data.describe()
    # the test split is read only by name; sources without one say so
    assert sum(len(y) for _, y in data.batches("test", 8)) == 20
    with pytest.raises(DataError, match="no separate test split"):
        next(load_data("digits", 8).batches("test", 8))


def test_fashion_mnist_missing_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataError) as info:
        load_data("fashion-mnist", resolution=32)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_cli_help_names_every_data_source():
    from nas.data import DATA_SOURCES as LIBRARY_SOURCES

    assert DATA_SOURCES == LIBRARY_SOURCES  # the CLI keeps a copy so that help needs no torch
