"""Tests for skin_lesion.losses.focal."""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
import torch.nn.functional as F

from skin_lesion.losses import (
    FocalLoss,
    build_classification_loss,
    inverse_frequency_weights,
    sqrt_inverse_frequency_weights,
)

# Two samples, three classes, logits chosen so that softmax gives these probabilities.
PROBS = [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]
TARGETS = [0, 2]  # p_t = 0.7 and 0.5


def _hand_logits() -> torch.Tensor:
    return torch.tensor(PROBS).log()


def _random_batch(batch: int = 12, classes: int = 7, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=generator) * 3
    targets = torch.randint(0, classes, (batch,), generator=generator)
    return logits, targets


def _wrong_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: torch.Tensor):
    """The common variant that takes p_t from a class-weighted CE: p_t = p_y ** alpha_y."""
    weighted_ce = F.cross_entropy(logits, targets, weight=alpha, reduction="none")
    p_t = torch.exp(-weighted_ce)
    return ((1 - p_t) ** gamma * weighted_ce).mean()


def test_hand_computed_gamma_two_without_alpha() -> None:
    # FL = -(1 - p_t)^2 log p_t (Eq. 5, alpha = 1), averaged over the two samples.
    expected = (-(0.3**2) * math.log(0.7) - (0.5**2) * math.log(0.5)) / 2
    loss = FocalLoss(gamma=2.0)(_hand_logits(), torch.tensor(TARGETS))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_hand_computed_gamma_two_with_alpha() -> None:
    # alpha_y multiplies separately: alpha_0 = 0.5 for sample 0, alpha_2 = 2.0 for sample 1.
    # The mean divides by the 2 samples, not by alpha_0 + alpha_2.
    alpha = [0.5, 1.0, 2.0]
    expected = (-0.5 * 0.3**2 * math.log(0.7) - 2.0 * 0.5**2 * math.log(0.5)) / 2
    loss = FocalLoss(gamma=2.0, alpha=alpha)(_hand_logits(), torch.tensor(TARGETS))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma_zero_without_alpha_is_cross_entropy(reduction: str) -> None:
    logits, targets = _random_batch()
    ours = FocalLoss(gamma=0.0, reduction=reduction)(logits, targets)
    torch.testing.assert_close(
        ours, F.cross_entropy(logits, targets, reduction=reduction), atol=1e-6, rtol=0
    )


def test_gamma_zero_with_alpha_sums_like_weighted_cross_entropy() -> None:
    logits, targets = _random_batch()
    alpha = torch.linspace(0.2, 3.0, 7)
    ours = FocalLoss(gamma=0.0, alpha=alpha, reduction="sum")(logits, targets)
    expected = F.cross_entropy(logits, targets, weight=alpha, reduction="sum")
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_label_smoothing_matches_cross_entropy(eps: float) -> None:
    logits, targets = _random_batch()
    ours = FocalLoss(gamma=0.0, label_smoothing=eps)(logits, targets)
    expected = F.cross_entropy(logits, targets, label_smoothing=eps)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_label_smoothing_of_soft_targets_matches_cross_entropy() -> None:
    logits, _ = _random_batch()
    soft = torch.softmax(torch.randn(12, 7, generator=torch.Generator().manual_seed(3)), dim=1)
    ours = FocalLoss(gamma=0.0, label_smoothing=0.2)(logits, soft)
    expected = F.cross_entropy(logits, soft, label_smoothing=0.2)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_label_smoothing_applies_focal_factor_per_class_and_the_true_class_weight() -> None:
    # alpha_y * [(1 - eps) FL_y + eps * mean_k FL_k] with FL_k = -(1 - p_k)^2 log p_k.
    p = torch.tensor(PROBS)
    fl = -((1 - p) ** 2) * p.log()
    alpha = torch.tensor([0.5, 1.0, 2.0])
    y = torch.tensor(TARGETS)
    true = fl.gather(1, y[:, None])[:, 0]
    expected = (alpha[y] * (0.9 * true + 0.1 * fl.mean(dim=1))).mean()
    loss = FocalLoss(gamma=2.0, alpha=alpha, label_smoothing=0.1)(_hand_logits(), y)
    torch.testing.assert_close(loss, expected.float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_smoothing_with_inverse_weights_keeps_the_best_guess_on_the_true_class(gamma) -> None:
    # About HAM10000's train counts (akiec..vasc): nv is 67% of images, df 1%. Weighting each
    # smoothed class by its own weight (as F.cross_entropy(weight, label_smoothing) does)
    # made the loss lowest for an nv image when it was called df.
    counts = [229, 360, 769, 80, 779, 4693, 95]
    loss_fn = FocalLoss(gamma=gamma, alpha=inverse_frequency_weights(counts), label_smoothing=0.2)
    logits = torch.zeros(1, 7, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(500):
        optimizer.zero_grad()
        loss_fn(logits, torch.tensor([5])).backward()
        optimizer.step()
    probs = torch.softmax(logits.detach(), dim=1)[0]
    assert probs.argmax().item() == 5 and probs[5] > 0.5


def test_smoothing_of_a_mixup_target_is_the_mix_of_the_smoothed_losses() -> None:
    logits, _ = _random_batch(classes=3)
    alpha = torch.tensor([0.5, 1.0, 2.0])
    loss_fn = FocalLoss(gamma=2.0, alpha=alpha, label_smoothing=0.1, reduction="none")
    a, b, lam = torch.zeros(len(logits), dtype=torch.long), torch.full((len(logits),), 2), 0.3
    mixed = lam * F.one_hot(a, 3).float() + (1 - lam) * F.one_hot(b, 3).float()
    torch.testing.assert_close(
        loss_fn(logits, mixed), lam * loss_fn(logits, a) + (1 - lam) * loss_fn(logits, b)
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"gamma": 0.0}, {"alpha": [0.5, 1, 2, 1, 1, 3, 0.1]}, {"label_smoothing": 0.1}],
)
def test_one_hot_soft_targets_equal_hard_targets(kwargs: dict) -> None:
    logits, targets = _random_batch()
    loss = FocalLoss(**kwargs, reduction="none")
    hard = loss(logits, targets)
    soft = loss(logits, F.one_hot(targets, 7).float())
    torch.testing.assert_close(soft, hard, atol=1e-6, rtol=0)


def test_differs_from_class_weighted_cross_entropy_variant() -> None:
    logits, targets = _random_batch()
    alpha = torch.tensor([0.25, 4.0, 1.0, 0.5, 2.0, 3.0, 0.1])
    ours = FocalLoss(gamma=2.0, alpha=alpha)(logits, targets)
    # Both agree without weighting, so the difference below comes from alpha alone.
    ones = torch.ones(7)
    torch.testing.assert_close(
        FocalLoss(gamma=2.0)(logits, targets), _wrong_focal(logits, targets, 2.0, ones)
    )
    assert abs(ours.item() - _wrong_focal(logits, targets, 2.0, alpha).item()) > 1e-3


def test_non_negative_and_gradients_flow() -> None:
    logits, targets = _random_batch()
    logits.requires_grad_(True)
    soft = torch.softmax(torch.randn(12, 7, generator=torch.Generator().manual_seed(5)), dim=1)
    loss_fn = FocalLoss(gamma=2.0, alpha=torch.rand(7) + 0.1, label_smoothing=0.1)
    per_sample = loss_fn(logits, targets)
    assert per_sample.item() >= 0
    assert (FocalLoss(reduction="none")(logits, soft) >= 0).all()
    per_sample.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_confident_extreme_logits_stay_finite_for_small_gamma() -> None:
    # p_t == 1 exactly in float32: (1 - p)^0.5 has an infinite slope there without a clamp.
    logits = torch.tensor([[200.0, -200.0, 0.0], [-1e4, 1e4, 0.0]], requires_grad=True)
    loss = FocalLoss(gamma=0.5, label_smoothing=0.1)(logits, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


def test_half_precision_logits_give_float32_loss() -> None:
    logits, targets = _random_batch()
    loss = FocalLoss()(logits.to(torch.bfloat16), targets)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)


def test_none_reduction_keeps_one_loss_per_sample() -> None:
    logits, targets = _random_batch(batch=5)
    assert FocalLoss(reduction="none")(logits, targets).shape == (5,)
    assert FocalLoss(reduction="sum")(logits, targets).shape == ()


def test_alpha_length_mismatch_names_both_sizes() -> None:
    logits, targets = _random_batch(classes=7)
    with pytest.raises(ValueError, match=r"alpha has 3 class weights but logits have 7 classes"):
        FocalLoss(alpha=[1.0, 2.0, 3.0])(logits, targets)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": -1.0}, "gamma must be a finite number >= 0, got -1.0"),
        ({"label_smoothing": 1.5}, "label_smoothing must be in [0, 1], got 1.5"),
        ({"reduction": "avg"}, "got 'avg'"),
        ({"alpha": [1.0, -2.0]}, "(1, -2.0)"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FocalLoss(**kwargs)


def test_bad_targets_are_named() -> None:
    logits, _ = _random_batch(batch=4, classes=3)
    loss = FocalLoss()
    with pytest.raises(ValueError, match=r"target class index 3 is outside \[0, 2\]"):
        loss(logits, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"hard targets must have shape \(4,\).*got \(3,\)"):
        loss(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"soft targets must have the logits' shape \(4, 3\)"):
        loss(logits, torch.ones(4, 5) / 5)
    with pytest.raises(ValueError, match=r"logits must have shape \(batch, classes\)"):
        loss(logits[0], torch.tensor(0))


def test_targets_off_the_cpu_are_not_read_back_each_step() -> None:
    # On CUDA, int(targets.min()) would wait for the device twice a training step; there
    # the range is left to one_hot's device-side assert, as F.one_hot itself does. A meta
    # tensor has no values to read: the check must not ask for them.
    from skin_lesion.losses.focal import _check_inputs

    logits = torch.empty(4, 3, device="meta")
    targets = torch.empty(4, dtype=torch.long, device="meta")
    _check_inputs(logits, targets, None)
    with pytest.raises(ValueError, match=r"hard targets must have shape \(4,\)"):
        _check_inputs(logits, targets[:3], None)  # shapes are still checked: no sync needed


def test_inverse_frequency_weights() -> None:
    weights = inverse_frequency_weights([2, 6])
    torch.testing.assert_close(weights, torch.tensor([2.0, 8 / 12]))
    assert weights.tolist() == pytest.approx([2.0, 0.6667], abs=1e-4)
    # Mean 1 over training samples (sum_c (n_c / n) * w_c = 1), not over classes.
    counts = torch.tensor([5.0, 1.0, 30.0, 7.0])
    w = inverse_frequency_weights([5, 1, 30, 7])
    assert (counts / counts.sum() * w).sum().item() == pytest.approx(1.0)


def test_inverse_frequency_weights_name_a_zero_count() -> None:
    with pytest.raises(ValueError, match=r"class_counts\[1\] is 0"):
        inverse_frequency_weights([3, 0, 4])
    with pytest.raises(ValueError, match=r"class_counts\[0\] is 2.5"):
        inverse_frequency_weights([2.5, 1])


def test_sqrt_inverse_frequency_weights() -> None:
    weights = sqrt_inverse_frequency_weights([1, 4])
    torch.testing.assert_close(weights, torch.tensor([5 / 3, 5 / 6]))
    # Mean 1 over training samples, as the inverse-frequency weights; each ratio between two
    # classes is the square root of theirs.
    counts = [5, 1, 30, 7]
    w = sqrt_inverse_frequency_weights(counts)
    share = torch.tensor(counts, dtype=torch.float32) / sum(counts)
    assert (share * w).sum().item() == pytest.approx(1.0)
    full = inverse_frequency_weights(counts)
    assert (w[1] / w[2]).item() == pytest.approx(((full[1] / full[2]) ** 0.5).item())
    with pytest.raises(ValueError, match=r"class_counts\[2\] is -1.*square-root"):
        sqrt_inverse_frequency_weights([3, 4, -1])


def test_build_focal_with_sqrt_inverse_alpha() -> None:
    logits, targets = _random_batch(classes=3)
    counts = [10, 30, 60]
    loss = build_classification_loss(
        "focal", num_classes=3, class_counts=counts, alpha="sqrt_inverse"
    )
    expected = FocalLoss(alpha=sqrt_inverse_frequency_weights(counts))(logits, targets)
    torch.testing.assert_close(loss(logits, targets), expected)
    assert not torch.allclose(loss(logits, targets), FocalLoss()(logits, targets))


def test_build_focal_with_inverse_alpha() -> None:
    logits, targets = _random_batch(classes=3)
    counts = [10, 30, 60]
    loss = build_classification_loss(
        "focal", num_classes=3, class_counts=counts, gamma=1.5, alpha="inverse"
    )
    expected = FocalLoss(gamma=1.5, alpha=inverse_frequency_weights(counts))(logits, targets)
    torch.testing.assert_close(loss(logits, targets), expected)


@pytest.mark.parametrize("alpha", [None, "none"])
def test_build_focal_without_alpha(alpha: str | None) -> None:
    logits, targets = _random_batch(classes=3)
    loss = build_classification_loss("focal", num_classes=3, class_counts=None, alpha=alpha)
    torch.testing.assert_close(loss(logits, targets), FocalLoss()(logits, targets))


def test_build_focal_with_explicit_alpha() -> None:
    logits, targets = _random_batch(classes=3)
    loss = build_classification_loss("focal", num_classes=3, alpha=[1.0, 2.0, 0.5])
    expected = FocalLoss(alpha=[1.0, 2.0, 0.5])(logits, targets)
    torch.testing.assert_close(loss(logits, targets), expected)


def test_build_cross_entropy_accepts_hard_and_soft_targets() -> None:
    logits, targets = _random_batch()
    soft = torch.softmax(torch.randn(12, 7, generator=torch.Generator().manual_seed(7)), dim=1)
    loss = build_classification_loss(
        "cross_entropy", num_classes=7, class_counts=None, label_smoothing=0.1
    )
    torch.testing.assert_close(
        loss(logits, targets), F.cross_entropy(logits, targets, label_smoothing=0.1)
    )
    torch.testing.assert_close(
        loss(logits, soft), F.cross_entropy(logits, soft, label_smoothing=0.1)
    )


def test_build_weighted_cross_entropy() -> None:
    logits, targets = _random_batch(classes=3)
    soft = torch.softmax(torch.randn(12, 3, generator=torch.Generator().manual_seed(9)), dim=1)
    counts = [2, 6, 12]
    weights = inverse_frequency_weights(counts)
    loss = build_classification_loss("weighted_cross_entropy", num_classes=3, class_counts=counts)
    # Probability targets: torch averages -sum_k w_k q_k log p_k over samples, as we do.
    torch.testing.assert_close(loss(logits, soft), F.cross_entropy(logits, soft, weight=weights))
    # Class indices: same per-sample losses, but ours divides by the batch size where
    # torch's 'mean' divides by sum(weights[targets]).
    torch_sum = F.cross_entropy(logits, targets, weight=weights, reduction="sum")
    torch.testing.assert_close(loss(logits, targets), torch_sum / len(targets))
    # Smoothed: w_y times torch's unweighted smoothed loss (torch's weighted one weights
    # each smoothed class by its own w_k instead).
    smoothed = build_classification_loss(
        "weighted_cross_entropy", num_classes=3, class_counts=counts, label_smoothing=0.1
    )
    unweighted = F.cross_entropy(logits, targets, label_smoothing=0.1, reduction="none")
    torch.testing.assert_close(smoothed(logits, targets), (weights[targets] * unweighted).mean())


def test_build_ignores_alpha_for_cross_entropy_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logits, targets = _random_batch(classes=3)
    with caplog.at_level(logging.WARNING, logger="skin_lesion.losses.focal"):
        loss = build_classification_loss(
            "cross_entropy", num_classes=3, class_counts=[1, 2, 3], alpha="inverse"
        )
    assert "only used by the focal loss" in caplog.text
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets))


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("dice", {}, "Unknown classification loss 'dice'"),
        ("weighted_cross_entropy", {}, "weighted_cross_entropy needs class_counts"),
        ("focal", {"alpha": "inverse"}, "alpha='inverse' needs class_counts"),
        ("focal", {"alpha": "sqrt_inverse"}, "alpha='sqrt_inverse' needs class_counts"),
        ("focal", {"alpha": "balanced"}, "got 'balanced'"),
        ("focal", {"alpha": [1.0, 2.0]}, "alpha has 2 weights ([1.0, 2.0]) but num_classes is 3"),
        ("focal", {"class_counts": [1, 2]}, "class_counts has 2 entries ([1, 2])"),
        ("focal", {"class_counts": [4, 0, 2], "alpha": "inverse"}, "class_counts[1] is 0"),
    ],
)
def test_build_errors_name_the_culprit(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_classification_loss(name, num_classes=3, **kwargs)
