"""The ``digits`` and ``digits-hard`` sources: scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.images import ImageData, check_resolution, split_indices

__all__ = ["load_digits_data"]


def _digits_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # lazy: ~1.2 s to import (-X importtime)

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
    check_resolution(resolution)
    images, labels = _digits_images()
    tensor = torch.from_numpy(images).unsqueeze(1).float()  # (N, 1, 8, 8)
    tensor = F.interpolate(tensor, size=(resolution, resolution), mode="bilinear",
                           align_corners=False)
    if hard:
        tensor = _harden(tensor, seed + 1)
    tensor = tensor.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1)  # RGB stems
    train, val = split_indices(len(labels), labels, seed)
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
