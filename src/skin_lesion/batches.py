"""Batches gathered by index from the in-memory (or on-GPU) image cache.

The cache is decoded once by data_processing. Training gathers rows of that uint8 array by
index: no per-item JPEG decode, no DataLoader workers. When the selected images fit on the
GPU (``placement: auto``), they are copied there once and every batch is a device-side
gather; otherwise batches are gathered in pinned host memory and copied asynchronously.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterator
from typing import Literal, NamedTuple

import numpy as np
import torch

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import Placement

logger = logging.getLogger(__name__)

Sampling = Literal["uniform", "balanced", "inverse", "sqrt_inverse"]
# ``auto`` puts the images on the GPU when they take at most this share of free memory.
AUTO_GPU_SHARE = 0.5


class Batch(NamedTuple):
    """One training batch on the device.

    Attributes:
        images: uint8 ``(B, H, W, 3)`` straight from the cache (augmentation happens later).
        labels: int64 ``(B,)`` class indices.
        meta: float32 ``(B, F)`` tabular features (metadata fusion), or None.
    """

    images: torch.Tensor
    labels: torch.Tensor
    meta: torch.Tensor | None = None


def class_sampling_weights(labels: np.ndarray, sampling: Sampling) -> np.ndarray | None:
    """Per-sample weights for class re-balancing, or None for uniform shuffling.

    ``balanced``/``inverse`` weight each sample by 1/n_class (every class drawn equally
    often); ``sqrt_inverse`` by 1/sqrt(n_class), a milder re-balancing.
    """
    if sampling == "uniform":
        return None
    counts = np.bincount(labels)
    # A class absent from the labels gets an infinite weight no image carries: no warning.
    with np.errstate(divide="ignore"):
        per_class = {
            "balanced": 1.0 / counts,
            "inverse": 1.0 / counts,
            "sqrt_inverse": 1.0 / np.sqrt(counts),
        }
    if sampling not in per_class:
        raise ValueError(
            f"sampling must be one of uniform, balanced, inverse, sqrt_inverse; got {sampling!r}"
        )
    weights = per_class[sampling][labels]
    return weights / weights.sum()


class BatchSource:
    """Seeded ``Batch``es (uint8 images NHWC, int64 labels, optional features) on ``device``.

    The order of epoch ``e`` depends only on ``(seed, stream, e)``, so a resumed run sees
    exactly the batches an uninterrupted run would, without saving sampler state. The
    classifier's two phases draw from streams of their own (:meth:`with_stream`): with one
    stream, each counting its epochs from 0, warm-up epoch ``e`` and fine-tuning epoch ``e``
    had the same order, and so had SupCon's epoch ``e`` (its batches of 64 the classifier's
    batches of 32 two by two) until 2026-12-07.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        seed: int,
        sampling: Sampling = "uniform",
        placement: Placement = "auto",
        drop_last: bool = True,
        meta: np.ndarray | None = None,
        even: bool = False,
    ) -> None:
        """Select ``images[indices]`` and place them once.

        Args:
            images: The cache array ``(N, H, W, 3)`` uint8 (a memory map is fine).
            labels: Class index of every cached image, shape ``(N,)``.
            indices: Rows of ``images`` that this source draws from (e.g. the train split).
            batch_size: Images per batch.
            device: Where batches are delivered.
            seed: Seed of the sampling order.
            sampling: ``uniform`` shuffling, or class re-balancing with replacement.
            placement: ``device`` copies the selected images to ``device`` once, ``host``
                keeps them in RAM (each batch pinned on its way to CUDA), ``auto`` picks
                ``device`` when they fit.
            drop_last: Drop a last incomplete batch (keeps batch statistics stable).
            meta: Optional per-image float features ``(N, F)``, gathered with the images.
            even: Batches of an even size (MixUp/CutMix pair images within a batch): a
                ``batch_size`` clipped to an odd number of images loses one more.
        """
        if len(indices) == 0:
            raise ValueError("BatchSource needs at least one image; the selection is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = min(batch_size, len(indices)) if drop_last else batch_size
        if even and self.batch_size % 2:
            if self.batch_size == 1:
                raise ValueError(
                    "MixUp/CutMix pair images within a batch: the selection has only 1 image"
                )
            self.batch_size -= 1
        if self.batch_size < batch_size:
            logger.warning(
                "batch_size %d gives batches of %d here (%d training images%s); the "
                "parameters still record %d",
                batch_size,
                self.batch_size,
                len(indices),
                ", and MixUp/CutMix pair images within an even batch" if even else "",
                batch_size,
            )
        self.device = device
        self.seed = seed
        self.stream = ""
        self.drop_last = drop_last
        self.labels = torch.as_tensor(np.asarray(labels)[indices], dtype=torch.int64)
        self.meta = (
            None if meta is None else torch.as_tensor(np.asarray(meta, dtype=np.float32)[indices])
        )
        weights = class_sampling_weights(self.labels.numpy(), sampling)
        self.weights = None if weights is None else torch.as_tensor(weights)
        host = torch.from_numpy(np.ascontiguousarray(images[np.asarray(indices)]))
        self.on_device = self._place(host, placement)
        if self.on_device:
            self.images = host.to(device)
            self.labels = self.labels.to(device)
            self.meta = None if self.meta is None else self.meta.to(device)
        else:
            # Not pinned: gathering a batch (advanced indexing) copies into a new, pageable
            # tensor whatever the source, so a pinned cache only held a second copy of it in
            # page-locked memory; each batch is pinned on its way (epoch).
            self.images = host
        logger.info(
            "BatchSource: %d images (%.1f MiB) on %s, batch %d, %s sampling",
            len(indices),
            host.numel() / 2**20,
            device if self.on_device else "host",
            self.batch_size,
            sampling,
        )

    def _place(self, host: torch.Tensor, placement: Placement) -> bool:
        if placement not in ("auto", "device", "host"):
            raise ValueError(f"placement must be auto, device or host; got {placement!r}")
        if self.device.type == "cpu" or placement == "host":
            return False
        if placement == "device" or self.device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(self.device)
        # Blocks PyTorch's allocator holds but no tensor uses (pretraining's, in the same
        # run) are free to this process though the driver counts them as used.
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return host.numel() <= AUTO_GPU_SHARE * free

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def with_stream(self, stream: str) -> BatchSource:
        """This source (the same placed images, no copy) drawing the orders of ``stream``."""
        view = copy.copy(self)
        view.stream = stream
        return view

    def _epoch_seed(self, epoch: int) -> int:
        """The seed of ``epoch``'s order; the default stream keeps the formula it had before
        streams (SupCon's orders, and so its encoders, are those of earlier runs)."""
        if not self.stream:
            return self.seed * 100_003 + epoch
        key = f"{self.stream}:{self.seed}:{epoch}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (a function of the seed, the stream and the epoch
        only)."""
        generator = torch.Generator().manual_seed(self._epoch_seed(epoch))
        n = len(self.labels)
        if self.weights is None:
            return torch.randperm(n, generator=generator)
        return torch.multinomial(self.weights, n, replacement=True, generator=generator)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Yield the batches of ``epoch``."""
        order = self.order(epoch)
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            if self.on_device:
                index = index.to(self.device, non_blocking=True)
                meta = None if self.meta is None else self.meta[index]
                yield Batch(self.images[index], self.labels[index], meta)
                continue
            parts = [self.images[index], self.labels[index]]
            parts.append(None if self.meta is None else self.meta[index])
            if self.device.type == "cuda":
                parts = [None if p is None else p.pin_memory() for p in parts]
            yield Batch(
                *(None if p is None else p.to(self.device, non_blocking=True) for p in parts)
            )
