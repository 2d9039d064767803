"""Tests for skin_lesion.augment."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from skin_lesion.augment import (
    GRAY_WEIGHTS,
    AugmentConfig,
    apply_colour,
    build_eval_transform,
    build_train_augment,
    colour_matrices,
    gaussian_blur,
    random_resized_crop_boxes,
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
        ("color_jitter", (0.4, 0.4, 0.2, 0.6)),
    ],
)
def test_config_rejects_bad_values_naming_them(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


# Geometry only: the whole image, unflipped, unrotated, unjittered, unless a test turns one on.
_PLAIN = {
    "crop_scale": (1.0, 1.0),
    "crop_ratio": (1.0, 1.0),
    "hflip_p": 0.0,
    "vflip_p": 0.0,
    "rotation_p": 0.0,
    "color_jitter_p": 0.0,
}


def _apply(config: AugmentConfig, images: torch.Tensor) -> torch.Tensor:
    """The augmentation in [0, 1] RGB (normalisation with mean 0, std 1)."""
    return build_train_augment(config, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(images)


def _apply_colour(x: torch.Tensor, *factors: float) -> torch.Tensor:
    n = len(x)
    matrix, offset = colour_matrices(x, *(torch.full((n,), f) for f in factors))
    return apply_colour(x, matrix, offset)


def test_crop_boxes_follow_torchvision_rules() -> None:
    torch.manual_seed(0)
    height, width, scale, ratio = 60, 80, (0.2, 0.9), (0.75, 1.3333)

    x0, y0, w, h = random_resized_crop_boxes(4000, height, width, scale, ratio, torch.device("cpu"))

    area = w * h / (height * width)
    assert area.min() >= scale[0] - 1e-5 and area.max() <= scale[1] + 1e-5
    assert (w / h).min() >= ratio[0] - 1e-4 and (w / h).max() <= ratio[1] + 1e-4
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= width + 1e-3).all() and (y0 + h <= height + 1e-3).all()
    # The corner is drawn over all the room there is, not pinned to one place.
    assert (x0 / (width - w)).std() > 0.2


def test_crop_boxes_fall_back_to_the_largest_allowed_centred_box() -> None:
    # A 40x80 image cannot hold a box of its whole area with a ratio in [1, 1.5]: the fallback
    # is torchvision's, full height and the widest allowed ratio, centred.
    x0, y0, w, h = random_resized_crop_boxes(
        50, 40, 80, (1.0, 1.0), (1.0, 1.5), torch.device("cpu")
    )

    torch.testing.assert_close(h, torch.full((50,), 40.0))
    torch.testing.assert_close(w, torch.full((50,), 60.0))
    torch.testing.assert_close(x0, torch.full((50,), 10.0))  # centred, as torchvision does
    torch.testing.assert_close(y0, torch.zeros(50))


@pytest.mark.parametrize(("field", "dim"), [("hflip_p", 3), ("vflip_p", 2)])
def test_flips_mirror_the_image_exactly(field: str, dim: int) -> None:
    images = _images(batch=3, height=CROP, width=CROP)
    config = AugmentConfig(crop_size=CROP, **(_PLAIN | {field: 1.0}))

    out = _apply(config, images)

    expected = images.permute(0, 3, 1, 2).float().div(255).flip(dim)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_rotation_turns_about_the_centre() -> None:
    # One bright dot 10 px right of the centre of a dark 33x33 image: any rotation keeps it
    # 10 px from the centre. Zero padding: reflection would mirror the dot into the corners.
    size, radius = 33, 10
    images = torch.zeros(16, size, size, 3, dtype=torch.uint8)
    images[:, size // 2, size // 2 + radius] = 255
    config = AugmentConfig(
        crop_size=size, rotation_padding="zeros", **(_PLAIN | {"rotation_p": 1.0})
    )
    torch.manual_seed(0)

    out = _apply(config, images)[:, 0]

    coords = torch.arange(size, dtype=torch.float32) - size // 2
    mass = out.sum(dim=(1, 2))
    cy = (out.sum(dim=2) * coords).sum(dim=1) / mass
    cx = (out.sum(dim=1) * coords).sum(dim=1) / mass
    torch.testing.assert_close(
        torch.hypot(cx, cy), torch.full((16,), float(radius)), atol=0.3, rtol=0
    )
    angles = torch.atan2(cy, cx)
    assert angles.std() > 1.0  # the angles are spread, not one rotation for the batch


def _kornia_colour(x: torch.Tensor, brightness: float, contrast: float, saturation: float):
    """torchvision's formulas, in its order, as kornia's functional ops implement them."""
    enhance = pytest.importorskip("kornia.enhance")  # a test dependency, not a runtime one
    x = enhance.adjust_brightness_accumulative(x, brightness)
    x = enhance.adjust_contrast_with_mean_subtraction(x, contrast)
    return enhance.adjust_saturation_with_gray_subtraction(x, saturation)


@pytest.mark.parametrize(
    "factors", [(1.3, 1.0, 1.0), (1.0, 0.6, 1.0), (1.0, 1.0, 1.4), (1.2, 0.7, 0.8)]
)
def test_colour_matrices_match_torchvision_formulas(factors: tuple[float, float, float]) -> None:
    # Values stay inside [0, 1] here, so torchvision's clamps between the steps do not act.
    x = 0.3 + 0.3 * torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    ours = _apply_colour(x, *factors, 0.0)

    torch.testing.assert_close(ours, _kornia_colour(x, *factors), rtol=0, atol=1e-5)


def test_hue_rotation_keeps_grey_and_luma_and_turns_back() -> None:
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    gray = torch.tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)

    shifted = _apply_colour(x, 1.0, 1.0, 1.0, 0.2)

    torch.testing.assert_close((shifted * gray).sum(1), (x * gray).sum(1), rtol=0, atol=1e-5)
    assert (shifted - x).abs().mean() > 0.02
    grey = torch.full((1, 3, 2, 2), 0.4)
    torch.testing.assert_close(_apply_colour(grey, 1.0, 1.0, 1.0, 0.3), grey, rtol=0, atol=1e-6)
    torch.testing.assert_close(_apply_colour(x, 1.0, 1.0, 1.0, 1.0), x, rtol=0, atol=1e-5)
    torch.testing.assert_close(_apply_colour(x, 1.0, 1.0, 1.0, 0.0), x, rtol=0, atol=1e-6)


def test_colour_jitter_gate_leaves_skipped_samples_exactly_unchanged() -> None:
    images = _images(batch=64, height=CROP, width=CROP)
    config = AugmentConfig(crop_size=CROP, **(_PLAIN | {"color_jitter_p": 0.5}))
    torch.manual_seed(0)

    out = _apply(config, images)

    plain = images.permute(0, 3, 1, 2).float().div(255)
    unchanged = (out == plain).flatten(1).all(dim=1)
    assert 16 <= unchanged.sum() <= 48
    assert ((out - plain).abs().flatten(1).amax(dim=1)[~unchanged] > 1e-3).all()


def test_gaussian_blur_matches_kornia_per_sample() -> None:
    filters = pytest.importorskip("kornia.filters")  # a test dependency, not a runtime one
    x = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.3, 1.0, 2.5])

    ours = gaussian_blur(x, sigma, 7)

    expected = filters.gaussian_blur2d(
        x, (7, 7), sigma.unsqueeze(1).expand(3, 2), border_type="reflect"
    )
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(ours[2], x[2], atol=1e-2)


def test_blur_kernel_larger_than_the_crop_is_refused() -> None:
    with pytest.raises(ValueError, match="blur_kernel 23 is too large for crop_size 8"):
        AugmentConfig(crop_size=8, blur_p=0.5, blur_kernel=23)


# Ops that wait for the device (a host sync on CUDA) when they run on a GPU tensor.
_SYNCING_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero")


def _op_counts(augment: torch.nn.Module, images: torch.Tensor) -> dict[str, int]:
    augment(images)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        augment(images)
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}


@pytest.mark.parametrize("blur_p", [0.0, 0.5])
def test_cost_does_not_grow_with_the_batch_and_nothing_syncs(blur_p: float) -> None:
    """The property the GPU speed rests on: the ops a batch launches do not depend on its size
    (no loop over samples), and none waits for the device. kornia's AugmentationSequential
    fails both (its crop loops over samples; its probability gates sync)."""
    augment = build_train_augment(
        AugmentConfig(crop_size=CROP, blur_p=blur_p, blur_kernel=5), MEAN, STD
    )

    small = _op_counts(augment, _images(batch=2))
    large = _op_counts(augment, _images(batch=64))

    assert small == large
    assert sum(large.values()) < 1000
    assert not {op: n for op, n in large.items() if op in _SYNCING_OPS}


@pytest.mark.gpu
def test_runs_on_the_batch_device() -> None:
    augment = build_train_augment(AugmentConfig(crop_size=CROP), MEAN, STD)

    out = two_views(augment, _images().cuda())

    assert out.device.type == "cuda"
    assert torch.isfinite(out).all()


@pytest.mark.gpu
def test_nothing_waits_for_the_gpu() -> None:
    augment = build_train_augment(
        AugmentConfig(crop_size=CROP, blur_p=0.5, blur_kernel=5), MEAN, STD
    ).cuda()
    images = _images().cuda()
    two_views(augment, images)  # warm-up

    torch.cuda.set_sync_debug_mode("error")  # any host sync raises
    try:
        views = two_views(augment, images)
    finally:
        torch.cuda.set_sync_debug_mode("default")

    assert views.device.type == "cuda"
