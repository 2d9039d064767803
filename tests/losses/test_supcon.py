"""Tests for skin_lesion.losses.supcon."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses

from skin_lesion.losses import SupConLoss


def _random_features(batch: int, views: int, dim: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, views, dim, generator=generator), dim=-1)


def _pml_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """PML's SupConLoss on the views flattened into the batch, with repeated labels."""
    batch, views, dim = features.shape
    return pml_losses.SupConLoss(temperature=temperature)(
        features.reshape(batch * views, dim), labels.repeat_interleave(views)
    )


def _loop_reference(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Eq. 2 of Khosla et al. 2020 anchor by anchor, averaged over anchors with positives."""
    batch, views, dim = features.shape
    z = features.reshape(batch * views, dim).double()
    flat_labels = labels.repeat_interleave(views).tolist()
    per_anchor = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        positives = [p for p in others if flat_labels[p] == flat_labels[i]]
        if not positives:
            continue
        log_denominator = math.log(sum(math.exp(z[i] @ z[a] / temperature) for a in others))
        log_probs = [float(z[i] @ z[p]) / temperature - log_denominator for p in positives]
        per_anchor.append(-sum(log_probs) / len(positives))
    return sum(per_anchor) / len(per_anchor)


@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5])
def test_matches_pytorch_metric_learning_with_two_views(temperature: float) -> None:
    features = _random_features(batch=16, views=2, dim=32)
    labels = torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(1))

    ours = SupConLoss(temperature=temperature)(features, labels)

    torch.testing.assert_close(ours, _pml_loss(features, labels, temperature), rtol=0, atol=1e-5)


def test_matches_pytorch_metric_learning_with_singleton_anchors() -> None:
    # views=1 and two labels seen once: PML's AvgNonZeroReducer averages over anchors with
    # a non-zero loss, i.e. those with a positive, as this loss does.
    features = _random_features(batch=10, views=1, dim=8)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 4])

    ours = SupConLoss(temperature=0.1)(features, labels)

    torch.testing.assert_close(ours, _pml_loss(features, labels, 0.1), rtol=0, atol=1e-5)


def test_hand_computed_two_samples_two_views() -> None:
    # Sample 0 has views z0=(1,0), z1=(0.6,0.8); sample 1 has z2=(0,1), z3=(-1,0).
    # Cosines: z0.z1=0.6, z0.z2=0, z0.z3=-1, z1.z2=0.8, z1.z3=-0.6, z2.z3=0.
    t = 0.5
    features = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [-1.0, 0.0]]])
    labels = torch.tensor([0, 1])
    e = math.exp
    # Each anchor has one positive: loss_i = -(s_ip/t - log sum_{a != i} exp(s_ia/t)).
    loss_z0 = -(0.6 / t - math.log(e(0.6 / t) + e(0.0 / t) + e(-1.0 / t)))
    loss_z1 = -(0.6 / t - math.log(e(0.6 / t) + e(0.8 / t) + e(-0.6 / t)))
    loss_z2 = -(0.0 / t - math.log(e(0.0 / t) + e(0.8 / t) + e(0.0 / t)))
    loss_z3 = -(0.0 / t - math.log(e(-1.0 / t) + e(-0.6 / t) + e(0.0 / t)))
    expected = (loss_z0 + loss_z1 + loss_z2 + loss_z3) / 4

    loss = SupConLoss(temperature=t)(features, labels)

    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_matches_loop_reference_with_many_positives() -> None:
    features = _random_features(batch=6, views=3, dim=5, seed=3)
    labels = torch.tensor([2, 0, 2, 1, 0, 2])

    loss = SupConLoss(temperature=0.2)(features, labels)

    assert loss.item() == pytest.approx(_loop_reference(features, labels, 0.2), abs=1e-5)


def test_invariant_to_batch_permutation() -> None:
    features = _random_features(batch=12, views=2, dim=16)
    labels = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(2))
    order = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    loss_fn = SupConLoss()

    torch.testing.assert_close(loss_fn(features[order], labels[order]), loss_fn(features, labels))


def test_base_temperature_scales_by_ratio() -> None:
    features = _random_features(batch=8, views=2, dim=8)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])
    unscaled = SupConLoss(temperature=0.1)(features, labels)

    same = SupConLoss(temperature=0.1, base_temperature=0.1)(features, labels)
    halved = SupConLoss(temperature=0.1, base_temperature=0.2)(features, labels)

    torch.testing.assert_close(same, unscaled)
    torch.testing.assert_close(halved, unscaled / 2)


def test_gradients_are_finite_and_non_zero() -> None:
    features = _random_features(batch=8, views=2, dim=8).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])

    SupConLoss()(features, labels).backward()

    assert features.grad is not None
    assert torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0


def test_no_positive_anywhere_gives_connected_zero() -> None:
    features = _random_features(batch=5, views=1, dim=4).requires_grad_(True)
    labels = torch.arange(5)

    loss = SupConLoss()(features, labels)
    loss.backward()

    assert loss.item() == 0.0
    assert loss.requires_grad
    assert torch.isfinite(features.grad).all()
    assert (features.grad == 0).all()


def test_single_sample_single_view_gives_connected_zero() -> None:
    features = _random_features(batch=1, views=1, dim=4).requires_grad_(True)

    loss = SupConLoss()(features, torch.tensor([0]))
    loss.backward()

    assert loss.item() == 0.0
    assert torch.isfinite(features.grad).all()


def test_mixed_batch_averages_only_anchors_with_positives() -> None:
    features = _random_features(batch=7, views=1, dim=6, seed=5).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 2, 3, 3, 4])  # anchors 1, 3 and 6 have no positive

    loss = SupConLoss(temperature=0.3)(features, labels)
    loss.backward()

    # The singletons still sit in the denominators of the other anchors (Eq. 2).
    assert loss.item() == pytest.approx(_loop_reference(features.detach(), labels, 0.3), abs=1e-5)
    assert torch.isfinite(features.grad).all()


def test_float32_under_autocast() -> None:
    features = _random_features(batch=8, views=2, dim=8).to(torch.bfloat16)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])

    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = SupConLoss()(features, labels)

    assert loss.dtype == torch.float32
    expected = SupConLoss()(features.float(), labels)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize(
    ("feature_shape", "label_shape", "bad"),
    [
        ((8, 16), (8,), "(8, 16)"),
        ((8, 2, 4, 4), (8,), "(8, 2, 4, 4)"),
        ((8, 2, 16), (8, 1), "(8, 1)"),
        ((8, 2, 16), (7,), "(7,)"),
        ((0, 2, 16), (0,), "(0, 2, 16)"),
    ],
)
def test_bad_shapes_raise_naming_the_shape(
    feature_shape: tuple[int, ...], label_shape: tuple[int, ...], bad: str
) -> None:
    features = torch.zeros(feature_shape)
    labels = torch.zeros(label_shape, dtype=torch.long)

    with pytest.raises(ValueError, match=re.escape(bad)):
        SupConLoss()(features, labels)


def test_non_positive_temperature_raises() -> None:
    with pytest.raises(ValueError, match=re.escape("-0.1")):
        SupConLoss(temperature=-0.1)
