"""Tests for skin_lesion.images: decoding and the image cache."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from skin_lesion.images import (
    ImageCache,
    ImageDecodeError,
    build_image_cache,
    decode_image,
    image_digests,
)
from skin_lesion.preprocessing import HairRemovalConfig, PreprocessConfig, preprocess_image

SKIN = (200, 150, 130)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **save_args) -> bytes:
    """Return ``image`` saved in ``fmt`` as bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def noisy_rgb(height: int = 60, width: int = 80, seed: int = 0) -> np.ndarray:
    """A random RGB image, so that JPEG needs real entropy-coded data."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def jpeg_scan_start(data: bytes) -> int:
    """Offset of the first byte of entropy-coded data after the SOS header."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


# --- decode_image: bad input -------------------------------------------------------------


def test_decode_empty_bytes():
    with pytest.raises(ImageDecodeError, match=r"^empty file \(0 bytes\)$"):
        decode_image(b"")


def test_decode_random_bytes():
    data = np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    with pytest.raises(ImageDecodeError, match=r"^not an image \(cannot identify format\)$"):
        decode_image(data)


def test_decode_text_file():
    with pytest.raises(ImageDecodeError, match=r"^not an image"):
        decode_image(b"lesion_id,image_id,dx\nHAM_0000118,ISIC_0027419,bkl\n")


def test_decode_truncated_jpeg():
    data = encode(noisy_rgb(), "JPEG", quality=90)
    with pytest.raises(ImageDecodeError, match=r"^truncated or corrupt image: .*truncated"):
        decode_image(data[: len(data) // 2])


def test_decode_corrupt_jpeg_with_marker_in_scan_data():
    data = bytearray(encode(noisy_rgb(), "JPEG", quality=90))
    middle = (jpeg_scan_start(data) + len(data)) // 2
    data[middle : middle + 2] = b"\xff\xc4"  # a DHT marker where coded data should be
    with pytest.raises(ImageDecodeError, match=r"^truncated or corrupt image: broken data"):
        decode_image(bytes(data))


def test_decode_corrupt_jpeg_with_broken_huffman_table():
    data = bytearray(encode(noisy_rgb(), "JPEG", quality=90))
    dht = data.index(b"\xff\xc4")
    length = int.from_bytes(data[dht + 2 : dht + 4], "big")
    data[dht + 4 : dht + 2 + length] = b"\x00" * (length - 2)
    with pytest.raises(ImageDecodeError, match=r"^truncated or corrupt image: "):
        decode_image(bytes(data))


def test_decode_garbled_jpeg_scan_data_is_not_detected():
    """libjpeg resynchronises over garbage in the coded data and Pillow does not raise.

    Such an image decodes to damaged pixels; no decoder check can tell, so this documents
    the limit of what decode_image rejects.
    """
    original = noisy_rgb()
    data = bytearray(encode(original, "JPEG", quality=90))
    middle = (jpeg_scan_start(data) + len(data)) // 2
    garbage = np.random.default_rng(2).integers(0, 0xFF, 200, dtype=np.uint8)  # no 0xFF
    data[middle : middle + 200] = garbage.tobytes()
    decoded = decode_image(bytes(data))
    assert decoded.shape == original.shape
    assert decoded.dtype == np.uint8


def test_decode_too_small_image():
    with pytest.raises(ImageDecodeError, match=r"^image too small: 1x5$"):
        decode_image(encode(np.zeros((5, 1, 3), dtype=np.uint8)))


def test_decode_decompression_bomb(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 20x20 is over twice the limit
    with pytest.raises(ImageDecodeError, match=r"^image too large: .*400 pixels"):
        decode_image(encode(np.zeros((20, 20, 3), dtype=np.uint8)))


def test_decode_unsupported_mode():
    with pytest.raises(ImageDecodeError, match=r"^unsupported mode 'LAB'$"):
        decode_image(encode(Image.new("LAB", (4, 4)), "TIFF"))


def test_decode_32bit_integer_out_of_16bit_range():
    values = np.array([[0, 70000], [5, 6]], dtype=np.int32)
    with pytest.raises(ImageDecodeError, match=r"\[0, 70000\]"):
        decode_image(encode(Image.fromarray(values, mode="I"), "TIFF"))


def test_decode_rejects_non_bytes():
    with pytest.raises(TypeError, match="str"):
        decode_image("ISIC_0024306.jpg")


# --- decode_image: conversions -----------------------------------------------------------


def assert_rgb(decoded: np.ndarray, expected: np.ndarray) -> None:
    assert decoded.dtype == np.uint8
    assert decoded.flags.c_contiguous
    assert decoded.flags.writeable
    np.testing.assert_array_equal(decoded, expected)


def test_decode_rgb_png_exact():
    image = noisy_rgb(7, 9)
    assert_rgb(decode_image(encode(image)), image)


def test_decode_grayscale_l():
    gray = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    assert_rgb(decode_image(encode(gray)), np.stack([gray] * 3, axis=-1))


def test_decode_bilevel_1():
    image = Image.new("1", (3, 2), 0)
    image.putpixel((1, 0), 1)
    expected = np.zeros((2, 3, 3), dtype=np.uint8)
    expected[0, 1] = 255
    assert_rgb(decode_image(encode(image)), expected)


def palette_image() -> Image.Image:
    image = Image.fromarray(np.array([[0, 1], [2, 1]], dtype=np.uint8), mode="P")
    image.putpalette([*RED, *GREEN, *BLUE] + [0] * (256 - 3) * 3)
    return image


def test_decode_palette_p():
    expected = np.array([[RED, GREEN], [BLUE, GREEN]], dtype=np.uint8)
    assert_rgb(decode_image(encode(palette_image())), expected)


def test_decode_palette_with_transparency_is_composited_over_black():
    data = encode(palette_image(), transparency=1)
    assert Image.open(io.BytesIO(data)).info["transparency"] == 1
    expected = np.array([[RED, (0, 0, 0)], [BLUE, (0, 0, 0)]], dtype=np.uint8)
    assert_rgb(decode_image(data), expected)


def test_decode_rgba_is_composited_over_black():
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0]], [[200, 100, 50, 128]] * 2])
    decoded = decode_image(encode(rgba.astype(np.uint8)))
    half = [round(200 * 128 / 255), round(100 * 128 / 255), round(50 * 128 / 255)]
    expected = np.array([[[200, 100, 50], [0, 0, 0]], [half, half]], dtype=np.uint8)
    assert_rgb(decoded, expected)


def test_decode_la_is_composited_over_black():
    la = np.array([[[90, 255], [90, 0]], [[255, 51], [0, 255]]], dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(la, mode="LA")))
    gray = np.array([[90, 0], [51, 0]], dtype=np.uint8)
    assert_rgb(decoded, np.stack([gray] * 3, axis=-1))


def test_decode_cmyk_jpeg():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red ink-free cyan: pure red
    cmyk.paste((255, 0, 255, 0), (8, 0, 16, 16))  # pure green on the right half
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = decode_image(data)
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded[4, 2].astype(int) - RED).max() <= 8
    assert np.abs(decoded[4, 13].astype(int) - GREEN).max() <= 8


def test_decode_16bit_grayscale_png_scales_not_clips():
    # 400 -> round(1.56) = 2 tells rounding from truncation (400 >> 8 = 1)
    values = np.array([[0, 32768, 400], [65535, 257, 32767]], dtype=np.uint16)
    data = encode(Image.fromarray(values))
    # Pillow opens a 16-bit PNG as "I;16" since 10.3 and as 32-bit "I" before;
    # both take the 16-bit path.
    assert Image.open(io.BytesIO(data)).mode in {"I;16", "I"}
    gray = np.array([[0, 128, 2], [255, 1, 127]], dtype=np.uint8)
    assert_rgb(decode_image(data), np.stack([gray] * 3, axis=-1))


def test_decode_16bit_big_endian_tiff():
    values = np.array([[0, 32768, 400], [65535, 257, 32767]], dtype=">u2")
    image = Image.frombytes("I;16B", (3, 2), values.tobytes())
    gray = np.array([[0, 128, 2], [255, 1, 127]], dtype=np.uint8)
    assert_rgb(decode_image(encode(image, "TIFF")), np.stack([gray] * 3, axis=-1))


def test_decode_float_image_in_unit_range():
    values = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    decoded = decode_image(encode(Image.fromarray(values, mode="F"), "TIFF"))
    gray = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    assert_rgb(decoded, np.stack([gray] * 3, axis=-1))


def test_decode_applies_exif_orientation():
    # 40 wide x 20 tall, red top-left quadrant; Orientation 6 = display rotated 90° clockwise.
    stored = np.full((20, 40, 3), 255, dtype=np.uint8)
    stored[:10, :20] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(stored, "JPEG", quality=95, exif=exif))
    assert decoded.shape == (40, 20, 3)
    assert np.abs(decoded[2, -3].astype(int) - RED).max() <= 10  # top-right after rotation
    assert decoded[2, 2].min() >= 245  # top-left is white
    assert decoded[-3, -3].min() >= 245


def _exif_transpose_failing_for_width(monkeypatch, width: int) -> None:
    """Make Pillow's EXIF transpose raise, as on malformed EXIF, for images ``width`` wide."""
    from PIL import ImageOps

    real = ImageOps.exif_transpose

    def exif_transpose(image, *, in_place=False):
        if image.width == width:
            raise SyntaxError("not a TIFF file (header b'junk' not valid)")
        return real(image, in_place=in_place)

    monkeypatch.setattr(ImageOps, "exif_transpose", exif_transpose)


def test_decode_keeps_pixels_of_an_image_with_unreadable_exif(monkeypatch, caplog):
    _exif_transpose_failing_for_width(monkeypatch, 80)
    stored = noisy_rgb(60, 80)
    with caplog.at_level("WARNING", logger="skin_lesion.images"):
        decoded = decode_image(encode(stored))
    assert_rgb(decoded, stored)
    assert [r.getMessage() for r in caplog.records] == [
        "Ignoring unreadable EXIF orientation (SyntaxError: not a TIFF file (header b'junk' not "
        "valid)); pixels kept as stored"
    ]


def test_build_image_cache_names_the_images_with_unreadable_exif_in_one_warning(
    monkeypatch, caplog
):
    """The warning named no image, once per image: which file to check was left unsaid."""
    _exif_transpose_failing_for_width(monkeypatch, 80)
    config = PreprocessConfig(height=48, width=64)
    loaders = {
        "fine": lambda: encode(noisy_rgb(60, 90)),
        "ISIC_a": lambda: encode(noisy_rgb(60, 80, seed=1)),
        "ISIC_b": lambda: encode(noisy_rgb(60, 80, seed=2)),
        "bad": lambda: b"junk",
    }
    with caplog.at_level("WARNING", logger="skin_lesion.images"):
        cache, failures = build_image_cache(loaders, config, workers=2, progress=False)
    assert cache.image_ids == ("fine", "ISIC_a", "ISIC_b") and list(failures) == ["bad"]
    exif = [r.getMessage() for r in caplog.records if "EXIF" in r.getMessage()]
    why = "SyntaxError: not a TIFF file (header b'junk' not valid)"
    assert exif == [
        "2 of 4 images have an unreadable EXIF orientation and are used as stored (check that "
        f"they are upright): ISIC_a ({why}), ISIC_b ({why})"
    ]


def jpeg_with_damaged_exif(seed: int = 0) -> bytes:
    """A JPEG whose EXIF ImageDescription (tag 270) claims more bytes than the file has:
    Pillow skips the tag with a warning naming no file; the pixels are whole."""
    exif = Image.Exif()
    exif[0x010E] = "x" * 40  # long enough to be stored at an offset, not inline
    raw = exif.tobytes()
    data = bytearray(encode(noisy_rgb(60, 80, seed=seed), "JPEG", exif=raw))
    start = data.find(raw)
    assert raw[6:8] == b"MM" and start > 0  # big-endian TIFF header, as Pillow writes it
    entry = start + raw.find(b"\x01\x0e")  # the IFD entry: tag, type, count, offset
    data[entry + 4 : entry + 8] = (4000).to_bytes(4, "big")  # count: 4,000 bytes
    return bytes(data)


def pillow_warning(data: bytes) -> str:
    """The warning this Pillow gives reading ``data``'s EXIF (its wording differs between
    versions: "Truncated File Read" in Pillow 10.1, "Tag data larger than file. Skipping tag
    270" in later ones)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Image.open(io.BytesIO(data)).getexif()
    (message,) = {str(w.message) for w in caught}
    return message


def test_build_image_cache_names_the_images_pillow_warned_of(caplog, recwarn):
    """Pillow's own warning named no image and was shown once however many images had it."""
    config = PreprocessConfig(height=48, width=64)
    loaders = {
        "fine": lambda: encode(noisy_rgb(60, 90), "JPEG"),
        "ISIC_a": lambda: jpeg_with_damaged_exif(1),
        "ISIC_b": lambda: jpeg_with_damaged_exif(2),
    }
    with caplog.at_level("WARNING", logger="skin_lesion.images"):
        cache, failures = build_image_cache(loaders, config, workers=2, progress=False)
    assert cache.image_ids == ("fine", "ISIC_a", "ISIC_b") and not failures
    why = pillow_warning(jpeg_with_damaged_exif(1))
    assert [r.getMessage() for r in caplog.records] == [
        "2 of 3 images decoded with a warning from Pillow (most often damaged EXIF metadata, "
        f"whose unreadable tags Pillow skips) and are used all the same: ISIC_a ({why}), "
        f"ISIC_b ({why})"
    ]
    assert not [w for w in recwarn if str(w.message) == why]  # not shown twice


def test_pillow_warnings_outside_decoding_are_shown_as_before(recwarn):
    """Only the decode threads' Pillow warnings are taken; the filters come back after."""
    import warnings

    def load() -> bytes:  # warns while the decode threads run, from outside Pillow
        warnings.warn("the loader's own warning", UserWarning, stacklevel=1)
        return jpeg_with_damaged_exif()

    config = PreprocessConfig(height=48, width=64)
    expected = pillow_warning(jpeg_with_damaged_exif())
    recwarn.clear()
    build_image_cache({"ISIC_a": load}, config, workers=2, progress=False)
    Image.open(io.BytesIO(jpeg_with_damaged_exif())).getexif()  # outside build_image_cache
    assert [str(w.message) for w in recwarn] == ["the loader's own warning", expected]


# --- ImageCache --------------------------------------------------------------------------


def test_image_cache_index_of():
    cache = ImageCache(np.zeros((2, 4, 5, 3), np.uint8), ("b", "a"), {"height": 4, "width": 5})
    assert cache.index_of() == {"b": 0, "a": 1}


@pytest.mark.parametrize(
    ("images", "ids", "match"),
    [
        (np.zeros((2, 4, 5), np.uint8), ("a", "b"), r"\(2, 4, 5\)"),
        (np.zeros((2, 4, 5, 4), np.uint8), ("a", "b"), r"\(2, 4, 5, 4\)"),
        (np.zeros((2, 4, 5, 3), np.float32), ("a", "b"), "float32"),
        (np.zeros((2, 4, 5, 3), np.uint8), ("a",), "1 image_ids for 2 images"),
        (np.zeros((3, 4, 5, 3), np.uint8), ("a", "b", "a"), r"duplicated: \['a'\]"),
        (np.zeros((2, 5, 4, 3), np.uint8)[:, ::-1], ("a", "b"), "C-contiguous"),
        (np.zeros((2, 6, 5, 3), np.uint8), ("a", "b"), "6x5.*4x5"),
    ],
)
def test_image_cache_validation_names_the_bad_value(images, ids, match):
    with pytest.raises(ValueError, match=match):
        ImageCache(images, ids, {"height": 4, "width": 5})


def test_image_cache_fingerprint_is_per_image_whatever_the_row_order():
    images = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (1, 2, 3)])
    cache = ImageCache(images, ("a", "b", "c"), {"height": 4, "width": 5})
    assert cache.image_sha256 is None  # hashed when first needed
    assert len(set(cache.digests())) == 3 and cache.image_sha256 == cache.digests()
    reordered = ImageCache(images[::-1].copy(), ("c", "b", "a"), {"height": 4, "width": 5})
    assert reordered.fingerprint() == cache.fingerprint()
    assert reordered.fingerprint(["a", "b"]) == cache.fingerprint(("b", "a"))
    # One pixel of one image counts; an image outside the ids asked for does not.
    changed = images.copy()
    changed[2, 0, 0, 0] = 9
    edited = ImageCache(changed, ("a", "b", "c"), {"height": 4, "width": 5})
    assert edited.fingerprint() != cache.fingerprint()
    assert edited.fingerprint(["a", "b"]) == cache.fingerprint(["a", "b"])
    with pytest.raises(KeyError, match=r"1 image_id\(s\) not in the image cache: \['z'\]"):
        cache.fingerprint(["a", "z"])
    with pytest.raises(ValueError, match=r"one string per image \(3\)"):
        ImageCache(images, ("a", "b", "c"), {"height": 4, "width": 5}, image_sha256=("x",))


# --- build_image_cache -------------------------------------------------------------------

SMALL = PreprocessConfig(height=12, width=16)


def write_images(tmp_path: Path, count: int) -> dict[str, Path]:
    paths = {}
    for i in range(count):
        path = tmp_path / f"ISIC_{i:07d}.png"
        path.write_bytes(encode(noisy_rgb(15 + i, 20 + 2 * i, seed=i)))
        paths[path.stem] = path
    return paths


def failing_loader(exc: BaseException):
    def load() -> bytes:
        raise exc

    return load


def test_build_image_cache_order_values_and_failures(tmp_path):
    paths = write_images(tmp_path, 6)
    loaders = {image_id: path.read_bytes for image_id, path in paths.items()}
    loaders["bad_bytes"] = lambda: b"not an image at all"
    loaders["missing"] = (tmp_path / "missing.jpg").read_bytes
    loaders["os_error"] = failing_loader(OSError("disk on fire"))
    wrapped = RuntimeError("Failed while loading data from dataset")
    wrapped.__cause__ = PermissionError("permission denied")
    loaders["wrapped"] = failing_loader(wrapped)
    loaders["empty"] = lambda: b""
    # interleave the failures with the good ones
    order = ["bad_bytes", *list(paths)[:3], "missing", "os_error", *list(paths)[3:], "wrapped"]
    order.append("empty")
    loaders = {image_id: loaders[image_id] for image_id in order}

    cache, failures = build_image_cache(loaders, SMALL, workers=2, progress=False)

    assert cache.image_ids == tuple(paths)
    assert cache.images.shape == (6, 12, 16, 3)
    assert cache.images.dtype == np.uint8
    assert cache.images.flags.c_contiguous
    assert cache.images.base is None  # shrunk in place, not a view of the full array
    assert cache.preprocessing == SMALL.to_dict()
    for row, path in enumerate(paths.values()):
        expected = preprocess_image(decode_image(path.read_bytes()), SMALL)
        np.testing.assert_array_equal(cache.images[row], expected)
    # The digests hashed in the workers are those of the rows kept, after compaction.
    assert cache.image_sha256 == image_digests(cache.images)
    assert list(failures) == ["bad_bytes", "missing", "os_error", "wrapped", "empty"]
    assert failures["bad_bytes"] == "not an image (cannot identify format)"
    assert failures["missing"].startswith("cannot read file: ")
    assert "missing.jpg" in failures["missing"]
    assert failures["os_error"] == "cannot read file: disk on fire"
    assert failures["wrapped"].startswith("cannot read file: Failed while loading")
    assert failures["empty"] == "empty file (0 bytes)"


def test_build_image_cache_workers_give_identical_arrays(tmp_path):
    loaders = {k: p.read_bytes for k, p in write_images(tmp_path, 8).items()}
    config = PreprocessConfig(
        height=12, width=16, hair_removal=HairRemovalConfig(enabled=True, kernel_size=3)
    )
    one, _ = build_image_cache(loaders, config, workers=1, progress=False)
    two, _ = build_image_cache(loaders, config, workers=2, progress=False)
    assert one.image_ids == two.image_ids
    np.testing.assert_array_equal(one.images, two.images)


def test_build_image_cache_with_progress_bar(tmp_path):
    loaders = {k: p.read_bytes for k, p in write_images(tmp_path, 3).items()}
    cache, failures = build_image_cache(loaders, SMALL, workers=2, progress=True)
    assert len(cache.image_ids) == 3
    assert failures == {}


def test_build_image_cache_all_fail_gives_empty_cache():
    loaders = {"a": lambda: b"", "b": lambda: b"xyz"}
    cache, failures = build_image_cache(loaders, SMALL, progress=False)
    assert cache.images.shape == (0, 12, 16, 3)
    assert cache.images.dtype == np.uint8
    assert cache.image_ids == ()
    assert set(failures) == {"a", "b"}


def test_build_image_cache_no_loaders():
    cache, failures = build_image_cache({}, SMALL, progress=False)
    assert cache.images.shape == (0, 12, 16, 3)
    assert failures == {}


def test_build_image_cache_restores_opencv_threads(tmp_path):
    loaders = {k: p.read_bytes for k, p in write_images(tmp_path, 2).items()}
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        build_image_cache(loaders, SMALL, progress=False)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_build_image_cache_propagates_programming_errors(tmp_path):
    loaders = {k: p.read_bytes for k, p in write_images(tmp_path, 2).items()}
    loaders["bug"] = failing_loader(KeyError("no such partition"))
    with pytest.raises(KeyError, match="no such partition"):
        build_image_cache(loaders, SMALL, workers=2, progress=False)


def test_build_image_cache_rejects_zero_workers():
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        build_image_cache({}, SMALL, workers=0)


def test_build_image_cache_rejects_an_image_opencv_fails_on_and_goes_on(tmp_path, monkeypatch):
    """An OpenCV failure (an allocation it cannot make) stopped the whole batch unnamed."""
    import skin_lesion.images as images_module

    loaders = {k: p.read_bytes for k, p in write_images(tmp_path, 2).items()}
    odd = io.BytesIO()
    Image.fromarray(np.full((37, 53, 3), 90, np.uint8)).save(odd, format="PNG")
    loaders = {"ISIC_odd": lambda: odd.getvalue(), **loaders}
    real = images_module.preprocess_image

    def preprocess(image, config):
        if image.shape[:2] == (37, 53):
            raise cv2.error("OpenCV(5.1.0) resize.cpp:1: error: (-4:Insufficient memory)")
        return real(image, config)

    monkeypatch.setattr(images_module, "preprocess_image", preprocess)
    cache, failures = build_image_cache(loaders, SMALL, workers=2, progress=False)
    assert cache.image_ids == tuple(loaders)[1:]
    assert list(failures) == ["ISIC_odd"]
    assert failures["ISIC_odd"].startswith("cannot preprocess: ")
    assert "Insufficient memory" in failures["ISIC_odd"]


def test_image_cache_repr_gives_its_size_not_its_pixels() -> None:
    cache = ImageCache(np.zeros((1000, 8, 9, 3), np.uint8), tuple(map(str, range(1000))), {})
    assert repr(cache) == "ImageCache(1000 images of 8x9 (HxW), uint8, first '0'; preprocessing {})"
    assert cache.shape == (1000, 8, 9, 3)


def test_images_unlike_dermoscopy_are_cached_and_named_in_one_warning(caplog) -> None:
    """A 3x2 thumbnail or a grey scan was classified with confidence and no word."""
    config = PreprocessConfig(height=48, width=64)
    grey = np.repeat(noisy_rgb(48, 64)[..., :1], 3, axis=2)
    loaders = {
        "colour": lambda: encode(noisy_rgb(48, 64)),
        "tiny": lambda: encode(noisy_rgb(10, 12, seed=1)),  # enlarged 5.3x on a side
        "small": lambda: encode(noisy_rgb(12, 16, seed=2)),  # 4x: still fine
        "grey": lambda: encode(Image.fromarray(grey[..., 0], mode="L")),
        "bad": lambda: b"junk",
    }
    with caplog.at_level("WARNING", logger="skin_lesion.images"):
        cache, failures = build_image_cache(loaders, config, workers=2, progress=False)
    assert cache.image_ids == ("colour", "tiny", "small", "grey") and list(failures) == ["bad"]
    odd = [r.getMessage() for r in caplog.records if "unlike dermoscopy" in r.getMessage()]
    assert odd == [
        "2 of 5 images are unlike dermoscopy images (colour, at least a quarter of the "
        "cache's size), and are used all the same: tiny (12x10, upscaled 5.3x), "
        "grey (grey: its three channels are equal)"
    ]
