"""Every shipped configuration environment resolves, and its parameters build the nodes' configs.

The nodes turn ``params:<group>`` into frozen dataclasses that name an unknown or mistyped key,
but only when the node runs: a typo in ``conf/gpu_full`` would otherwise surface minutes into a
GPU run, and one in ``conf/cpu_quick`` a quarter of an hour into a CPU benchmark. Here each
environment is loaded the way ``kedro run --env <name>`` loads it (the project's config loader
and merge strategy) and every node's config is built from it, and its catalog is built too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DataCatalog

from skin_lesion import classification, settings
from skin_lesion.config import from_dict
from skin_lesion.engine import resolve_device
from skin_lesion.parameters_check import node_configs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = sorted(
    path.name
    for path in (PROJECT_ROOT / "conf").iterdir()
    if path.is_dir() and path.name not in {"base", "local"}
)
NODE_CONFIGS = node_configs()  # the groups the run's parameter check builds too


def load_config(env: str):
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(PROJECT_ROOT / "conf"), env=env, **settings.CONFIG_LOADER_ARGS
    )


def test_every_environment_is_covered() -> None:
    assert {"cpu_quick", "demo", "gpu_full", "test"} <= set(ENVIRONMENTS)


@pytest.mark.parametrize("env", ["local", *ENVIRONMENTS])
def test_environment_parameters_build_every_node_config(env: str) -> None:
    params = load_config(env)["parameters"]
    for group, config_class in NODE_CONFIGS.items():
        assert group in params, f"conf/{env}: no parameters for {group}"
        from_dict(config_class, params[group], group)
    resolve_device(params["device"])
    assert isinstance(params["seed"], int)
    assert params["classes"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


@pytest.mark.parametrize("env", ["local", *ENVIRONMENTS])
def test_environment_catalog_builds(env: str) -> None:
    catalog = DataCatalog.from_config(load_config(env)["catalog"])
    for name in ("raw_images", "image_cache", "splits", "classifier", "test_metrics"):
        assert name in catalog, f"conf/{env}: catalog has no {name}"
    # What `kedro catalog resolve-patterns` prints (each dataset's _init_config) builds the
    # catalog again: a dataset that inherits its __init__ recorded args/kwargs instead.
    names = list(catalog.keys())
    printed = {name: catalog.get(name)._init_config() for name in names}
    assert "args" not in printed["raw_metadata"], printed["raw_metadata"]
    again = DataCatalog.from_config(printed)
    assert {name: again.get(name)._init_config() for name in names} == printed


def test_a_mistyped_key_in_an_environment_is_named(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "typo").mkdir()
    for path in (PROJECT_ROOT / "conf" / "base").glob("*.yml"):
        (conf / "base" / path.name).write_text(path.read_text())
    (conf / "typo" / "parameters.yml").write_text("classifier_training:\n  warmup:\n    epoch: 2\n")
    params = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf), env="typo", **settings.CONFIG_LOADER_ARGS
    )["parameters"]
    with pytest.raises(
        ValueError, match=r"classifier_training\.warmup: unknown key\(s\) \['epoch'\]"
    ):
        from_dict(
            classification.ClassifierConfig, params["classifier_training"], "classifier_training"
        )


@pytest.mark.parametrize("name", ["metadata_rejections", "decode_rejections"])
def test_the_rejections_read_back_as_written(tmp_path: Path, name: str) -> None:
    # Files between nodes since ParallelRunner works; pandas would read an image_id "NA" as
    # missing and "007" as the number 7 (in a frame of numeric-looking ids).
    import pandas as pd

    config = dict(load_config("base")["catalog"][name], filepath=str(tmp_path / "r.csv"))
    dataset = DataCatalog.from_config({name: config}).get(name)
    frame = pd.DataFrame(
        {
            "image_id": ["NA", "007"],
            "file": ["a/NA.jpg", None],
            "stage": ["decode", "metadata"],
            "reason": ["truncated", "line 3: sex '?'"],
        }
    )
    dataset.save(frame)
    back = dataset.load()
    assert back["image_id"].tolist() == ["NA", "007"]
    assert back["file"].tolist() == ["a/NA.jpg", ""]  # written empty either way


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("val_predictions", "image_id"),
        ("reporting_val_predictions", "image_id"),
        ("test_predictions", "image_id"),
        ("isic_predictions", "image"),
    ],
)
def test_the_predictions_read_back_their_image_ids_as_written(
    tmp_path: Path, name: str, column: str
) -> None:
    # The metadata is read as text, so "000024306" is a valid image_id; pandas read it back as
    # the int 24306: plot_gradcam_examples failed (KeyError: 24306) and isic_predictions.csv,
    # made from the reloaded test_predictions, named the image 24306.
    import pandas as pd

    config = dict(load_config("base")["catalog"][name], filepath=str(tmp_path / "p.csv"))
    dataset = DataCatalog.from_config({name: config}).get(name)
    frame = pd.DataFrame({column: ["000024306", "NA", "007"], "p_mel": [0.25, 0.5, 1.0]})
    dataset.save(frame)
    back = dataset.load()
    assert back[column].tolist() == ["000024306", "NA", "007"]
    assert back["p_mel"].tolist() == [0.25, 0.5, 1.0]
