"""Tests for skin_lesion.preprocessing: cover-resize, hair removal, CLAHE, their configs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skin_lesion.preprocessing import (
    ClaheConfig,
    HairRemovalConfig,
    PreprocessConfig,
    apply_clahe,
    preprocess_image,
    remove_hair,
    resize_cover,
)

SKIN = (200, 150, 130)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def noisy_rgb(height: int = 60, width: int = 80, seed: int = 0) -> np.ndarray:
    """A random RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- resize_cover ------------------------------------------------------------------------


def test_resize_cover_same_aspect_keeps_everything():
    image = np.full((300, 400, 3), 128, dtype=np.uint8)
    image[:, :8] = RED
    image[:, -8:] = BLUE
    image[:8] = GREEN
    out = resize_cover(image, 225, 300)
    assert out.shape == (225, 300, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out[100, 0], RED)
    np.testing.assert_array_equal(out[100, -1], BLUE)
    np.testing.assert_array_equal(out[0, 150], GREEN)


def test_resize_cover_ham10000_size_has_no_loss():
    image = np.full((450, 600, 3), 128, dtype=np.uint8)
    image[:, :3] = RED
    image[:, -3:] = BLUE
    out = resize_cover(image, 256, 341)
    assert out.shape == (256, 341, 3)
    assert out[128, 0, 0] > 200 and out[128, -1, 2] > 200


def test_resize_cover_tall_image_keeps_centre_stripe():
    image = np.zeros((300, 100, 3), dtype=np.uint8)
    image[:100] = RED
    image[100:200] = GREEN
    image[200:] = BLUE
    out = resize_cover(image, 50, 50)
    assert out.shape == (50, 50, 3)
    np.testing.assert_array_equal(out, np.broadcast_to(GREEN, (50, 50, 3)))


def test_resize_cover_wide_image_crops_sides_without_distortion():
    image = np.zeros((100, 300, 3), dtype=np.uint8)
    cv2.circle(image, (150, 50), 40, (255, 255, 255), -1)
    out = resize_cover(image, 100, 100)
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 1  # still round


def test_resize_cover_enlarges():
    image = np.zeros((15, 20, 3), dtype=np.uint8)
    image[:, :10] = RED
    image[:, 10:] = BLUE
    out = resize_cover(image, 60, 80)
    assert out.shape == (60, 80, 3)
    np.testing.assert_array_equal(out[30, 5], RED)
    np.testing.assert_array_equal(out[30, -5], BLUE)


def test_resize_cover_shrinking_averages_instead_of_aliasing():
    checkerboard = ((np.indices((40, 40)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out = resize_cover(np.stack([checkerboard] * 3, axis=-1), 20, 20)
    assert np.abs(out.astype(int) - 127.5).max() <= 1


def test_resize_cover_same_size_returns_a_copy():
    image = noisy_rgb(10, 12)
    out = resize_cover(image, 10, 12)
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_resize_cover_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        resize_cover(np.zeros((4, 4), dtype=np.uint8), 2, 2)
    with pytest.raises(ValueError, match="float32"):
        resize_cover(np.zeros((4, 4, 3), dtype=np.float32), 2, 2)


# --- remove_hair and apply_clahe ---------------------------------------------------------


def skin_with_hair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    skin = np.clip(rng.normal(SKIN, 3, (100, 120, 3)), 0, 255).astype(np.uint8)
    hair_mask = np.zeros((100, 120), dtype=np.uint8)
    cv2.line(hair_mask, (10, 15), (110, 85), 255, 2)
    image = skin.copy()
    image[hair_mask > 0] = (40, 25, 20)
    return image, hair_mask > 0


def test_remove_hair_restores_line_and_keeps_skin():
    image, hair = skin_with_hair()
    out = remove_hair(image, HairRemovalConfig(enabled=True))
    assert out.shape == image.shape and out.dtype == np.uint8
    before = np.abs(image[hair].astype(float) - SKIN).mean()
    after = np.abs(out[hair].astype(float) - SKIN).mean()
    assert after < 0.15 * before
    far = cv2.dilate(hair.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    assert np.abs(out[far].astype(int) - image[far]).max() <= 2


def test_remove_hair_without_hair_is_a_no_op():
    image = np.full((40, 50, 3), SKIN, dtype=np.uint8)
    out = remove_hair(image, HairRemovalConfig())
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_apply_clahe_raises_contrast_and_keeps_hue():
    # a faint brownish lesion on skin, plus sensor noise: low lightness contrast
    rows, cols = np.mgrid[:96, :128]
    blob = 12 * np.exp(-((rows - 48) ** 2 + (cols - 64) ** 2) / (2 * 20**2))
    base = 140 - blob + np.random.default_rng(4).normal(0, 2, (96, 128))
    image = np.clip(np.stack([base * 1.2, base, base * 0.85], axis=-1), 0, 255).astype(np.uint8)
    out = apply_clahe(image, ClaheConfig(enabled=True))
    assert out.shape == image.shape and out.dtype == np.uint8
    lab_in = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(float)
    lab_out = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(float)
    assert lab_out[..., 0].std() > 1.5 * lab_in[..., 0].std()
    ab_in = lab_in[..., 1:].mean(axis=(0, 1))
    ab_out = lab_out[..., 1:].mean(axis=(0, 1))
    assert np.abs(ab_out - ab_in).max() < 2


# --- preprocess_image --------------------------------------------------------------------


def test_preprocess_image_disabled_steps_equal_resize():
    image = noisy_rgb(45, 60)
    config = PreprocessConfig(height=30, width=40)
    out = preprocess_image(image, config)
    np.testing.assert_array_equal(out, resize_cover(image, 30, 40))


def test_preprocess_image_resizes_before_hair_removal():
    image, _ = skin_with_hair()
    config = PreprocessConfig(height=50, width=60, hair_removal=HairRemovalConfig(enabled=True))
    expected = remove_hair(resize_cover(image, 50, 60), config.hair_removal)
    np.testing.assert_array_equal(preprocess_image(image, config), expected)


def test_preprocess_image_all_steps():
    image, _ = skin_with_hair()
    config = PreprocessConfig(
        height=50,
        width=60,
        hair_removal=HairRemovalConfig(enabled=True),
        clahe=ClaheConfig(enabled=True),
    )
    expected = apply_clahe(
        remove_hair(resize_cover(image, 50, 60), config.hair_removal), config.clahe
    )
    out = preprocess_image(image, config)
    assert out.shape == (50, 60, 3)
    np.testing.assert_array_equal(out, expected)


# --- configs -----------------------------------------------------------------------------


def test_preprocess_config_to_dict_is_plain_and_nested():
    config = PreprocessConfig(hair_removal=HairRemovalConfig(enabled=True, kernel_size=11))
    assert config.to_dict() == {
        "height": 256,
        "width": 341,
        "hair_removal": {"enabled": True, "kernel_size": 11, "threshold": 10, "inpaint_radius": 3},
        "clahe": {"enabled": False, "clip_limit": 2.0, "tile_grid_size": 8},
    }


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: HairRemovalConfig(kernel_size=8), "kernel_size.*8"),
        (lambda: HairRemovalConfig(threshold=300), "threshold.*300"),
        (lambda: HairRemovalConfig(inpaint_radius=0), "inpaint_radius.*0"),
        (lambda: ClaheConfig(clip_limit=0.0), "clip_limit.*0.0"),
        (lambda: ClaheConfig(tile_grid_size=0), "tile_grid_size.*0"),
        (lambda: PreprocessConfig(height=0), "0x341"),
    ],
)
def test_configs_reject_bad_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_resize_cover_of_an_extreme_aspect_crops_before_it_scales(monkeypatch):
    """A 2x40000 strip into 256x341 was scaled whole (6.8 million rows, 7 GB) before its
    crop; now only what the output shows is scaled, to the same centre stripe."""
    image = np.zeros((40000, 2, 3), dtype=np.uint8)
    image[:19990] = RED
    image[19990:20010] = GREEN
    image[20010:] = BLUE
    sizes = []
    real_resize = cv2.resize

    def spy(src, dsize, **kwargs):
        sizes.append(dsize)
        return real_resize(src, dsize, **kwargs)

    monkeypatch.setattr(cv2, "resize", spy)
    out = resize_cover(image, 256, 341)
    assert out.shape == (256, 341, 3)
    np.testing.assert_array_equal(out[100:150], np.broadcast_to(GREEN, (50, 341, 3)))
    assert all(w * h <= 16 * 256 * 341 for w, h in sizes)  # not 341 x 6.8 million
    # An ordinary aspect takes the path it always did: one resize of the whole image.
    sizes.clear()
    resize_cover(np.zeros((450, 1800, 3), np.uint8), 256, 341)
    assert sizes == [(1024, 256)]


@pytest.mark.parametrize("shape", [(1000, 40000), (100, 3000), (56, 4000), (40000, 1000)])
def test_resize_cover_of_an_extreme_aspect_equals_scaling_the_whole_where_sizes_allow(shape):
    """Same factors and a crop on a whole output pixel: the very pixels of scaling the whole
    image then cropping (a crop that recomputed the factors squeezed the window)."""
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    height, width = 224, 224
    scale = max(height / shape[0], width / shape[1])
    new_h, new_w = max(height, round(shape[0] * scale)), max(width, round(shape[1] * scale))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    whole = cv2.resize(image, (new_w, new_h), interpolation=method)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    np.testing.assert_array_equal(
        resize_cover(image, height, width), whole[top : top + height, left : left + width]
    )
