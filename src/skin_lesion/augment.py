"""Batch augmentation on the batch's own device, per sample, in a fixed handful of tensor ops.

Contract for every transform here: the input is a ``uint8`` batch ``(B, H, W, 3)`` (RGB,
channels last, as gathered by index from the in-memory image cache) on any device; the
output is a ``float32`` batch ``(B, 3, S, S)`` on the same device, normalised with the
mean and std the caller passes (from ``models.resolve_preprocessing``, i.e. timm; never
hard-coded here). Move the ``uint8`` batch to the GPU first: it is 4x smaller than floats.

Training augmentation draws its random parameters per sample, on the batch's device, from
torch's global RNG, so ``torch.manual_seed(seed)`` seeds the augmentation too (on CUDA,
``torch.manual_seed`` also seeds the CUDA generators). For a private stream, wrap the call
in ``torch.random.fork_rng()`` and seed inside it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import PADDING_MODES as PADDING_MODES
from skin_lesion.configs import AugmentConfig

logger = logging.getLogger(__name__)

UINT8_MAX = 255.0
CHANNELS = 3
NUM_VIEWS = 2
INTERPOLATION_MODES = ("bilinear", "bicubic")


def to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """Turn a ``uint8`` ``(B, H, W, 3)`` batch into ``float32`` ``(B, 3, H, W)`` in [0, 1].

    Args:
        images: The ``uint8`` RGB batch, channels last.

    Returns:
        The float batch on the same device.

    Raises:
        ValueError: Naming the dtype or shape when the batch is not ``uint8 (B, H, W, 3)``.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (B, H, W, 3), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != CHANNELS:
        raise ValueError(f"images must have shape (B, H, W, 3), got {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div_(UINT8_MAX)


class _Normalize(nn.Module):
    """Subtract ``mean`` and divide by ``std`` per channel, on the input's device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != CHANNELS or len(std) != CHANNELS:
            raise ValueError(f"mean and std need 3 values each, got mean={mean}, std={std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


# torchvision's grayscale weights (ITU-R 601 luma), and the NTSC YIQ transform whose first row
# they are: a hue shift rotates the (I, Q) chroma plane and keeps the luma.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def colour_basis() -> dict[str, torch.Tensor]:
    """The constants :func:`colour_matrices` needs, float32 on the CPU (made once, then kept
    on the device as buffers: creating them per batch would copy from the host each time)."""
    to_yiq = torch.tensor(RGB_TO_YIQ, dtype=torch.float64)
    return {
        "gray": torch.tensor(GRAY_WEIGHTS, dtype=torch.float32),
        "to_yiq": to_yiq.float(),
        "from_yiq": torch.linalg.inv(to_yiq).float(),
    }


def colour_matrices(
    images: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    hue: torch.Tensor,
    basis: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample colour jitter as ``y = matrix @ rgb + offset``, the four steps composed.

    The steps are torchvision's, in one fixed order (torchvision draws an order per image):
    brightness multiplies by ``brightness``; contrast blends with the image's mean grey level
    (``contrast``); saturation blends with the grey image (``saturation``); hue (in turns,
    torchvision's unit) rotates the chroma plane of YIQ, the colour-twist form NVIDIA DALI
    uses, instead of shifting the HSV hue (it keeps the luma; the same number moves pixels
    about 1.7x as far as torchvision's, ``benchmarks/hue_strength.py``). All four are linear
    in the pixel, so they compose into one 3x3 matrix and one offset per sample: one ``bmm``
    over the batch instead of the some 600 tensor ops of kornia's ``ColorJitter`` (an HSV
    round trip for the hue). Unlike torchvision, nothing is clamped between the steps (the
    caller clamps once at the end), which differs only where a step saturates a pixel.

    Args:
        images: ``(B, 3, H, W)`` float RGB in [0, 1]; only its per-sample mean grey is used.
        brightness: ``(B,)`` brightness factors (1 = unchanged).
        contrast: ``(B,)`` contrast factors (1 = unchanged).
        saturation: ``(B,)`` saturation factors (1 = unchanged).
        hue: ``(B,)`` hue shifts in turns (0 = unchanged).
        basis: :func:`colour_basis` on the images' device (made here when omitted).

    Returns:
        ``matrix`` ``(B, 3, 3)`` and ``offset`` ``(B,)`` (added to every channel).
    """
    device, dtype = images.device, images.dtype
    n = images.shape[0]
    basis = {k: v.to(device=device, dtype=dtype) for k, v in (basis or colour_basis()).items()}
    gray, to_yiq, from_yiq = basis["gray"], basis["to_yiq"], basis["from_yiq"]
    eye = torch.eye(3, device=device, dtype=dtype)
    # Saturation: s * I + (1 - s) * (each channel <- grey).
    s = saturation.view(n, 1, 1)
    sat = s * eye + (1 - s) * gray.view(1, 1, 3).expand(n, 3, 3)
    # Hue: rotate (I, Q) by the angle, in YIQ.
    angle = hue * (2 * math.pi)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rotation = torch.stack(
        [
            torch.stack([one, zero, zero], dim=1),
            torch.stack([zero, cos, -sin], dim=1),
            torch.stack([zero, sin, cos], dim=1),
        ],
        dim=1,
    )
    hue_matrix = from_yiq @ rotation @ to_yiq
    # Brightness then contrast: c * b * x + (1 - c) * mean_grey(b * x). Grey (equal channels)
    # is a fixed point of the saturation and hue matrices, so the offset passes through them.
    scale = (contrast * brightness).view(n, 1, 1)
    matrix = scale * (hue_matrix @ sat)
    mean_grey = images.mean(dim=(2, 3)) @ gray
    offset = (1 - contrast) * brightness * mean_grey
    return matrix, offset


def apply_colour(images: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``matrix @ rgb + offset`` for every pixel of each image: ``(B, 3, H, W)`` in and out."""
    mixed = torch.bmm(matrix, images.flatten(2)).view_as(images)
    return mixed.add_(offset.view(-1, 1, 1, 1))


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    """``n`` independent draws from U(low, high) on ``device``, from torch's global RNG."""
    return torch.rand(n, device=device) * (high - low) + low


def _bernoulli(n: int, p: float, device: torch.device) -> torch.Tensor:
    """``n`` independent coin flips with probability ``p``, as a bool tensor on ``device``."""
    return torch.rand(n, device=device) < p


def random_resized_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    device: torch.device,
    tries: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``n`` crop boxes as torchvision's ``RandomResizedCrop`` does, for all at once.

    Per sample: an area fraction from ``U(scale)`` and an aspect ratio (width / height)
    log-uniform in ``ratio``; the first of ``tries`` draws that fits inside the image is kept,
    its corner uniform over the positions where it fits. A sample with none falls back to the
    largest centred box whose ratio lies in ``ratio``. Vectorised: no
    loop over samples and no host sync, whatever the batch size.

    Returns:
        ``(x0, y0, w, h)``, each ``(n,)`` float32, in pixels of the ``height x width`` image.
    """
    area = scale[0] + torch.rand(n, tries, device=device) * (scale[1] - scale[0])
    area = area * (height * width)
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + torch.rand(n, tries, device=device) * (log_high - log_low))
    w = torch.sqrt(area * aspect)
    h = torch.sqrt(area / aspect)
    fits = (w <= width) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first that fits, else 0
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # torchvision's fallback: the whole image, trimmed to the nearest allowed aspect ratio.
    image_ratio = width / height
    if image_ratio < ratio[0]:
        fallback_w, fallback_h = float(width), width / ratio[0]
    elif image_ratio > ratio[1]:
        fallback_w, fallback_h = height * ratio[1], float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)
    any_fits = fits.any(dim=1)
    w = torch.where(any_fits, w, torch.full_like(w, fallback_w))
    h = torch.where(any_fits, h, torch.full_like(h, fallback_h))
    # Where nothing fitted, the fallback box is centred (the draw is kept for a fixed stream).
    x0 = torch.rand(n, device=device).where(any_fits, torch.full_like(w, 0.5)) * (width - w)
    y0 = torch.rand(n, device=device).where(any_fits, torch.full_like(h, 0.5)) * (height - h)
    return x0, y0, w, h


class TrainAugment(nn.Module):
    """Random per-sample augmentation: ``uint8 (B, H, W, 3)`` -> normalised ``(B, 3, S, S)``.

    Every random parameter is drawn for the whole batch in a few vectorised calls. The
    geometry (random resized crop, flips, rotation) is composed into one affine map per
    sample and applied with a single ``grid_sample``; colour jitter is one 3x3 colour matrix
    per sample (:func:`colour_matrices`); the optional blur is :func:`gaussian_blur`. A sample
    that a step skips (by its probability) keeps its input exactly.

    Why not ``kornia.augmentation.AugmentationSequential``, which does the same per sample:
    its random resized crop loops over the samples and 21 of its ops wait for the device, so
    a batch issues thousands of tensor ops (8,034 for a SupCon batch of 2 x 128 views at
    224 px) against the same 535 here whatever the batch, and none waits
    (``benchmarks/augment_cost.py``). On a GPU the host must queue a step's kernels faster
    than the device runs them, and a sync stops the queue. Composing the geometry also
    resamples once instead of twice (crop, then rotation), and the corners a rotation
    uncovers show the skin around the crop where there is some (``rotation_padding`` acts
    only beyond the image). The colour steps run in a fixed order (brightness, contrast,
    saturation, hue), as kornia's ``ColorJitter(order=...)`` does.
    """

    def __init__(self, config: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> None:
        """Keep the knobs and the normalisation.

        Args:
            config: The augmentation knobs.
            mean: Per-channel mean of the encoder's preprocessing (RGB, [0, 1] scale).
            std: Per-channel std of the encoder's preprocessing.
        """
        super().__init__()
        self.config = config
        self.normalize = _Normalize(mean, std)
        for name, value in colour_basis().items():
            self.register_buffer(f"colour_{name}", value, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a ``uint8 (B, H, W, 3)`` batch; see the module docstring."""
        x = self._geometry(to_float_nchw(images))
        x = self._colour(x)
        x = self._blur(x)
        # Colour jitter leaves [0, 1] where a step saturates (colour_matrices): clamp once here.
        return self.normalize(x.clamp_(0.0, 1.0))

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        """Crop, flip and rotate every sample with one affine resampling."""
        config = self.config
        n, _, height, width = x.shape
        device = x.device
        x0, y0, w, h = random_resized_crop_boxes(
            n, height, width, config.crop_scale, config.crop_ratio, device
        )
        flip_x = 1.0 - 2.0 * _bernoulli(n, config.hflip_p, device).float()
        flip_y = 1.0 - 2.0 * _bernoulli(n, config.vflip_p, device).float()
        angle = _uniform(n, -config.rotation_degrees, config.rotation_degrees, device)
        angle = torch.deg2rad(angle) * _bernoulli(n, config.rotation_p, device).float()
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Output coordinates (normalised to [-1, 1], as affine_grid has them) are flipped and
        # rotated about the output's centre, then scaled onto the crop box in the input.
        scale_x, scale_y = w / width, h / height
        centre_x = (2 * x0 + w) / width - 1
        centre_y = (2 * y0 + h) / height - 1
        theta = torch.stack(
            [
                torch.stack([scale_x * cos * flip_x, -scale_x * sin * flip_y, centre_x], dim=1),
                torch.stack([scale_y * sin * flip_x, scale_y * cos * flip_y, centre_y], dim=1),
            ],
            dim=1,
        )
        size = (n, x.shape[1], config.crop_size, config.crop_size)
        grid = F.affine_grid(theta, list(size), align_corners=False)
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode=config.rotation_padding, align_corners=False
        )

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        """Colour jitter as one per-sample 3x3 colour matrix (see :func:`colour_matrices`)."""
        config = self.config
        brightness, contrast, saturation, hue = config.color_jitter
        if config.color_jitter_p == 0 or not any(config.color_jitter):
            return x
        n, device = x.shape[0], x.device
        applied = _bernoulli(n, config.color_jitter_p, device)
        matrix, offset = colour_matrices(
            x,
            _uniform(n, max(0.0, 1 - brightness), 1 + brightness, device),
            _uniform(n, max(0.0, 1 - contrast), 1 + contrast, device),
            _uniform(n, max(0.0, 1 - saturation), 1 + saturation, device),
            _uniform(n, -hue, hue, device),
            {name: getattr(self, f"colour_{name}") for name in ("gray", "to_yiq", "from_yiq")},
        )
        # A sample the gate skips gets the exact identity (bmm with it returns x bit for bit).
        matrix = torch.where(applied.view(n, 1, 1), matrix, torch.eye(3, device=device))
        offset = torch.where(applied, offset, torch.zeros_like(offset))
        return apply_colour(x, matrix, offset)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian blur with a per-sample sigma, on the samples drawn by ``blur_p``."""
        config = self.config
        if config.blur_p == 0:
            return x
        n, device = x.shape[0], x.device
        applied = _bernoulli(n, config.blur_p, device)
        blurred = gaussian_blur(x, _uniform(n, *config.blur_sigma, device), config.blur_kernel)
        return torch.where(applied.view(n, 1, 1, 1), blurred, x)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image with its own Gaussian: two grouped 1-D convolutions, reflect padding.

    The same result as ``kornia.filters.gaussian_blur2d`` with a ``(B, 2)`` sigma (tested
    against it), without its argument checks that wait for the device once a call.

    Args:
        images: ``(B, C, H, W)`` float; ``H`` and ``W`` must exceed ``kernel_size // 2``.
        sigma: ``(B,)`` standard deviations, in pixels, one per image.
        kernel_size: Odd kernel side, in pixels.

    Returns:
        The blurred ``(B, C, H, W)`` batch.
    """
    n, channels, height, width = images.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    weights = torch.exp(-0.5 * (offsets / sigma.to(images.dtype).unsqueeze(1)) ** 2)
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    y = images.reshape(1, n * channels, height, width)
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="reflect"),
        weights.view(-1, 1, 1, kernel_size),
        groups=n * channels,
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="reflect"),
        weights.view(-1, 1, kernel_size, 1),
        groups=n * channels,
    )
    return y.view(n, channels, height, width)


class EvalTransform(nn.Module):
    """Deterministic eval preprocessing, timm style: resize, centre crop, normalise.

    The shorter side is resized to ``crop_size / crop_pct`` (keeping the aspect ratio),
    then the central ``crop_size`` square is kept, as timm's eval transform does. Pass
    timm's ``crop_pct`` (``resolve_preprocessing(encoder)["crop_pct"]``) to match the
    pretrained evaluation; ``crop_pct=1.0`` keeps as much of the image as a square allows.
    """

    def __init__(
        self,
        crop_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        crop_pct: float = 1.0,
        interpolation: str = "bilinear",
    ) -> None:
        """Configure the transform.

        Args:
            crop_size: Side of the square output, in pixels.
            mean: Per-channel mean (RGB, [0, 1] scale).
            std: Per-channel std.
            crop_pct: Fraction of the resized shorter side kept by the centre crop.
            interpolation: ``"bilinear"`` or ``"bicubic"`` (antialiased when shrinking).
        """
        super().__init__()
        if crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if not 0 < crop_pct <= 1:
            raise ValueError(f"crop_pct must lie in (0, 1], got {crop_pct}")
        if interpolation not in INTERPOLATION_MODES:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATION_MODES}, got '{interpolation}'"
            )
        self.crop_size = crop_size
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.normalize = _Normalize(mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocess a ``uint8 (B, H, W, 3)`` batch to normalised ``(B, 3, S, S)``."""
        x = to_float_nchw(images)
        height, width = x.shape[-2:]
        # timm: scale_size = floor(img_size / crop_pct), applied to the shorter side.
        short = int(self.crop_size / self.crop_pct)
        scale = short / min(height, width)
        new_size = (
            max(self.crop_size, round(height * scale)),
            max(self.crop_size, round(width * scale)),
        )
        if new_size != (height, width):
            x = F.interpolate(
                x, size=new_size, mode=self.interpolation, align_corners=False, antialias=True
            )
        top = (new_size[0] - self.crop_size) // 2
        left = (new_size[1] - self.crop_size) // 2
        x = x[..., top : top + self.crop_size, left : left + self.crop_size]
        return self.normalize(x.clamp(0.0, 1.0))


def build_train_augment(
    config: AugmentConfig, mean: Sequence[float], std: Sequence[float]
) -> nn.Module:
    """Build the training augmentation; see :class:`TrainAugment` and the module docstring.

    Args:
        config: The augmentation knobs.
        mean: Per-channel mean from timm's data config.
        std: Per-channel std from timm's data config.

    Returns:
        A module mapping ``uint8 (B, H, W, 3)`` to normalised ``float32 (B, 3, S, S)``.
    """
    return TrainAugment(config, mean, std)


def build_eval_transform(
    crop_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    crop_pct: float = 1.0,
    interpolation: str = "bilinear",
) -> nn.Module:
    """Build the deterministic eval transform; see :class:`EvalTransform`.

    Args:
        crop_size: Side of the square output, in pixels.
        mean: Per-channel mean from timm's data config.
        std: Per-channel std from timm's data config.
        crop_pct: Fraction of the resized shorter side kept by the centre crop.
        interpolation: ``"bilinear"`` or ``"bicubic"``.

    Returns:
        A module mapping ``uint8 (B, H, W, 3)`` to normalised ``float32 (B, 3, S, S)``.
    """
    return EvalTransform(crop_size, mean, std, crop_pct=crop_pct, interpolation=interpolation)


def eval_settings(crop_size: int) -> dict[str, Any]:
    """What evaluation does (``build_eval_transform(crop_size, mean, std)``, as every
    prediction path calls it), in timm's data-config keys, for checkpoints to record: the
    shorter side resized to ``crop_size`` bilinearly, then a centre crop of it."""
    return {
        "input_size": [3, crop_size, crop_size],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
    }


def two_views(augment: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Draw two independent augmentations of every image, for contrastive learning.

    Both views come from one call on a batch holding each image twice, side by side (one
    kernel launch per op instead of two, and a contiguous result); with per-sample
    parameters the two copies of an image get independent draws.

    Args:
        augment: A training augmentation from :func:`build_train_augment`.
        images: ``uint8 (B, H, W, 3)`` batch.

    Returns:
        ``(B, 2, 3, S, S)``: ``[:, 0]`` and ``[:, 1]`` are the two views of each image.
    """
    batch = images.shape[0]
    views = augment(images.repeat_interleave(NUM_VIEWS, dim=0))
    return views.view(batch, NUM_VIEWS, *views.shape[1:])
