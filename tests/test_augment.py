"""Tests for skin_lesion.augment."""

from __future__ import annotations

import pytest
import torch

from skin_lesion.augment import (
    AugmentConfig,
    build_eval_transform,
    build_train_augment,
    two_views,
)

# Arbitrary, deliberately not ImageNet's: the transforms must use what they are given.
MEAN = (0.3, 0.5, 0.7)
STD = (0.2, 0.25, 0.3)
CROP = 32


def _images(batch: int = 8, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8, generator=generator)


def _identical_images(batch: int = 8) -> torch.Tensor:
    return _images(batch=1).expand(batch, -1, -1, -1).contiguous()


def _normalized(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255 - mean) / std


def _all_distinct(batch: torch.Tensor) -> bool:
    flat = batch.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(len(flat)) * torch.finfo(flat.dtype).max
    return bool((distances > 0).all())


def test_identical_images_get_different_augmentations() -> None:
    augment = build_train_augment(AugmentConfig(crop_size=CROP), MEAN, STD)
    torch.manual_seed(0)

    out = augment(_identical_images(8))

    assert _all_distinct(out)


def test_two_views_differ_and_have_the_documented_shape() -> None:
    augment = build_train_augment(
        AugmentConfig(crop_size=CROP, blur_p=0.5, blur_kernel=5), MEAN, STD
    )
    torch.manual_seed(0)

    views = two_views(augment, _identical_images(4))

    assert views.shape == (4, 2, 3, CROP, CROP)
    assert views.dtype == torch.float32
    assert views.device == torch.device("cpu")
    assert torch.isfinite(views).all()
    assert _all_distinct(views.flatten(0, 1))


def test_output_shape_dtype_and_finite() -> None:
    augment = build_train_augment(AugmentConfig(crop_size=CROP), MEAN, STD)

    out = augment(_images(batch=3, height=40, width=56))

    assert out.shape == (3, 3, CROP, CROP)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_with_every_op_disabled_only_normalisation_remains() -> None:
    config = AugmentConfig(
        crop_size=CROP,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        hflip_p=0.0,
        vflip_p=0.0,
        rotation_p=0.0,
        color_jitter_p=0.0,
        blur_p=0.0,
    )
    images = _images(batch=4, height=CROP, width=CROP)

    out = build_train_augment(config, MEAN, STD)(images)

    torch.testing.assert_close(out, _normalized(images), rtol=0, atol=1e-6)


def test_same_seed_gives_same_output() -> None:
    augment = build_train_augment(
        AugmentConfig(crop_size=CROP, blur_p=0.5, blur_kernel=5), MEAN, STD
    )
    images = _images()

    torch.manual_seed(123)
    first = two_views(augment, images)
    torch.manual_seed(123)
    second = two_views(augment, images)
    third = two_views(augment, images)

    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(second, third)


def test_eval_transform_is_deterministic_and_centre_crops() -> None:
    transform = build_eval_transform(CROP, MEAN, STD)
    images = _images(batch=2, height=CROP, width=CROP + 16)

    first, second = transform(images), transform(images)

    assert first.shape == (2, 3, CROP, CROP)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    # Shorter side already CROP with crop_pct=1: no resize, just the central square.
    torch.testing.assert_close(first, _normalized(images[:, :, 8 : 8 + CROP]), rtol=0, atol=1e-6)


def test_eval_transform_resizes_by_crop_pct() -> None:
    transform = build_eval_transform(CROP, MEAN, STD, crop_pct=0.5, interpolation="bicubic")

    out = transform(_images(batch=2, height=24, width=30))

    assert out.shape == (2, 3, CROP, CROP)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(2, 3, 32, 32), "float32"),
        (torch.zeros(2, 32, 32, 4, dtype=torch.uint8), r"\(2, 32, 32, 4\)"),
        (torch.zeros(32, 32, 3, dtype=torch.uint8), r"\(32, 32, 3\)"),
    ],
)
def test_bad_input_raises_naming_it(images: torch.Tensor, message: str) -> None:
    augment = build_train_augment(AugmentConfig(crop_size=CROP), MEAN, STD)

    with pytest.raises(ValueError, match=message):
        augment(images)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hflip_p", 1.5),
        ("blur_kernel", 4),
        ("crop_scale", (0.9, 0.1)),
        ("rotation_padding", "wrap"),
    ],
)
def test_config_rejects_bad_values_naming_them(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


@pytest.mark.gpu
def test_runs_on_the_batch_device() -> None:
    augment = build_train_augment(AugmentConfig(crop_size=CROP), MEAN, STD)

    out = two_views(augment, _images().cuda())

    assert out.device.type == "cuda"
    assert torch.isfinite(out).all()
