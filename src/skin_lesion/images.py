"""Decode and preprocess dermoscopy images, and build the in-memory uint8 image cache.

Every image is decoded once, resized to the cached size, optionally cleaned of hair
(DullRazor, Lee et al. 1997) and contrast-equalised (CLAHE, Zuiderveld 1994), and written
into one preallocated ``(N, H, W, 3)`` uint8 array. Training then reads only that array.

Policies, each chosen once here:

* Orientation: the EXIF Orientation tag is applied, so pixels are as a viewer shows them.
* Transparency: alpha is composited over black. Dermoscopy images rarely carry alpha; when
  they do, transparent pixels are outside the field of view, and the dermoscope's own
  vignette outside the field of view is black.
* Bit depth: 16-bit samples are scaled to 8 bits by ``round(v * 255 / 65535)``, never clipped.
* Aspect: images are scaled to cover the target size and centre-cropped, never distorted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 2
"""Smallest width or height accepted; a 1-pixel line is no usable image."""

_MAX_16BIT = 65535
_MAX_8BIT = 255
_ALPHA_MODES = frozenset({"LA", "PA", "RGBA", "RGBa"})
_TRANSPARENCY_KEY_MODES = frozenset({"1", "L", "P", "RGB"})
_TO_RGB_MODES = frozenset({"1", "L", "P", "CMYK", "YCbCr"})
_16BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_MAX_LOGGED_FAILURES = 5


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


# eq=False: a generated __eq__ would compare arrays element-wise and fail on truth value.
@dataclass(frozen=True, eq=False)
class ImageCache:
    """All images of a dataset decoded once: uint8 array (N, H, W, 3) RGB and its image_id order.

    Attributes:
        images: uint8 array of shape (N, H, W, 3), RGB, C-contiguous.
        image_ids: The image_id of each row, in row order; unique.
        preprocessing: ``PreprocessConfig.to_dict()`` of the settings the images got.
    """

    images: np.ndarray
    image_ids: tuple[str, ...]
    preprocessing: dict[str, Any]

    def __post_init__(self) -> None:
        images = self.images
        if not isinstance(images, np.ndarray):
            raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"images must have dtype uint8, got {images.dtype}")
        if not images.flags.c_contiguous:
            raise ValueError("images must be C-contiguous; pass np.ascontiguousarray(images)")
        ids = tuple(self.image_ids)
        not_str = [i for i in ids if not isinstance(i, str)]
        if not_str:
            raise TypeError(f"image_ids must be strings, got {not_str[:5]!r}")
        if len(ids) != len(images):
            raise ValueError(f"{len(ids)} image_ids for {len(images)} images; they must match")
        dupes = sorted(i for i, count in Counter(ids).items() if count > 1)
        if dupes:
            raise ValueError(f"image_ids must be unique; duplicated: {dupes[:5]}")
        if not isinstance(self.preprocessing, Mapping):
            raise TypeError(
                f"preprocessing must be a dict, got {type(self.preprocessing).__name__}"
            )
        size = (self.preprocessing.get("height"), self.preprocessing.get("width"))
        if None not in size and size != images.shape[1:3]:
            raise ValueError(
                f"images are {images.shape[1]}x{images.shape[2]} (HxW) but preprocessing "
                f"says {size[0]}x{size[1]}"
            )
        object.__setattr__(self, "image_ids", ids)

    def index_of(self) -> dict[str, int]:
        """Return a mapping from image_id to its row in ``images``."""
        return {image_id: row for row, image_id in enumerate(self.image_ids)}


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; message says why."""


def decode_image(data: bytes) -> np.ndarray:
    """Decode an image file's bytes into an RGB uint8 array, orientation applied.

    Args:
        data: The complete file contents (JPEG, PNG, TIFF, BMP, ... anything Pillow reads).

    Returns:
        Array of shape (H, W, 3), dtype uint8, RGB, C-contiguous and writable.

    Raises:
        ImageDecodeError: If the bytes are empty, not an image, truncated or corrupt, smaller
            than ``MIN_IMAGE_SIDE`` on a side, or in a pixel mode that has no RGB meaning.
        TypeError: If ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        img = Image.open(BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (cannot identify format)") from None
    except Exception as exc:
        raise _load_error(exc) from exc
    with img:
        try:
            img.load()
        except Exception as exc:
            raise _load_error(exc) from exc
        _apply_exif_orientation(img)
        if img.width < MIN_IMAGE_SIDE or img.height < MIN_IMAGE_SIDE:
            raise ImageDecodeError(f"image too small: {img.width}x{img.height}")
        return _to_rgb_array(img)


def _load_error(exc: Exception) -> ImageDecodeError:
    """Translate an exception from Pillow's open or load into an ImageDecodeError.

    Pillow's plugins raise many types on malformed input (OSError, SyntaxError,
    struct.error, ValueError, EOFError, IndexError); all mean the same here. MemoryError
    is a state of this process, not of the file, and is re-raised.
    """
    if isinstance(exc, MemoryError):
        raise exc
    if isinstance(exc, Image.DecompressionBombError):
        return ImageDecodeError(f"image too large: {exc}")
    return ImageDecodeError(f"truncated or corrupt image: {exc}")


def _apply_exif_orientation(img: Image.Image) -> None:
    """Rotate/flip ``img`` in place as its EXIF Orientation tag says."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except MemoryError:
        raise
    except Exception as exc:
        # Broken EXIF does not make the pixels unusable; keep them as stored.
        logger.warning("Ignoring unreadable EXIF orientation (%s); pixels kept as stored", exc)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any supported mode to (H, W, 3) uint8 RGB."""
    mode = img.mode
    if mode in _ALPHA_MODES or (mode in _TRANSPARENCY_KEY_MODES and "transparency" in img.info):
        return _composite_over_black(np.asarray(img.convert("RGBA")))
    if mode == "P" and img.palette is not None and img.palette.mode == "RGBA":
        return _composite_over_black(np.asarray(img.convert("RGBA")))
    if mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if mode in _TO_RGB_MODES:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    if mode in _16BIT_MODES:
        return _gray_to_rgb(_scale_16bit(np.asarray(img)))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(img)))
    raise ImageDecodeError(f"unsupported mode '{mode}'")


def _composite_over_black(rgba: np.ndarray) -> np.ndarray:
    """Return ``rgb * alpha / 255`` rounded, i.e. RGBA composited over black."""
    rgb = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:4].astype(np.uint16)
    return ((rgb * alpha + _MAX_8BIT // 2) // _MAX_8BIT).astype(np.uint8)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map 16-bit samples to 8 bits by ``round(v * 255 / 65535)``."""
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > _MAX_16BIT:
        raise ImageDecodeError(
            f"integer samples in [{low}, {high}], expected 16-bit values in [0, {_MAX_16BIT}]"
        )
    wide = values.astype(np.uint32)
    return ((wide * _MAX_8BIT + _MAX_16BIT // 2) // _MAX_16BIT).astype(np.uint8)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Map float samples to 8 bits.

    Samples all in [0, 1] are read as the float-image convention (x 255); otherwise samples
    must lie in [0, 255] (Pillow's own convention for mode 'F'). An image in 0-255 units
    whose maximum is at most 1 would be black anyway, so the [0, 1] reading loses nothing.
    """
    if not np.isfinite(values).all():
        raise ImageDecodeError("float samples include NaN or infinity")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > _MAX_8BIT:
        raise ImageDecodeError(f"float samples in [{low:g}, {high:g}], expected [0, 1] or [0, 255]")
    scale = _MAX_8BIT if high <= 1 else 1
    return np.rint(values.astype(np.float64) * scale).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """Repeat a (H, W) channel three times into a C-contiguous (H, W, 3) array."""
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _check_rgb(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"expected an (H, W, 3) image, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8, got {image.dtype}")


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


def build_image_cache(
    loaders: Mapping[str, Callable[[], bytes]],
    config: PreprocessConfig,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[ImageCache, dict[str, str]]:
    """Decode and preprocess every image in parallel into one uint8 array.

    Threads suffice because Pillow and OpenCV release the GIL while they work. OpenCV's
    own thread pool is set to one thread while this runs (and restored afterwards) so
    that ``workers`` threads do not each start another pool on the same cores.

    Args:
        loaders: Ordered image_id -> zero-argument callable returning the file's bytes,
            as Kedro's ``PartitionedDataset`` gives; the callable does the I/O.
        config: The preprocessing settings.
        workers: Number of threads; defaults to ``os.cpu_count()``.
        progress: Show a tqdm progress bar with images/s.

    Returns:
        The cache of the images that succeeded, in input order, and ``{image_id: reason}``
        for those that failed: bytes that are no usable image (``ImageDecodeError``) or a
        loader that failed with an ``OSError`` (also when wrapped, e.g. in Kedro's
        ``DatasetError``). Never raises for a bad image: the caller decides the policy.

    Raises:
        ValueError: If ``workers`` is less than 1.
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ids = list(loaders)
    n = len(ids)
    images = np.empty((n, config.height, config.width, 3), dtype=np.uint8)
    reasons: list[str | None] = [None] * n

    def process(row: int) -> None:
        try:
            data = loaders[ids[row]]()
            images[row] = preprocess_image(decode_image(data), config)
        except ImageDecodeError as exc:
            reasons[row] = str(exc)
        except Exception as exc:
            if not _caused_by_os_error(exc):
                raise
            reasons[row] = f"cannot read file: {exc}"

    start = time.perf_counter()
    previous_cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        _run_parallel(process, n, min(workers, max(n, 1)), progress)
    finally:
        cv2.setNumThreads(previous_cv_threads)
    elapsed = time.perf_counter() - start

    failures = {ids[row]: reason for row, reason in enumerate(reasons) if reason is not None}
    kept = [row for row, reason in enumerate(reasons) if reason is None]
    images = _compact_rows(images, kept)
    cache = ImageCache(images, tuple(ids[row] for row in kept), config.to_dict())
    logger.info(
        "Decoded %d of %d images in %.1f s (%.0f images/s, %d threads)",
        len(kept),
        n,
        elapsed,
        n / elapsed if elapsed > 0 else 0.0,
        workers,
    )
    if failures:
        sample = dict(list(failures.items())[:_MAX_LOGGED_FAILURES])
        logger.warning("%d of %d images failed, e.g. %s", len(failures), n, sample)
    return cache, failures


def _run_parallel(task: Callable[[int], None], n: int, workers: int, progress: bool) -> None:
    """Run ``task(row)`` for every row on a thread pool, with a progress bar."""
    with (
        tqdm(total=n, desc="Decoding images", unit="image", disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool,
    ):
        futures = [pool.submit(task, row) for row in range(n)]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _caused_by_os_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError or was raised from one (e.g. Kedro's DatasetError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _compact_rows(images: np.ndarray, kept: list[int]) -> np.ndarray:
    """Move rows ``kept`` to the front, in order, and shrink the array to them in place.

    Moving rows down never overwrites a row still to be moved (kept[i] >= i). The final
    ``resize`` reallocates the buffer to its prefix, so no second full copy is made.
    """
    if len(kept) == len(images):
        return images
    for dst, src in enumerate(kept):
        if dst != src:
            images[dst] = images[src]
    # refcheck=False: the only references are ours (the worker threads have finished);
    # the check would trip on debugger or test-runner references to this frame.
    images.resize((len(kept), *images.shape[1:]), refcheck=False)
    return images
