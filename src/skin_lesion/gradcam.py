"""Grad-CAM heatmaps for the classifier (Selvaraju et al. 2017), computed with captum.

Grad-CAM weights each channel of a convolutional layer's output by the spatial mean of the
class score's gradient (Eq. 1 of Selvaraju et al. 2017), sums the weighted channels and
keeps the positive part (Eq. 2). The default layer is the one whose output is the encoder's
final feature map, the map its global pooling averages (timm's ``forward_features``): the
most semantic features at the finest resolution still available, after the last
normalisation and activation. In a timm EfficientNet that is ``bn2`` (BatchNorm and SiLU after
``conv_head``), in a ResNet ``layer4``; the last convolution itself (``conv_head``) would
give maps of the features before their BatchNorm and activation, which differ per image by
more than a scale.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

logger = logging.getLogger(__name__)

OVERLAY_ALPHA = 0.45
OVERLAY_COLORMAP = "jet"
UINT8_MAX = 255.0
# Below this range a map counts as constant: min-max normalisation would divide by ~0.
FLAT_RANGE = 1e-12


def last_conv_layer(encoder: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` of ``encoder`` in registration order.

    For timm EfficientNets this is ``conv_head``; registration order follows the forward
    pass for the sequential CNNs used here.

    Args:
        encoder: The image encoder (or any module).

    Returns:
        The convolution module.

    Raises:
        ValueError: If the encoder has no ``nn.Conv2d``.
    """
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"{type(encoder).__name__} has no nn.Conv2d layer for Grad-CAM: pass layer= explicitly"
        )
    return convs[-1]


# Encoder -> its feature-map module, found once per encoder (a forward pass of one image).
_FEATURE_MAP_LAYERS: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def feature_map_layer(encoder: nn.Module, sample: torch.Tensor) -> nn.Module:
    """The module whose output is ``encoder``'s final feature map, before global pooling.

    For a timm model, the last module in the forward pass whose output is the very tensor
    ``encoder.forward_features`` returns (``bn2`` in an EfficientNet, ``layer4`` in a ResNet,
    ``norm_pre`` in a ConvNeXt); found by running ``forward_features`` on ``sample`` with
    forward hooks, without gradients, in the encoder's current mode (call it in eval mode, so
    no BatchNorm statistic moves). A module without ``forward_features`` gets its last
    ``nn.Conv2d`` (:func:`last_conv_layer`).

    Args:
        encoder: The image encoder.
        sample: A batch of normalised images ``(B, 3, H, W)`` on the encoder's device (one
            image is enough).

    Returns:
        The module.

    Raises:
        ValueError: If the features are not a ``(B, C, H, W)`` map (a vision transformer's
            are tokens, a Swin's channels-last: Grad-CAM needs a convolutional feature map).
    """
    cached = _FEATURE_MAP_LAYERS.get(encoder)
    if cached is not None:
        return cached
    forward_features = getattr(encoder, "forward_features", None)
    if forward_features is None:
        return last_conv_layer(encoder)
    fired: list[tuple[nn.Module, object]] = []
    handles = [
        module.register_forward_hook(lambda module, _args, out: fired.append((module, out)))
        for module in encoder.modules()
        if module is not encoder
    ]
    try:
        with torch.no_grad():
            features = forward_features(sample)
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise ValueError(
            f"{type(encoder).__name__}'s features are {shape}, not a (B, C, H, W) feature "
            "map: Grad-CAM needs a convolutional encoder (pass layer= to choose a module, or "
            "set reporting.gradcam_per_class: 0 and inference.gradcam: false)"
        )
    channels = getattr(encoder, "num_features", None)
    if isinstance(channels, int) and features.shape[1] != channels:
        raise ValueError(
            f"{type(encoder).__name__}'s features are {tuple(features.shape)} with its "
            f"{channels} channels last (as a Swin transformer's), not a (B, C, H, W) feature "
            "map: Grad-CAM would weigh rows as channels (pass layer= to choose a module, or "
            "set reporting.gradcam_per_class: 0 and inference.gradcam: false)"
        )
    found = next((module for module, out in reversed(fired) if out is features), None)
    if found is None:
        # forward_features ended in a function, not a module: the last module of that shape.
        found = next(
            (
                module
                for module, out in reversed(fired)
                if isinstance(out, torch.Tensor) and out.shape == features.shape
            ),
            None,
        )
    if found is None:
        found = last_conv_layer(encoder)
    _FEATURE_MAP_LAYERS[encoder] = found
    return found


def resolve_layer(
    model: nn.Module, layer: nn.Module | str | None, sample: torch.Tensor | None = None
) -> nn.Module:
    """The module Grad-CAM attributes to.

    Args:
        model: The classifier.
        layer: A module of ``model``; a dotted name relative to ``model`` (such as
            ``"encoder.conv_head"``); or ``None`` for the module whose output is the final
            feature map of ``model.encoder`` (of ``model`` itself when it has no
            ``encoder``; :func:`feature_map_layer`), which needs ``sample``.
        sample: Images to find the feature-map module with (``layer=None`` only).

    Returns:
        The module.

    Raises:
        ValueError: If ``layer`` names no module of ``model``, or ``layer`` is None and the
            encoder has no convolutional feature map.
    """
    if isinstance(layer, nn.Module):
        return layer
    if layer is None:
        encoder = getattr(model, "encoder", model)
        if sample is None:
            return last_conv_layer(encoder)
        return feature_map_layer(encoder, sample)
    try:
        return model.get_submodule(layer)
    except AttributeError as err:
        raise ValueError(
            f"{type(model).__name__} has no module named {layer!r} for Grad-CAM"
        ) from err


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of ``(B, H, W)`` to ``[0, 1]``.

    A constant map has no spatial contrast to normalise: an all-zero map stays zero and a
    constant positive map (uniform evidence, e.g. a 1x1 feature map) becomes all ones.
    """
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    high = flat.max(dim=1).values[:, None, None]
    span = high - low
    flat_map = span <= FLAT_RANGE
    scaled = (maps - low) / torch.where(flat_map, torch.ones_like(span), span)
    constant = (high > FLAT_RANGE).to(maps.dtype).expand_as(maps)
    return torch.where(flat_map, constant, scaled)


def gradcam_heatmaps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int],
    *,
    meta: torch.Tensor | None = None,
    layer: nn.Module | str | None = None,
) -> np.ndarray:
    """Grad-CAM heatmap of each image for its target class, at the input's resolution.

    The model is evaluated in eval mode (its previous mode is restored afterwards).
    Gradients are taken with ``torch.autograd.grad`` with respect to the layer's output
    only, so no parameter ``.grad`` is written.

    Args:
        model: The classifier, called as ``model(images, meta)`` (or ``model(images)``).
        images: Normalised float images ``(B, 3, H, W)`` on the model's device.
        targets: Class index per image (``B`` of them), or one index for all.
        meta: Metadata features ``(B, F)`` for a classifier that fuses them.
        layer: The module to attribute to (see ``resolve_layer``); default the one whose
            output is the final feature map of ``model.encoder``.

    Returns:
        ``float32`` array ``(B, H, W)`` in ``[0, 1]``: the ReLU'd class activation map,
        upsampled bilinearly and min-max normalised per image.

    Raises:
        ValueError: If ``images`` is not a 4-D batch or ``targets`` does not match it, or
            the encoder has no convolutional feature map (``layer=None``).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    batch = images.shape[0]
    target = torch.as_tensor(targets, dtype=torch.long, device=images.device).reshape(-1)
    if target.numel() == 1:
        target = target.expand(batch)
    if target.numel() != batch:
        raise ValueError(f"expected 1 or {batch} targets for {batch} images, got {target.numel()}")
    was_training = model.training
    model.eval()
    try:
        conv = resolve_layer(model, layer, images[:1].detach())
        cam = LayerGradCam(model, conv).attribute(
            images.detach(),
            target=target,
            additional_forward_args=None if meta is None else (meta,),
            relu_attributions=True,
        )
    finally:
        model.train(was_training)
    with torch.no_grad():
        cam = LayerAttribution.interpolate(
            cam.detach().float(), tuple(images.shape[-2:]), interpolate_mode="bilinear"
        )
        maps = normalise_maps(F.relu(cam[:, 0]))
    return maps.cpu().numpy().astype(np.float32)


def resize_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``(h, w)`` map to ``size`` = ``(H, W)``."""
    tensor = torch.from_numpy(np.ascontiguousarray(heatmap, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Blend a heatmap, coloured with the jet colormap, over an RGB image.

    Args:
        image: ``uint8`` RGB image ``(H, W, 3)``.
        heatmap: Map ``(h, w)`` with values in ``[0, 1]`` (clipped; NaN counts as 0);
            resized bilinearly to ``(H, W)`` when the sizes differ.
        alpha: Weight of the heatmap's colour (0 keeps the image, 1 shows only the map).

    Returns:
        ``uint8`` RGB array of the image's shape.

    Raises:
        ValueError: If the image is not ``(H, W, 3)``, the heatmap not 2-D or ``alpha``
            outside ``[0, 1]``.
    """
    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got shape {image.shape}")
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {heatmap.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if heatmap.shape != image.shape[:2]:
        heatmap = resize_heatmap(heatmap, image.shape[:2])
    heatmap = np.clip(np.nan_to_num(heatmap, nan=0.0), 0.0, 1.0)
    colour = matplotlib.colormaps[OVERLAY_COLORMAP](heatmap)[..., :3] * UINT8_MAX
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(np.rint(blended), 0, UINT8_MAX).astype(np.uint8)
