import numpy as np
import pytest
import timm
import torch
from torch import nn

from skin_lesion import evaluation
from skin_lesion.augment import EvalTransform
from skin_lesion.classifier import Classifier
from skin_lesion.gradcam import (
    feature_map_layer,
    gradcam_heatmaps,
    last_conv_layer,
    normalise_maps,
    overlay,
)
from skin_lesion.prediction import TTA_VIEWS, dihedral, undo_dihedral

SIZE = 32
HALF = SIZE // 2
# Red square in the top-left quadrant, blue square in the bottom-right one.
RED_SQUARE = (slice(4, 12), slice(4, 12))
BLUE_SQUARE = (slice(20, 28), slice(20, 28))


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    torch.manual_seed(0)
    encoder = timm.create_model("test_efficientnet", num_classes=0)
    return Classifier(encoder, num_classes=3, hidden_dim=8).eval()


class SquareNet(nn.Module):
    """Class 0 scores the red pixels, class 1 the blue ones; position plays no part.

    Conv -> ReLU -> global average pool -> Linear: each conv channel fires only where its
    colour is bright, so Grad-CAM for a class must light up that colour's square.
    """

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 2, kernel_size=3, stride=2, padding=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0  # red detector
            conv.weight[1, 2, 1, 1] = 1.0  # blue detector
            conv.bias.fill_(-0.5)
        self.encoder = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2))
            self.head.bias.zero_()

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encoder(images))


def two_squares() -> torch.Tensor:
    image = torch.zeros(3, SIZE, SIZE)
    image[(0, *RED_SQUARE)] = 1.0
    image[(2, *BLUE_SQUARE)] = 1.0
    return image


def quadrant_mass(heatmap: np.ndarray, rows: slice, cols: slice) -> float:
    return float(heatmap[rows, cols].sum() / heatmap.sum())


def test_last_conv_layer_finds_conv_head(classifier):
    assert last_conv_layer(classifier.encoder) is classifier.encoder.conv_head


def test_last_conv_layer_without_conv_names_the_module():
    with pytest.raises(ValueError, match="Linear"):
        last_conv_layer(nn.Linear(2, 2))


def test_heatmaps_shape_range_and_no_parameter_grads(classifier):
    images = torch.randn(2, 3, SIZE, SIZE)
    classifier.train()
    heatmaps = gradcam_heatmaps(classifier, images, [0, 2])
    assert heatmaps.shape == (2, SIZE, SIZE)
    assert heatmaps.dtype == np.float32
    assert np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    assert all(p.grad is None for p in classifier.parameters())
    assert classifier.training  # mode restored
    classifier.eval()


def test_heatmaps_with_metadata_features():
    torch.manual_seed(0)
    encoder = timm.create_model("test_efficientnet", num_classes=0)
    model = Classifier(encoder, num_classes=3, hidden_dim=8, meta_features=2).eval()
    images, meta = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, 2)
    heatmaps = gradcam_heatmaps(
        model, images, torch.tensor([1, 0]), meta=meta, layer="encoder.conv_head"
    )
    assert heatmaps.shape == (2, SIZE, SIZE)
    assert np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    # The metadata reaches the forward pass: other values, other heatmaps.
    zeroed = gradcam_heatmaps(
        model, images, torch.tensor([1, 0]), meta=torch.zeros_like(meta), layer="encoder.conv_head"
    )
    assert np.abs(heatmaps - zeroed).max() > 0.1


def test_gradcam_localises_the_target_class_square():
    model = SquareNet().eval()
    images = torch.stack([two_squares(), two_squares()])
    heatmaps = gradcam_heatmaps(model, images, [0, 1])
    assert heatmaps.max() == pytest.approx(1.0)
    top_left, bottom_right = (slice(0, HALF), slice(0, HALF)), (slice(HALF, SIZE),) * 2
    assert quadrant_mass(heatmaps[0], *top_left) > 0.9
    assert quadrant_mass(heatmaps[1], *bottom_right) > 0.9


def test_gradcam_of_an_empty_image_is_zero_not_nan():
    heatmaps = gradcam_heatmaps(SquareNet(), torch.zeros(1, 3, SIZE, SIZE), 0)
    np.testing.assert_array_equal(heatmaps, np.zeros((1, SIZE, SIZE), np.float32))


def test_gradcam_rejects_a_target_count_mismatch():
    with pytest.raises(ValueError, match="expected 1 or 2 targets"):
        gradcam_heatmaps(SquareNet(), torch.zeros(2, 3, SIZE, SIZE), [0, 1, 0])


def test_normalise_maps_min_max_and_constant_maps():
    maps = torch.stack(
        [torch.tensor([[1.0, 3.0], [2.0, 5.0]]), torch.zeros(2, 2), torch.full((2, 2), 0.3)]
    )
    out = normalise_maps(maps)
    np.testing.assert_allclose(out[0], [[0.0, 0.5], [0.25, 1.0]])
    np.testing.assert_array_equal(out[1], np.zeros((2, 2)))
    np.testing.assert_array_equal(out[2], np.ones((2, 2)))


def test_overlay_blends_jet_colours_and_resizes():
    image = np.full((20, 30, 3), 100, np.uint8)
    out = overlay(image, np.zeros((5, 6), np.float32), alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    # jet(0) is dark blue (0, 0, 0.5): half image, half of that colour.
    np.testing.assert_allclose(out[0, 0], [50, 50, 114], atol=1)
    hot = overlay(image, np.ones((20, 30)), alpha=1.0)
    assert hot[..., 0].mean() > 100 and hot[..., 2].mean() < 10  # jet(1) is dark red


def test_overlay_rejects_a_grey_image():
    with pytest.raises(ValueError, match=r"\(20, 30\)"):
        overlay(np.zeros((20, 30), np.uint8), np.zeros((20, 30)))


def test_default_layer_is_the_final_feature_map_after_batchnorm_and_activation(classifier):
    """Not ``conv_head``, whose output comes before ``bn2``'s BatchNorm and SiLU."""
    images = torch.randn(2, 3, SIZE, SIZE)
    assert feature_map_layer(classifier.encoder, images[:1]) is classifier.encoder.bn2
    default = gradcam_heatmaps(classifier, images, [0, 2])
    np.testing.assert_array_equal(
        default, gradcam_heatmaps(classifier, images, [0, 2], layer="encoder.bn2")
    )
    before_bn = gradcam_heatmaps(classifier, images, [0, 2], layer="encoder.conv_head")
    assert np.abs(default - before_bn).max() > 0.05


def test_feature_map_layer_of_other_timm_families_and_no_statistic_moves():
    torch.manual_seed(0)
    resnet = timm.create_model("resnet10t", num_classes=0).eval()
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    assert feature_map_layer(resnet, torch.randn(1, 3, SIZE, SIZE)) is resnet.layer4
    assert all(torch.equal(v, before[k]) for k, v in resnet.state_dict().items())
    vit = timm.create_model("vit_tiny_patch16_224", img_size=SIZE, num_classes=0).eval()
    with pytest.raises(ValueError, match=r"features are \(1, 5, 192\), not a \(B, C, H, W\)"):
        feature_map_layer(vit, torch.randn(1, 3, SIZE, SIZE))


def test_feature_map_layer_refuses_channels_last_features() -> None:
    """timm's Swin returns (B, H, W, C): Grad-CAM would weigh its rows as channels."""
    swin = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0).eval()
    with pytest.raises(ValueError, match=r"\(1, 7, 7, 768\) with its 768 channels last"):
        feature_map_layer(swin, torch.randn(1, 3, 224, 224))


# ----- test-time augmentation: the views' heatmaps, each turned back, averaged -----------


def test_undo_dihedral_inverts_every_view() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    for k in range(8):
        assert torch.equal(undo_dihedral(dihedral(x, k), k), x), k
    assert len({dihedral(x, k).flatten().tolist().__repr__() for k in range(8)}) == 8


TTA_SIZE = 128  # a 4x4 feature map in test_efficientnet (32 px gives 1x1: nothing to turn)


def blocks(seed: int) -> np.ndarray:
    """Three cached images of a few coloured rectangles at random places, ``TTA_SIZE`` square."""
    rng = np.random.default_rng(seed)
    images = np.zeros((3, TTA_SIZE, TTA_SIZE, 3), dtype=np.uint8)
    for image in images:
        for _ in range(3):
            top, left = rng.integers(0, TTA_SIZE - 30, 2)
            image[top : top + 30, left : left + 20, rng.integers(0, 3)] = 255
    return images


def explain_square_images(classifier, monkeypatch, images: np.ndarray, tta: str) -> np.ndarray:
    monkeypatch.setattr(evaluation, "classifier_from_checkpoint", lambda checkpoint: classifier)
    checkpoint = {"preprocessing": {"crop_size": TTA_SIZE, "mean": [0.5] * 3, "std": [0.25] * 3}}
    crops, heatmaps = evaluation.explain(
        checkpoint, images, [0, 1, 2], device=torch.device("cpu"), tta=tta
    )
    np.testing.assert_array_equal(crops, images)  # a square image of the crop's size is kept
    return heatmaps


@pytest.mark.parametrize(
    ("tta", "turn"),
    [
        ("flips", lambda a: a[:, :, ::-1]),  # horizontal flip
        ("flips", lambda a: a[:, ::-1, ::-1]),  # 180-degree rotation
        ("dihedral", lambda a: np.swapaxes(a, 1, 2)),  # transpose
        ("dihedral", lambda a: np.rot90(a, axes=(1, 2))),
    ],
)
def test_tta_gradcam_explains_the_averaged_prediction(classifier, monkeypatch, tta, turn):
    """Averaged over a group of views, each turned back, the map of a turned image is the
    turned map of the image (as the TTA prediction is the same for both); one view's map is
    not, since a CNN is not turn-equivariant."""
    images = blocks(seed=0)
    turned = np.ascontiguousarray(turn(images))
    maps = explain_square_images(classifier, monkeypatch, images, tta)
    maps_of_turned = explain_square_images(classifier, monkeypatch, turned, tta)
    assert maps.shape == (3, TTA_SIZE, TTA_SIZE) and maps.min() >= 0.0 and maps.max() == 1.0
    np.testing.assert_allclose(maps_of_turned, turn(maps), atol=1e-4)
    single = explain_square_images(classifier, monkeypatch, images, "none")
    single_turned = explain_square_images(classifier, monkeypatch, turned, "none")
    assert np.abs(single_turned - turn(single)).max() > 0.05
    # The average of the views' maps, each turned back onto the crop, renormalised.
    x = EvalTransform(TTA_SIZE, [0.5] * 3, [0.25] * 3)(torch.from_numpy(images))
    views = [
        undo_dihedral(torch.from_numpy(gradcam_heatmaps(classifier, dihedral(x, k), [0, 1, 2])), k)
        for k in TTA_VIEWS[tta]
    ]
    expected = normalise_maps(torch.stack(views).mean(0)).numpy()
    np.testing.assert_allclose(maps, expected, atol=1e-6)


def test_explain_refuses_an_unknown_tta(classifier, monkeypatch) -> None:
    with pytest.raises(ValueError, match=r"tta must be one of.*'rot'"):
        explain_square_images(classifier, monkeypatch, blocks(seed=1), "rot")
