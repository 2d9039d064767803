"""Batch augmentation on the batch's own device, with kornia.

Contract for every transform here: the input is a ``uint8`` batch ``(B, H, W, 3)`` (RGB,
channels last, as gathered by index from the in-memory image cache) on any device; the
output is a ``float32`` batch ``(B, 3, S, S)`` on the same device, normalised with the
mean and std the caller passes (from ``models.resolve_preprocessing``, i.e. timm; never
hard-coded here). Move the ``uint8`` batch to the GPU first: it is 4x smaller than floats.

Training augmentation draws its random parameters per sample (``same_on_batch=False``)
from torch's global RNG, which is what kornia uses, so ``torch.manual_seed(seed)`` seeds
the augmentation too (on CUDA, ``torch.manual_seed`` also seeds the CUDA generators).
For a private stream, wrap the call in ``torch.random.fork_rng()`` and seed inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

UINT8_MAX = 255.0
CHANNELS = 3
NUM_VIEWS = 2
INTERPOLATION_MODES = ("bilinear", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection")


@dataclass(frozen=True)
class AugmentConfig:
    """Knobs of the training augmentation (``params:augment``).

    Defaults follow SimCLR/SupCon (Chen et al. 2020, Appendix A; Khosla et al. 2020):
    random resized crop, flips, colour jitter with p=0.8, optional Gaussian blur with a
    kernel of about 10% of the crop. Dermoscopy has no canonical orientation, so vertical
    flips and rotations by any angle are label-preserving.

    Attributes:
        crop_size: Side of the square output crop, in pixels.
        crop_scale: Range of the crop's area as a fraction of the image's.
        crop_ratio: Range of the crop's aspect ratio (width / height).
        hflip_p: Probability of a horizontal flip.
        vflip_p: Probability of a vertical flip.
        rotation_degrees: Rotations are drawn uniformly from ``[-deg, +deg]``.
        rotation_p: Probability of a rotation.
        rotation_padding: How the corners uncovered by a rotation are filled:
            ``"reflection"`` (default: no black corners), ``"border"`` or ``"zeros"``.
        color_jitter: Brightness, contrast, saturation and hue strengths
            (torchvision's ``ColorJitter`` semantics).
        color_jitter_p: Probability of colour jitter.
        blur_p: Probability of a Gaussian blur.
        blur_sigma: Range of the blur's standard deviation, in pixels.
        blur_kernel: Side of the blur kernel, in pixels; must be odd.
    """

    crop_size: int = 224
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    rotation_degrees: float = 180.0
    rotation_p: float = 0.5
    rotation_padding: str = "reflection"
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.05)
    color_jitter_p: float = 0.8
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 23

    def __post_init__(self) -> None:
        """Reject values that kornia would fail on later, or silently misuse."""
        if self.crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")
        for name in ("hflip_p", "vflip_p", "rotation_p", "color_jitter_p", "blur_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(
                    f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}"
                )
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale must lie in (0, 1], got {self.crop_scale}")
        if self.blur_kernel <= 0 or self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be a positive odd number, got {self.blur_kernel}")
        if self.rotation_padding not in PADDING_MODES:
            raise ValueError(
                f"rotation_padding must be one of {PADDING_MODES}, got '{self.rotation_padding}'"
            )
        if any(v < 0 for v in self.color_jitter):
            raise ValueError(f"color_jitter strengths must be >= 0, got {self.color_jitter}")


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


class TrainAugment(nn.Module):
    """Random per-sample augmentation: ``uint8 (B, H, W, 3)`` -> normalised ``(B, 3, S, S)``."""

    def __init__(self, config: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> None:
        """Build the kornia pipeline from ``config``.

        Args:
            config: The augmentation knobs.
            mean: Per-channel mean of the encoder's preprocessing (RGB, [0, 1] scale).
            std: Per-channel std of the encoder's preprocessing.
        """
        super().__init__()
        self.config = config
        size = (config.crop_size, config.crop_size)
        brightness, contrast, saturation, hue = config.color_jitter
        self.ops = K.AugmentationSequential(
            K.RandomResizedCrop(size, scale=config.crop_scale, ratio=config.crop_ratio),
            K.RandomHorizontalFlip(p=config.hflip_p),
            K.RandomVerticalFlip(p=config.vflip_p),
            # RandomAffine rather than RandomRotation: only it offers a padding mode.
            K.RandomAffine(
                degrees=config.rotation_degrees,
                padding_mode=config.rotation_padding,
                p=config.rotation_p,
            ),
            K.ColorJitter(brightness, contrast, saturation, hue, p=config.color_jitter_p),
            K.RandomGaussianBlur(
                (config.blur_kernel, config.blur_kernel), config.blur_sigma, p=config.blur_p
            ),
            same_on_batch=False,
        )
        self.normalize = _Normalize(mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a ``uint8 (B, H, W, 3)`` batch; see the module docstring."""
        x = self.ops(to_float_nchw(images))
        # Colour jitter can leave [0, 1] by rounding; clamp before normalising.
        return self.normalize(x.clamp_(0.0, 1.0))


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
