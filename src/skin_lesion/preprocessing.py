"""Per-image preprocessing before caching: cover-resize, hair removal and CLAHE.

* Aspect: images are scaled to cover the target size and centre-cropped, never distorted.
* Hair removal: DullRazor (Lee et al. 1997): black-hat, threshold, ``cv2.inpaint``.
* Contrast: CLAHE (Zuiderveld 1994) on the L channel of CIELAB.

``skin_lesion.images`` applies ``preprocess_image`` to every decoded image.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

_MAX_8BIT = 255


@dataclass(frozen=True)
class HairRemovalConfig:
    """DullRazor-style hair removal (Lee et al. 1997).

    Attributes:
        enabled: Whether ``preprocess_image`` removes hair.
        kernel_size: Side of the cross-shaped black-hat structuring element, in pixels of
            the resized image; odd, at least 3. It must be wider than a hair.
        threshold: Black-hat response (0-255) above which a pixel counts as hair.
        inpaint_radius: Neighbourhood radius of Telea inpainting, in pixels.
    """

    enabled: bool = False
    kernel_size: int = 9
    threshold: int = 10
    inpaint_radius: int = 3

    def __post_init__(self) -> None:
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {self.kernel_size}")
        if not 0 <= self.threshold < _MAX_8BIT:
            raise ValueError(f"threshold must be in [0, 254], got {self.threshold}")
        if self.inpaint_radius < 1:
            raise ValueError(f"inpaint_radius must be >= 1, got {self.inpaint_radius}")


@dataclass(frozen=True)
class ClaheConfig:
    """Contrast-limited adaptive histogram equalisation of lightness.

    Attributes:
        enabled: Whether ``preprocess_image`` applies CLAHE.
        clip_limit: OpenCV clip limit (histogram bins clipped at this multiple of the mean).
        tile_grid_size: Number of tiles along each side of the image.
    """

    enabled: bool = False
    clip_limit: float = 2.0
    tile_grid_size: int = 8

    def __post_init__(self) -> None:
        if not self.clip_limit > 0:
            raise ValueError(f"clip_limit must be > 0, got {self.clip_limit}")
        if self.tile_grid_size < 1:
            raise ValueError(f"tile_grid_size must be >= 1, got {self.tile_grid_size}")


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that turns a decoded image into a cached one.

    Attributes:
        height: Output height in pixels.
        width: Output width in pixels. 341x256 keeps HAM10000's 4:3 aspect.
        hair_removal: Hair removal settings.
        clahe: CLAHE settings.
    """

    height: int = 256
    width: int = 341
    hair_removal: HairRemovalConfig = field(default_factory=HairRemovalConfig)
    clahe: ClaheConfig = field(default_factory=ClaheConfig)

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be >= 1, got {self.height}x{self.width}")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain nested dict, for caches and checkpoints."""
        return dataclasses.asdict(self)


# resize_cover crops the source before scaling where the scaled whole would exceed this many
# times the output's area (only for aspects far from the output's); the crop starts on a
# whole output pixel where that needs a step of at most PRECROP_ALIGN source pixels.
PRECROP_AREA = 4
PRECROP_ALIGN = 256


def resize_cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover ``height`` x ``width`` keeping its aspect, then centre-crop.

    The side that is relatively shorter fits exactly; the excess of the other side is cut
    equally from both ends. HAM10000's 600x450 (4:3) into 341x256 loses at most a pixel;
    other aspects lose the ends of their long side and are never distorted.

    Args:
        image: (H, W, 3) uint8 array.
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        New C-contiguous array of shape (height, width, 3), dtype uint8.

    Raises:
        ValueError: If ``image`` is not (H, W, 3) uint8 or the target size is not positive.
    """
    _check_rgb(image)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    src_h, src_w = image.shape[:2]
    scale = max(height / src_h, width / src_w)
    new_h = max(height, round(src_h * scale))
    new_w = max(width, round(src_w * scale))
    if new_h * new_w > PRECROP_AREA * height * width:
        # An aspect far from the output's (a 2x40000 strip) would be scaled whole to gigabytes
        # before the crop: scale only the part of the source the output shows, plus the
        # interpolation's context, by the same factors, and cut the same window from it.
        # Ordinary aspects never come here, so their pixels are as they always were.
        return _resize_window(image, height, width, new_h, new_w)
    if (new_h, new_w) == (src_h, src_w):
        resized = image
    else:
        # INTER_AREA averages source pixels when shrinking (no aliasing); INTER_CUBIC is
        # sharper when enlarging, and OpenCV saturates its overshoot into 0-255 for uint8.
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top = (new_h - height) // 2
    left = (new_w - width) // 2
    cropped = resized[top : top + height, left : left + width]
    if resized is image:
        return cropped.copy()
    return np.ascontiguousarray(cropped)


def _resize_window(
    image: np.ndarray, height: int, width: int, new_h: int, new_w: int
) -> np.ndarray:
    """``resize_cover``'s centre window of ``image`` scaled to ``new_h`` x ``new_w``, made by
    scaling only the source rows and columns it covers (the same per-axis factors, within
    a rounding of the crop's size), so the memory is the output's, not the whole image's."""
    src_h, src_w = image.shape[:2]
    sy, sx = new_h / src_h, new_w / src_w
    top, left = (new_h - height) // 2, (new_w - width) // 2

    def span(start: int, size: int, new: int, old: int) -> tuple[int, int, int]:
        # Cubic needs 2 source pixels of context, area averaging old/new of them. The crop
        # starts where a whole number of output pixels does (a multiple of old/gcd) when
        # that is near, so the window's pixels match scaling the whole image's.
        scale, step = new / old, old // math.gcd(new, old)
        margin = 2 + math.ceil(1 / scale)
        low = max(0, math.floor(start / scale) - margin)
        high = min(old, math.ceil((start + size) / scale) + margin)
        if step <= PRECROP_ALIGN:  # old is a multiple of step, so high stays within it
            low -= low % step
            high = min(old, low + -(-(high - low) // step) * step)
        return low, high, round((high - low) * scale)

    (r0, r1, kh), (c0, c1, kw) = span(top, height, new_h, src_h), span(left, width, new_w, src_w)
    crop = image[r0:r1, c0:c1]
    size = (max(1, kw), max(1, kh))
    interpolation = cv2.INTER_AREA if max(sx, sy) < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(crop, size, interpolation=interpolation)
    y = min(max(0, round(top - r0 * sy)), scaled.shape[0] - height)
    x = min(max(0, round(left - c0 * sx)), scaled.shape[1] - width)
    return np.ascontiguousarray(scaled[y : y + height, x : x + width])


def remove_hair(image: np.ndarray, config: HairRemovalConfig) -> np.ndarray:
    """Remove dark hairs DullRazor-style (Lee et al. 1997).

    A morphological black-hat (closing minus image) of the grey image responds to thin
    dark structures narrower than the kernel; pixels whose response exceeds the threshold
    are inpainted from their surroundings (Telea 2004). ``config.enabled`` is not consulted:
    calling this function means removing hair; ``preprocess_image`` checks the flag.

    Args:
        image: (H, W, 3) uint8 RGB array.
        config: Kernel size, threshold and inpainting radius.

    Returns:
        New (H, W, 3) uint8 array.
    """
    _check_rgb(image)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (config.kernel_size, config.kernel_size))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    _, mask = cv2.threshold(blackhat, config.threshold, _MAX_8BIT, cv2.THRESH_BINARY)
    if not mask.any():
        return image.copy()
    return cv2.inpaint(image, mask, config.inpaint_radius, cv2.INPAINT_TELEA)


def apply_clahe(image: np.ndarray, config: ClaheConfig) -> np.ndarray:
    """Equalise lightness with CLAHE on the L channel of CIELAB, leaving a* and b* alone.

    Equalising RGB channels separately would shift hues, which carry diagnostic
    information in dermoscopy; lightness alone keeps colours. ``config.enabled`` is not
    consulted: ``preprocess_image`` checks the flag.

    Args:
        image: (H, W, 3) uint8 RGB array.
        config: Clip limit and tile grid size.

    Returns:
        New (H, W, 3) uint8 array.
    """
    _check_rgb(image)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    grid = (config.tile_grid_size, config.tile_grid_size)
    clahe = cv2.createCLAHE(clipLimit=config.clip_limit, tileGridSize=grid)
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def preprocess_image(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Resize, then remove hair, then apply CLAHE, each step only if enabled.

    Resizing comes first so that kernel sizes are in pixels of the cached image and the
    morphology and inpainting run on the small image.

    Args:
        image: (H, W, 3) uint8 RGB array, as from ``decode_image``.
        config: The preprocessing settings.

    Returns:
        New (config.height, config.width, 3) uint8 array.
    """
    out = resize_cover(image, config.height, config.width)
    if config.hair_removal.enabled:
        out = remove_hair(out, config.hair_removal)
    if config.clahe.enabled:
        out = apply_clahe(out, config.clahe)
    return out


def _check_rgb(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"expected an (H, W, 3) image, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8, got {image.dtype}")
