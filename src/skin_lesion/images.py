"""Decode and preprocess dermoscopy images, and build the in-memory uint8 image cache.

Every image is decoded once, preprocessed (``skin_lesion.preprocessing``: cover-resize to
the cached size, optional hair removal and CLAHE) and written into one preallocated
``(N, H, W, 3)`` uint8 array. Training then reads only that array.

Policies, each chosen once here:

* Orientation: the EXIF Orientation tag is applied, so pixels are as a viewer shows them.
* Transparency: alpha is composited over black. Dermoscopy images rarely carry alpha; when
  they do, transparent pixels are outside the field of view, and the dermoscope's own
  vignette outside the field of view is black.
* Bit depth: 16-bit grayscale samples are scaled to 8 bits by ``round(v * 255 / 65535)``,
  never clipped; 16-bit RGB (48-bit) images are reduced by Pillow, which keeps the high byte
  (at most one level below that rounding).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import cv2
import numpy as np
import PIL
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from skin_lesion.preprocessing import PreprocessConfig, preprocess_image

logger = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 2
"""Smallest width or height accepted; a 1-pixel line is no usable image."""
# An image the cache enlarges more than this on a side is named in a warning: its cached
# pixels are mostly interpolated (HAM10000's 600x450 and 200x150 copies are enlarged at most
# 1.7x, to the default 256x341 cache).
UPSCALE_WARNING = 4.0
# The suffixes a folder of images is searched for (any case); a file named directly is read
# whatever its suffix.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_MAX_16BIT = 65535
_MAX_8BIT = 255
_ALPHA_MODES = frozenset({"LA", "PA", "RGBA", "RGBa"})
_TRANSPARENCY_KEY_MODES = frozenset({"1", "L", "P", "RGB"})
_TO_RGB_MODES = frozenset({"1", "L", "P", "CMYK", "YCbCr"})
_16BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_MAX_LOGGED_FAILURES = 5


# eq=False: a generated __eq__ would compare arrays element-wise and fail on truth value.
@dataclass(frozen=True, eq=False)
class ImageCache:
    """All images of a dataset decoded once: uint8 array (N, H, W, 3) RGB and its image_id order.

    Attributes:
        images: uint8 array of shape (N, H, W, 3), RGB, C-contiguous.
        image_ids: The image_id of each row, in row order; unique.
        preprocessing: ``PreprocessConfig.to_dict()`` of the settings the images got.
        image_sha256: The SHA-256 of each row's pixels, or None: then :meth:`digests`
            computes them when first needed (``ImageCacheDataset`` records them, so a
            memory-mapped cache is not read to load them). Checkpoints record
            :meth:`fingerprint` of the images they learnt from, so that a model trained on
            other pixels (an image replaced, then data_processing rerun) is refused by the
            stages after.
    """

    images: np.ndarray
    image_ids: tuple[str, ...]
    preprocessing: dict[str, Any]
    image_sha256: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        """Its size, not its pixels (the default dumped the whole array in a notebook)."""
        first = f", first {self.image_ids[0]!r}" if self.image_ids else ""
        return (
            f"ImageCache({len(self.image_ids)} images of {self.images.shape[1]}x"
            f"{self.images.shape[2]} (HxW), {self.images.dtype}{first}; "
            f"preprocessing {self.preprocessing})"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """``images.shape``: ``(N, H, W, 3)``."""
        return self.images.shape

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
        if self.image_sha256 is not None:  # else computed when first needed (digests())
            digests = tuple(self.image_sha256)
            if len(digests) != len(ids) or not all(isinstance(d, str) for d in digests):
                raise ValueError(f"image_sha256 must hold one string per image ({len(ids)})")
            object.__setattr__(self, "image_sha256", digests)

    def digests(self) -> tuple[str, ...]:
        """``image_sha256``, hashed from the pixels the first time where not given (a cache
        saved before they were recorded: one read of the array, once per loaded cache)."""
        if self.image_sha256 is None:
            object.__setattr__(self, "image_sha256", image_digests(self.images))
        return self.image_sha256

    def digests_by_id(self) -> dict[str, str]:
        """``{image_id: pixel SHA-256}`` of every cached image (:meth:`digests`)."""
        return dict(zip(self.image_ids, self.digests(), strict=True))

    def fingerprint(self, image_ids: Iterable[str] | None = None) -> str:
        """SHA-256 over the images' size and each image's ``image_id`` with the SHA-256 of
        its pixels, in image_id order: the same for two caches holding the same images
        whatever their row order, different when one pixel of one image differs.

        Args:
            image_ids: The images to cover (all when None); each must be in the cache.

        Raises:
            KeyError: Naming image_ids the cache does not hold.
        """
        by_id = self.digests_by_id()
        wanted = sorted(by_id if image_ids is None else {str(i) for i in image_ids})
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise KeyError(f"{len(missing)} image_id(s) not in the image cache: {missing[:5]}")
        digest = hashlib.sha256(f"{tuple(self.images.shape[1:])},{self.images.dtype}\n".encode())
        for image_id in wanted:
            digest.update(f"{image_id},{by_id[image_id]}\n".encode())
        return digest.hexdigest()

    def index_of(self) -> dict[str, int]:
        """Return a mapping from image_id to its row in ``images``."""
        return {image_id: row for row, image_id in enumerate(self.image_ids)}


def image_digests(images: np.ndarray, rows: Iterable[int] | None = None) -> tuple[str, ...]:
    """The SHA-256 of each image's pixels, in row order (of ``rows`` only, where given): one
    pass over the bytes, about half a second for HAM10000's 10,015 images at 150x200."""
    chosen = range(len(images)) if rows is None else rows
    return tuple(hashlib.sha256(np.ascontiguousarray(images[row])).hexdigest() for row in chosen)


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
    image, exif_problem = _decode(data)
    if exif_problem:
        logger.warning(
            "Ignoring unreadable EXIF orientation (%s); pixels kept as stored", exif_problem
        )
    return image


def _decode(data: bytes) -> tuple[np.ndarray, str | None]:
    """:func:`decode_image`, with why the EXIF orientation could not be read (else None).

    The caller names the image in its warning; ``decode_image`` knows only the bytes.
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
        exif_problem = _apply_exif_orientation(img)
        if img.width < MIN_IMAGE_SIDE or img.height < MIN_IMAGE_SIDE:
            raise ImageDecodeError(f"image too small: {img.width}x{img.height}")
        return _to_rgb_array(img), exif_problem


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


def _apply_exif_orientation(img: Image.Image) -> str | None:
    """Rotate/flip ``img`` in place as its EXIF Orientation tag says; why not, if it cannot."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except MemoryError:
        raise
    except Exception as exc:
        # Broken EXIF does not make the pixels unusable; keep them as stored.
        return f"{type(exc).__name__}: {exc}"
    return None


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


def build_image_cache(
    loaders: Mapping[str, Callable[[], bytes]],
    config: PreprocessConfig,
    *,
    workers: int | None = None,
    progress: bool = True,
    warn_failures: bool = True,
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
        warn_failures: Log one warning counting the failures (False where the caller
            reports them itself, as data_processing's policy does).

    Returns:
        The cache of the images that succeeded, in input order, and ``{image_id: reason}``
        for those that failed: bytes that are no usable image (``ImageDecodeError``), a
        loader that failed with an ``OSError`` (also when wrapped, e.g. in Kedro's
        ``DatasetError``), or OpenCV failing on the image (``cv2.error``). Never raises for
        a bad image: the caller decides the policy.

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
    odd: list[str | None] = [None] * n  # usable, but unlike any dermoscopy image: why
    exif: list[str | None] = [None] * n  # usable, but its EXIF orientation unreadable: why
    pillow: dict[int, list[str]] = {}  # what Pillow warned of while decoding the row's image
    digests: list[str | None] = [None] * n  # the SHA-256 of the row's pixels

    def process(row: int) -> None:
        try:
            data = loaders[ids[row]]()
            with _decoding_row(row):
                decoded, exif[row] = _decode(data)
            odd[row] = _oddity(decoded, config)
            images[row] = preprocess_image(decoded, config)
            # Hashed here, in the worker (hashlib releases the GIL): 1.5 s on one thread for
            # HAM10000 at 256x341, a third of the whole decode.
            digests[row] = hashlib.sha256(images[row]).hexdigest()
        except ImageDecodeError as exc:
            reasons[row] = str(exc)
        except cv2.error as exc:
            # OpenCV's own failures (an allocation it cannot make) belong to this image.
            reasons[row] = f"cannot preprocess: {str(exc).strip().splitlines()[-1]}"
        except Exception as exc:
            if not caused_by_os_error(exc):
                raise
            reasons[row] = f"cannot read file: {exc}"

    start = time.perf_counter()
    previous_cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with _pillow_warnings_by_row(pillow):
            _run_parallel(process, n, min(workers, max(n, 1)), progress)
    finally:
        cv2.setNumThreads(previous_cv_threads)
    elapsed = time.perf_counter() - start

    failures = {ids[row]: reason for row, reason in enumerate(reasons) if reason is not None}
    kept = [row for row, reason in enumerate(reasons) if reason is None]
    images = _compact_rows(images, kept)
    cache = ImageCache(
        images,
        tuple(ids[row] for row in kept),
        config.to_dict(),
        image_sha256=tuple(digests[row] for row in kept),
    )
    logger.info(
        "Decoded %d of %d images in %.1f s (%.0f images/s, %d threads)",
        len(kept),
        n,
        elapsed,
        n / elapsed if elapsed > 0 else 0.0,
        workers,
    )
    if failures and warn_failures:
        sample = dict(list(failures.items())[:_MAX_LOGGED_FAILURES])
        logger.warning("%d of %d images failed, e.g. %s", len(failures), n, sample)
    _warn_named(
        {ids[row]: odd[row] for row in kept if odd[row]},
        n,
        "are unlike dermoscopy images (colour, at least a quarter of the cache's size), "
        "and are used all the same",
    )
    _warn_named(
        {ids[row]: exif[row] for row in kept if exif[row]},
        n,
        "have an unreadable EXIF orientation and are used as stored (check that they are upright)",
    )
    _warn_named(
        {ids[row]: "; ".join(pillow[row]) for row in kept if row in pillow},
        n,
        "decoded with a warning from Pillow (most often damaged EXIF metadata, whose unreadable "
        "tags Pillow skips) and are used all the same",
    )
    return cache, failures


# The row whose image the current decode thread is decoding, for _pillow_warnings_by_row.
_decoding = threading.local()
_PILLOW_DIR = os.path.dirname(PIL.__file__) + os.sep


@contextmanager
def _decoding_row(row: int) -> Iterator[None]:
    """Mark this thread as decoding ``row``'s image while the block runs."""
    _decoding.row = row
    try:
        yield
    finally:
        _decoding.row = None


@contextmanager
def _pillow_warnings_by_row(record: dict[int, list[str]]) -> Iterator[None]:
    """Collect the warnings Pillow raises while decoding, by the row being decoded.

    Pillow says what is wrong with a file in a Python warning that names no file ("Tag data
    larger than file. Skipping tag 270"), shown once per run whatever the count of such
    files. While this block runs, a warning raised in Pillow's code by a thread inside
    :func:`_decoding_row` goes to ``record[row]`` instead, every time, so that the caller
    can name the images; any other warning is shown as before. Warnings filters are global
    (Python 3.11), so the decode threads must run inside this block, not start it.
    """
    with warnings.catch_warnings():
        shown = warnings.showwarning
        lock = threading.Lock()
        # "always": Pillow's messages repeat (one per damaged file); the default filter would
        # let only the first through.
        warnings.filterwarnings("always", module=r"PIL(\.|$)")

        def showwarning(message, category, filename, lineno, file=None, line=None):
            row = getattr(_decoding, "row", None)
            if row is None or not str(filename).startswith(_PILLOW_DIR):
                shown(message, category, filename, lineno, file, line)
                return
            with lock:
                record.setdefault(row, []).append(str(message))

        warnings.showwarning = showwarning
        yield


def _oddity(image: np.ndarray, config: PreprocessConfig) -> str | None:
    """Why a decoded image is unlike any dermoscopy image, though usable; None if it is not:
    so small that the cache's pixels are mostly interpolated, or grey (all channels equal)."""
    height, width = image.shape[:2]
    scale = max(config.height / height, config.width / width)
    if scale > UPSCALE_WARNING:
        return f"{width}x{height}, upscaled {scale:.1f}x"
    # The first row first: most colour images differ there, sparing the full comparison.
    grey = (image[0, :, 0] == image[0, :, 1]).all() and (image[..., 0] == image[..., 1]).all()
    if grey and (image[..., 1] == image[..., 2]).all():
        return "grey: its three channels are equal"
    return None


def _warn_named(problems: dict[str, str], n: int, what: str) -> None:
    """One warning, ``<count> of <n> images <what>: name (why), ...``, naming the first few
    images; none if none."""
    if problems:
        shown = list(problems.items())[:_MAX_LOGGED_FAILURES]
        logger.warning(
            "%d of %d images %s: %s%s",
            len(problems),
            n,
            what,
            ", ".join(f"{name} ({why})" for name, why in shown),
            " and more" if len(problems) > len(shown) else "",
        )


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


def caused_by_os_error(exc: BaseException) -> bool:
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
