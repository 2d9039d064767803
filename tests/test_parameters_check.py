"""Bad parameters fail when the context is created, before any work.

A mistyped top-level ``--params`` name would otherwise be ignored by Kedro, and a mistyped key
inside a group (a runtime one or one in ``conf/local``) would surface only when its node runs.
"""

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from skin_lesion.config import ConfigError
from skin_lesion.parameters_check import (
    ParametersCheck,
    check_environment,
    check_params_given_once,
    check_runtime_params,
    resolver_names,
    unknown_runtime_params,
)
from tests.conftest import PROJECT_ROOT, run_kedro


def test_unknown_names_are_those_neither_defined_nor_read_by_the_config():
    defined = ["seed", "classifier_training"]
    resolved = ["raw_dir", "inference.input_dir"]
    runtime = ["seed", "classifier_training", "raw_dir", "inference", "seeed", "raw-dir"]
    assert unknown_runtime_params(runtime, defined, resolved) == ["raw-dir", "seeed"]
    assert unknown_runtime_params(["seed", "raw_dir"], defined, resolved) == []
    # KedroSession.create keeps a dotted key as one literal name, which nothing reads.
    dotted = ["classifier_training.resume", "seeed.x"]
    assert unknown_runtime_params(dotted, defined, resolved) == dotted


def test_a_dotted_key_in_python_is_refused_with_the_nested_form():
    with pytest.raises(ConfigError) as error:
        check_runtime_params({"classifier_training.resume": True}, ["classifier_training"], [])
    assert (
        "'classifier_training.resume' (a dotted key is split only on the command line; in "
        "Python pass runtime_params={'classifier_training': {'resume': ...}})"
    ) in str(error.value)


def test_the_error_names_each_unknown_key_and_the_likely_intended_one():
    with pytest.raises(ConfigError) as error:
        check_runtime_params(
            {"seeed": 1, "raw-dir": "/x", "zzz": 0, "seed": 2}, ["seed", "device"], ["raw_dir"]
        )
    # Each unknown key once, sorted, with a guess where one is close; 'seed' is valid.
    assert str(error.value).startswith(
        "unknown runtime parameter(s) (--params, or a session's runtime_params): "
        "'raw-dir' (did you mean 'raw_dir'?), "
        "'seeed' (did you mean 'seed'?), 'zzz'. "
    )
    check_runtime_params({"seed": 2, "raw_dir": "/x"}, ["seed"], ["raw_dir"])  # no error


def test_resolver_names_are_read_from_every_config_file(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "catalog.yml").write_text(
        "a:\n  path: ${runtime_params:raw_dir,${globals:raw_dir}}\n"
        "b:\n  path: ${ runtime_params: inference.input_dir, x}\n"
    )
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "catalog.yaml").write_text("c:\n  path: ${runtime_params:other}\n")
    (tmp_path / "local" / "more.yml").write_text("# d:\n#   path: ${runtime_params:commented}\n")
    (tmp_path / "notes.txt").write_text("${runtime_params:not_config}")
    assert resolver_names(tmp_path) == {"raw_dir", "inference.input_dir", "other"}
    # Only the run's environments count: a name read in conf/local is not read under base.
    assert resolver_names(tmp_path, ["base"]) == {"raw_dir", "inference.input_dir"}


def test_the_project_config_reads_raw_dir_at_run_time():
    # The documented `kedro run --params raw_dir=...` must stay allowed.
    assert "raw_dir" in resolver_names(PROJECT_ROOT / "conf")


def test_a_kedro_run_with_a_mistyped_name_fails_before_any_work(kedro_project: Path):
    with pytest.raises(ConfigError, match=r"'seeed' \(did you mean 'seed'\?\)"):
        run_kedro(kedro_project, "data_processing", seeed=1)
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_valid_runtime_names_load_the_context(kedro_project: Path):
    bootstrap_project(kedro_project)
    runtime = {
        "seed": 3,
        "raw_dir": str(kedro_project / "data" / "test" / "01_raw" / "HAM10000"),
        "inference": {"input_dir": "/somewhere"},
        "classifier_training": {"batch_size": 8},
    }
    with KedroSession.create(
        project_path=kedro_project, env="test", runtime_params=runtime
    ) as session:
        context = session.load_context()
        assert context.params["seed"] == 3
        assert context.config_loader["catalog"]["raw_images"]["path"] == runtime["raw_dir"]


def test_a_mistyped_key_inside_a_group_fails_before_training(kedro_project: Path):
    # reporting runs last: without the check this typo surfaced after the training.
    with pytest.raises(ConfigError, match=r"reporting: unknown key\(s\) \['gradcam_sampels'\]"):
        run_kedro(kedro_project, reporting={"gradcam_sampels": 4})
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_a_bad_key_in_an_environment_file_fails_before_any_work(kedro_project: Path):
    test_env = kedro_project / "conf" / "test" / "parameters_reporting.yml"
    test_env.write_text(test_env.read_text() + "\n  not_a_key: 1\n")
    with pytest.raises(ConfigError, match=r"reporting: unknown key\(s\) \['not_a_key'\]"):
        run_kedro(kedro_project, "data_processing")
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_a_folder_to_classify_set_in_a_file_is_refused_for_the_command_line(kedro_project: Path):
    from skin_lesion.parameters_check import check_runtime_only, runtime_only_problems

    # The catalog reads it through ${runtime_params:...} only: set in a file, inference
    # classified data/01_raw/inference and MLflow logged the file's folder.
    mine = kedro_project / "conf" / "test" / "parameters_inference.yml"
    mine.write_text("inference:\n  input_dir: /scans/today\n")
    expected = r"inference.input_dir is '/scans/today' in a parameter file.*--params inference"
    with pytest.raises(ConfigError, match=expected):
        run_kedro(kedro_project, "inference")  # before the missing classifier is named
    # A run that does not classify, a notebook, kedro-viz: a warning only (logged when the
    # context is created, the problems as runtime_only_problems words them).
    run_kedro(kedro_project, "data_processing")
    assert (kedro_project / "data" / "test" / "05_model_input" / "splits.parquet").is_file()
    (problem,) = runtime_only_problems({"inference": {"input_dir": "/scans/today"}}, {})
    assert re.search(expected, problem)
    # Given at run time too (nested, as the command line splits it, or dotted): it is used.
    images = {"inference_images", "inference_metadata"}
    given = {"inference": {"input_dir": "/a"}}
    check_runtime_only({"inference": {"input_dir": "/a"}}, given, images)
    check_runtime_only(
        {"inference": {"metadata": "m.csv"}}, {"inference.metadata": "m.csv"}, images
    )
    check_runtime_only({"inference": {"input_dir": None, "metadata": None}}, {}, images)
    with pytest.raises(ConfigError, match=r"inference.metadata is 'm.csv'"):
        check_runtime_only({"inference": {"metadata": "m.csv"}}, {"seed": 1}, images)
    check_runtime_only({"inference": {"metadata": "m.csv"}}, {}, {"inference_images"})


def test_the_check_runs_before_tracking_starts(kedro_project: Path):
    # Hooks run last-registered first, and kedro-mlflow registers after the project's: the
    # check must ask to go first, or a refused run would still set up an MLflow store.
    db = kedro_project / "mlflow.db"
    mlflow_yml = kedro_project / "conf" / "test" / "mlflow.yml"
    config = yaml.safe_load(mlflow_yml.read_text())
    config["server"]["mlflow_tracking_uri"] = f"sqlite:///{db.as_posix()}"
    mlflow_yml.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="seeed"):
        run_kedro(kedro_project, "data_processing", seeed=1)
    assert not db.exists()


def test_a_packaged_conf_source_skips_the_name_check_with_a_warning(tmp_path, caplog):
    # `kedro run --conf-source conf.tar.gz`: the files are not at hand to scan for
    # runtime_params reads, so refusing `raw_dir` would be wrong.
    loader = SimpleNamespace(conf_source=str(tmp_path / "conf.tar.gz"))
    with caplog.at_level(logging.WARNING):
        ParametersCheck._check_runtime_names(loader, {"raw_dir": "/x", "seeed": 1})
    assert "not checked" in caplog.text and "conf.tar.gz" in caplog.text


def test_a_mistyped_environment_is_named_before_tracking_fails_on_it(kedro_project: Path):
    bootstrap_project(kedro_project)
    with (
        KedroSession.create(project_path=kedro_project, env="tset") as session,
        pytest.raises(ConfigError, match=r"environment 'tset' not found.*'test'\?"),
    ):
        session.run(pipeline_names=["data_processing"])
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_check_environment_accepts_existing_folders_and_packaged_sources(tmp_path: Path):
    (tmp_path / "base").mkdir()
    (tmp_path / "cpu_quick").mkdir()
    check_environment(tmp_path, "cpu_quick")
    check_environment(tmp_path, None)  # Kedro's default run environment
    check_environment(tmp_path / "conf.tar.gz", "anything")  # not a folder: not checked
    with pytest.raises(ConfigError, match=r"'gpu' not found.*environments: \['base', 'cpu_"):
        check_environment(tmp_path, "gpu")


def test_a_scoring_run_refuses_a_classifier_of_other_settings_before_any_node():
    from kedro.io import DataCatalog, MemoryDataset

    from skin_lesion.lineage import StaleInputError
    from skin_lesion.parameters_check import check_classifier_current
    from skin_lesion.pipelines import classifier_training, inference, reporting

    def catalog(classifier, seed: int = 7) -> DataCatalog:
        return DataCatalog(
            {"classifier": MemoryDataset(classifier), "params:seed": MemoryDataset(seed)}
        )

    trained = {"params": {"seed": 42}}
    scoring = reporting.create_pipeline()
    with pytest.raises(StaleInputError, match=r"seed=42, but the parameters now say seed=7"):
        check_classifier_current(scoring, catalog(trained))
    # Only the reporting nodes read it with its settings: a single figure of them is enough.
    gradcam = scoring.only_nodes("plot_gradcam_examples")
    with pytest.raises(StaleInputError, match=r"seed=42"):
        check_classifier_current(gradcam, catalog(trained))
    check_classifier_current(scoring, catalog(trained, seed=42))
    # The report alone lists the parameters beside the classifier's metrics: checked too
    # (it passed until 2026-12-07, reading no classifier).
    with pytest.raises(StaleInputError, match=r"seed=42"):
        check_classifier_current(scoring.only_nodes("build_report"), catalog(trained))
    # A run that trains the classifier first, one that only uses it (inference) and one with
    # none saved yet (it fails at `classifier`, naming it) pass.
    check_classifier_current(classifier_training.create_pipeline() + scoring, catalog(trained))
    check_classifier_current(inference.create_pipeline(), catalog(trained))
    check_classifier_current(scoring, DataCatalog({"classifier": MemoryDataset()}))


def test_an_unknown_encoder_is_named_before_any_work(kedro_project: Path):
    with pytest.raises(ConfigError, match=r"encoder.name: 'efficientnet_b9' is not a timm model"):
        run_kedro(kedro_project, "data_processing", encoder={"name": "efficientnet_b9"})
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_a_mistyped_encoder_with_offline_weights_is_named_as_a_mistyped_encoder():
    """The demo and cpu_quick environments' ``imagenet-offline`` are tf_efficientnet_lite0's:
    with the timm check moved to the run's start, the context's weights check named a
    mistyped ``encoder.name`` as the wrong encoder for those weights, not as a typo."""
    from skin_lesion.parameters_check import check_node_configs

    offline = {"weights": "imagenet-offline"}
    with pytest.raises(ConfigError, match=r"'tf_efficientnet_lite00' is not a timm model"):
        check_node_configs({"encoder": {**offline, "name": "tf_efficientnet_lite00"}})
    with pytest.raises(ConfigError, match=r"'efficientnet_b9' is not a timm model"):
        check_node_configs({"encoder": {"name": "efficientnet_b9", "weights": "imagenet_offln"}})
    # unfreeze_stages as before the move: checked with the name, ahead of the weights.
    with pytest.raises(ConfigError, match=r"finetune.unfreeze_stages: 99, but .* stage\(s\)"):
        check_node_configs(
            {
                "encoder": {**offline, "name": "resnet18"},
                "classifier_training": {"finetune": {"unfreeze_stages": 99}},
            }
        )
    # A real encoder other than lite0: the weights are the mistake.
    with pytest.raises(ConfigError, match=r"ImageNet weights of tf_efficientnet_lite0, not of"):
        check_node_configs({"encoder": {**offline, "name": "resnet18"}})
    check_node_configs({"encoder": {**offline, "name": "tf_efficientnet_lite0"}})


def test_unfreeze_stages_beyond_the_encoder_is_named_before_any_work(kedro_project: Path):
    # Found otherwise when fine-tuning starts: after data_processing, SupCon and the warm-up.
    with pytest.raises(ConfigError, match=r"finetune.unfreeze_stages: 99, but .* stage\(s\)"):
        run_kedro(kedro_project, classifier_training={"finetune": {"unfreeze_stages": 99}})
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_a_vit_at_other_crops_or_with_grad_cam_is_refused_before_any_work(kedro_project: Path):
    vit = {"name": "vit_tiny_patch16_224"}
    with pytest.raises(ConfigError, match=r"'vit_tiny_patch16_224' takes 224x224 images only"):
        run_kedro(kedro_project, encoder=vit)
    at_224 = {"augment": {"crop_size": 224}}
    with pytest.raises(ConfigError, match=r"which need one: set reporting.gradcam_per_class: 0,"):
        run_kedro(
            kedro_project, encoder=vit, contrastive_pretraining=at_224, classifier_training=at_224
        )
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


def test_a_hub_encoder_name_is_left_to_the_hub():
    from skin_lesion.parameters_check import check_encoder

    check_encoder("hf-hub:timm/resnet18.a1_in1k")  # timm.is_model does not know hub names
    with pytest.raises(ConfigError, match="not a timm model"):
        check_encoder("resnet18_typo")


def test_an_encoder_of_one_input_size_needs_every_crop_at_that_size():
    """A ViT failed at SupCon's first batch ("Input height (32) doesn't match model (224)")."""
    from skin_lesion.parameters_check import check_fixed_input_size

    crops = {"contrastive_pretraining.augment.crop_size": 224}
    check_fixed_input_size("vit_tiny_patch16_224", crops)
    check_fixed_input_size("efficientnet_b0", {"a.crop_size": 128})  # any size
    check_fixed_input_size("hf-hub:timm/vit_tiny_patch16_224.augreg_in21k", {"a": 32})  # hub's
    crops["classifier_training.augment.crop_size"] = 128
    with pytest.raises(ConfigError) as refused:
        check_fixed_input_size("vit_tiny_patch16_224", crops)
    assert str(refused.value) == (
        "encoder.name: 'vit_tiny_patch16_224' takes 224x224 images only (timm's fixed input "
        "size), but classifier_training.augment.crop_size is 128; set "
        "classifier_training.augment.crop_size to 224 (`--params "
        "classifier_training.augment.crop_size=224`)"
    )


def _identity(x):
    return x


def test_grad_cam_on_an_encoder_without_a_feature_map_is_refused_before_the_run():
    """Found otherwise by plot_gradcam_examples, after SupCon and the classifier's training."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Node, Pipeline

    from skin_lesion.parameters_check import check_gradcam_encoder

    def catalog(name: str, per_class: int, gradcam: bool) -> DataCatalog:
        return DataCatalog(
            {
                "params:encoder": MemoryDataset({"name": name}),
                "params:reporting": MemoryDataset({"gradcam_per_class": per_class}),
                "params:inference": MemoryDataset({"gradcam": gradcam}),
            }
        )

    def pipeline(*names: str) -> Pipeline:
        return Pipeline([Node(_identity, "x", f"{name}_out", name=name) for name in names])

    both = pipeline("plot_gradcam_examples", "classify_images")
    with pytest.raises(ConfigError) as refused:
        check_gradcam_encoder(both, catalog("vit_tiny_patch16_224", 1, True))
    assert "gives features of shape (1, 197, 192), not a (B, C, H, W) feature map" in str(
        refused.value
    )
    assert "set inference.gradcam: false and reporting.gradcam_per_class: 0," in str(refused.value)
    with pytest.raises(ConfigError, match=r"\(1, 7, 7, 768\).*set inference.gradcam: false,"):
        check_gradcam_encoder(both, catalog("swin_tiny_patch4_window7_224", 0, True))
    check_gradcam_encoder(both, catalog("vit_tiny_patch16_224", 0, False))  # none asked for
    check_gradcam_encoder(pipeline("train_classifier"), catalog("vit_tiny_patch16_224", 1, True))
    check_gradcam_encoder(both, catalog("coatnet_0_rw_224", 1, True))  # a (B, C, H, W) map
    check_gradcam_encoder(both, catalog("efficientnet_b0", 1, True))


def test_encoder_weights_are_a_keyword_or_a_file_that_exists(tmp_path: Path) -> None:
    """A typo (imagenet_offline) was read as a path, "not found" inside the node."""
    from skin_lesion.parameters_check import check_encoder_weights

    for weights in ("none", "timm"):
        check_encoder_weights("resnet18", weights)
    check_encoder_weights("tf_efficientnet_lite0", "imagenet-offline")
    state = tmp_path / "w.pth"
    state.write_bytes(b"x")  # read (and judged) when the encoder is built
    check_encoder_weights("resnet18", str(state))
    with pytest.raises(ConfigError, match=r"'imagenet_offline' is neither.*'imagenet-offline'\?"):
        check_encoder_weights("tf_efficientnet_lite0", "imagenet_offline")
    # A path that is not there is refused only for a run that builds the encoder (a
    # notebook, or a run that only reads the pretrained encoder, never opens it).
    check_encoder_weights("resnet18", "/nowhere/w.pth")
    with pytest.raises(ConfigError, match=r"encoder.weights: '/nowhere/w.pth' is neither"):
        check_encoder_weights("resnet18", "/nowhere/w.pth", file_needed=True)
    with pytest.raises(ConfigError, match=r"ImageNet weights of tf_efficientnet_lite0, not of"):
        check_encoder_weights("resnet18", "imagenet-offline")


def _raw_catalog(tmp_path: Path, record: dict | None, *, raw: bool = True):
    from kedro.io import DataCatalog, MemoryDataset

    from skin_lesion.datasets import ImageFolderDataset, RawMetadataDataset

    folder = tmp_path / "HAM10000"
    if raw:
        folder.mkdir(exist_ok=True)
        (folder / "ISIC_1.jpg").write_bytes(b"12345")
        (folder / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\nHAM_1,ISIC_1,nv\n")
    return DataCatalog(
        {
            "raw_images": ImageFolderDataset(path=str(folder)),
            "raw_metadata": RawMetadataDataset(filepath=str(folder / "HAM10000_metadata.csv")),
            "raw_data_record": MemoryDataset() if record is None else MemoryDataset(record),
        }
    )


def test_a_run_on_processed_data_refuses_raw_data_changed_since(tmp_path: Path, caplog):
    from skin_lesion.lineage import StaleInputError, raw_data_record
    from skin_lesion.parameters_check import check_raw_data_current
    from skin_lesion.pipelines import classifier_training, data_processing, inference, reporting

    catalog = _raw_catalog(tmp_path, {})
    record = raw_data_record(catalog.load("raw_images"), catalog.load("raw_metadata"))
    catalog = _raw_catalog(tmp_path, record)
    training = classifier_training.create_pipeline()
    check_raw_data_current(training, catalog, "demo")  # unchanged
    (tmp_path / "HAM10000" / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx\nHAM_1,ISIC_1,mel\n"
    )
    (tmp_path / "HAM10000" / "ISIC_1.jpg").write_bytes(b"123456")
    (tmp_path / "HAM10000" / "ISIC_2.jpg").write_bytes(b"new, used by no row: not recorded")
    expected = (
        r"HAM10000 changed since data_processing read them: HAM10000_metadata.csv, the rows "
        r"of image_id: 1 changed \(ISIC_1\); and image files: 1 changed size \(ISIC_1.jpg\)\. "
        r".*Rerun data_processing \(`kedro run --env demo --pipelines data_processing`"
    )
    for pipeline in (
        training,
        reporting.create_pipeline(),
        data_processing.create_pipeline().only_nodes("split_by_lesion"),
    ):
        with pytest.raises(StaleInputError, match=expected):
            check_raw_data_current(pipeline, catalog, "demo")
    # Runs that make the record again, or read nothing data_processing makes, pass.
    check_raw_data_current(data_processing.create_pipeline() + training, catalog, "demo")
    check_raw_data_current(inference.create_pipeline(), catalog, "demo")
    # A project processed before the record existed, and one whose raw data are elsewhere.
    check_raw_data_current(training, _raw_catalog(tmp_path, None), "demo")
    check_raw_data_current(training, _raw_catalog(tmp_path, "not a record"), "demo")
    other = tmp_path / "elsewhere"
    other.mkdir()
    with caplog.at_level(logging.INFO, logger="skin_lesion.parameters_check"):
        # raw_dir left out of this run (it names no data), the folder data_processing read
        # still there: that folder is checked, and the commands given name it.
        folder = str(tmp_path / "HAM10000")
        (tmp_path / "HAM10000" / "HAM10000_metadata.csv").write_text(
            "lesion_id,image_id,dx\nHAM_1,ISIC_1,mel\n"
        )
        rerun = rf"`kedro run --params raw_dir={re.escape(folder)} --pipelines data_processing`"
        with pytest.raises(StaleInputError, match=rf"1 changed \(ISIC_1\).*{rerun}"):
            check_raw_data_current(training, _raw_catalog(other, record, raw=False), None)
        assert f"checking those data_processing read, in {folder}" in caplog.text
        # Gone too (processed data copied to a training machine): not checked, and said so.
        caplog.clear()
        moved = record | {"folder": str(tmp_path / "gone")}
        check_raw_data_current(training, _raw_catalog(other, moved, raw=False), None)
        assert "are not at hand: the outputs of data_processing are not checked" in caplog.text
        # raw_dir given to this run: the commands given name it too.
        with pytest.raises(StaleInputError, match=r"--params raw_dir=/x/y --pipelines data"):
            check_raw_data_current(training, catalog, None, {"raw_dir": "/x/y"})
        (tmp_path / "HAM10000" / "HAM10000_metadata.csv").write_text(
            "lesion_id,image_id,dx\nHAM_1,ISIC_1,nv\n"
        )
        caplog.clear()
        check_raw_data_current(training, _raw_catalog(tmp_path, None), None)
        assert "No raw_data_record (data processed before it was recorded" in caplog.text
        # The images gone (or elsewhere), the edited metadata still there: it is compared.
        caplog.clear()
        (tmp_path / "HAM10000" / "ISIC_1.jpg").unlink()
        (tmp_path / "HAM10000" / "HAM10000_metadata.csv").write_text(
            "lesion_id,image_id,dx\nHAM_1,ISIC_1,mel\n"
        )
        with pytest.raises(StaleInputError, match=r"1 changed \(ISIC_1\)\. The image cache"):
            check_raw_data_current(training, catalog, None)
        assert "None of the image files data_processing used is in" in caplog.text
    # Raw data that no longer read: refused, the reader's own error named.
    (tmp_path / "HAM10000" / "HAM10000_metadata.csv").write_text("lesion_id,image_id\nH,I,x\n")
    with pytest.raises(StaleInputError, match=r"no longer read as data_processing read them \("):
        check_raw_data_current(training, catalog, None)


@pytest.mark.slow
def test_an_edited_metadata_file_stops_training_on_the_old_cache(kedro_project: Path):
    from skin_lesion.lineage import StaleInputError

    run_kedro(kedro_project, "data_processing")
    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    metadata = raw / "HAM10000_metadata.csv"
    lines = metadata.read_text().splitlines(keepends=True)
    metadata.write_text("".join(lines[:1] + lines[2:]))  # the first row removed
    removed = lines[1].split(",")[1]
    stale = rf"1 removed \({removed}\).*`kedro run --env test --pipelines data_processing`"
    with pytest.raises(StaleInputError, match=stale):
        run_kedro(kedro_project, "contrastive_pretraining")
    assert not (kedro_project / "data" / "test" / "06_models" / "pretrained_encoder.pt").exists()
    # Kedro trims --only-missing-outputs runs inside the runner: checked all the same.
    with pytest.raises(StaleInputError, match=stale):
        run_kedro(kedro_project, only_missing_outputs=True)
    # A slice that leaves validation out (it would make splits from the old validated rows,
    # and record what validation read then) is checked against what validation read.
    with pytest.raises(StaleInputError, match=stale):
        run_kedro(kedro_project, "data_processing", from_nodes=["split_by_lesion"])
    with pytest.raises(StaleInputError, match=stale):
        run_kedro(kedro_project, from_nodes=["split_by_lesion"])
    # A run of data_processing that fails after reading the new data keeps the old record
    # (and with it the refusal): an image that no longer decodes stops it at decode_images.
    broken = next(raw.rglob(f"{lines[2].split(',')[1]}.jpg"))
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(Exception, match=r"images are invalid"):
        run_kedro(kedro_project, "data_processing")
    with pytest.raises(StaleInputError, match=stale):
        run_kedro(kedro_project, "contrastive_pretraining")
    # Continuing after that validation, without decoding again, would pair its rows with the
    # old cache: refused before any node (training included) runs.
    with pytest.raises(StaleInputError, match=r"different runs.*holds images `validated_meta"):
        run_kedro(kedro_project, from_nodes=["split_by_lesion"])
    assert not (kedro_project / "data" / "test" / "06_models" / "pretrained_encoder.pt").exists()


@pytest.mark.slow
def test_other_metadata_limits_stop_a_run_on_data_validated_with_the_old_ones(kedro_project: Path):
    """The classifier recorded the current limits, not those data_processing applied, and
    inference then refused the classifier's own training images as out of range."""
    from skin_lesion.lineage import StaleInputError

    run_kedro(kedro_project, "data_processing")
    limits = {"metadata": {"max_age": 100}}
    with pytest.raises(
        StaleInputError,
        match=r"metadata.max_age=120.0 then, 100.0 now\). Rerun `kedro run --env test`",
    ):
        run_kedro(kedro_project, "contrastive_pretraining", data_processing=limits)
    assert not (kedro_project / "data" / "test" / "06_models" / "pretrained_encoder.pt").exists()
    # Validating again with them is what the refusal advises: then the limits agree.
    run_kedro(kedro_project, "data_processing", data_processing=limits)
    record = json.loads(
        (kedro_project / "data" / "test" / "05_model_input" / "raw_data_record.json").read_text()
    )
    assert record["metadata_validation"]["max_age"] == 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_this_machine_lacks_is_refused_before_any_model_node(kedro_project):
    from tests.conftest import run_kedro

    # data_processing runs no model: it runs (the device only warned).
    run_kedro(kedro_project, "data_processing", device="cuda")
    with pytest.raises(ConfigError, match=r"device 'cuda' was requested but CUDA is not") as no:
        run_kedro(kedro_project, "contrastive_pretraining", device="cuda")
    assert "check_device_present" in {entry.name for entry in no.traceback}
    assert not (kedro_project / "data" / "test" / "06_models").exists()


def test_a_cuda_index_past_the_machine_s_gpus_is_named(monkeypatch):
    from skin_lesion import engine

    monkeypatch.setattr(engine.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(engine.torch.cuda, "device_count", lambda: 2)
    assert engine.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match=r"has 2 CUDA device\(s\): cuda:0 to cuda:1"):
        engine.resolve_device("cuda:3")


def test_only_nodes_that_run_a_model_have_their_device_checked(monkeypatch):
    """build_report takes params:device to name it in the report: a report-only run with
    device=cuda on a CPU machine is not refused for it; a gpu-tagged node's run is."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from skin_lesion import engine
    from skin_lesion.parameters_check import check_device_present

    monkeypatch.setattr(engine.torch.cuda, "is_available", lambda: False)
    catalog = DataCatalog({"params:device": MemoryDataset("cuda")})
    record = Pipeline([node(lambda d: d, "params:device", "report", name="build_report")])
    check_device_present(record, catalog)
    model = Pipeline([node(lambda d: d, "params:device", "preds", name="predict", tags="gpu")])
    with pytest.raises(ConfigError, match="CUDA is not available"):
        check_device_present(model, catalog)


@pytest.mark.parametrize("archive", ["gztar", "zip"])
def test_a_mistyped_env_is_named_for_a_packaged_conf(tmp_path, archive):
    """`python -m skin_lesion --conf-source=conf-skin_lesion.tar.gz --env demmo` (a packaged
    project) skipped the check and failed in kedro-mlflow's file store, naming neither."""
    import shutil

    from skin_lesion.config import ConfigError
    from skin_lesion.parameters_check import check_environment

    for env in ("base", "demo", "local"):
        (tmp_path / "conf" / env).mkdir(parents=True)
        (tmp_path / "conf" / env / "parameters.yml").write_text("seed: 1\n")
    source = shutil.make_archive(str(tmp_path / "conf-skin_lesion"), archive, tmp_path, "conf")
    check_environment(source, "demo")
    check_environment(source, None)
    with pytest.raises(ConfigError, match=r"environment 'demmo' not found.*did you mean 'demo'"):
        check_environment(source, "demmo")


def test_a_run_that_rebuilds_the_cache_refuses_predictions_made_from_the_old_one():
    """`--nodes decode_images,evaluate_test` after a test image was replaced: the pixel
    check compared the predictions with the cache on disk (the old one: they matched), or
    with none, and evaluate_test scored the replaced image's old prediction."""
    import pandas as pd
    from kedro.io import DataCatalog, MemoryDataset

    from skin_lesion.checkpoints import state_fingerprint
    from skin_lesion.lineage import StaleInputError
    from skin_lesion.parameters_check import check_classifier_current
    from skin_lesion.pipelines import data_processing, reporting

    classifier = {"params": {"seed": 7}, "state_dict": {}}
    made_by = state_fingerprint(classifier)
    frame = pd.DataFrame({"image_id": ["a"], "classifier_sha256": made_by, "tta": "none"})
    catalog = DataCatalog(
        {
            "classifier": MemoryDataset(classifier),
            "params:seed": MemoryDataset(7),
            "params:reporting": MemoryDataset({"tta": "none"}),
            "test_predictions": MemoryDataset(frame),
            "reporting_val_predictions": MemoryDataset(frame),
        }
    )
    rebuild = data_processing.create_pipeline().only_nodes("decode_images")
    scoring = reporting.create_pipeline().only_nodes("evaluate_test")
    with pytest.raises(StaleInputError, match=r"rebuilds the image cache but reads 'test_pred"):
        check_classifier_current(rebuild + scoring, catalog)
    # Predicting again in the same run is fine: it scores the rebuilt cache.
    check_classifier_current(
        rebuild + reporting.create_pipeline().only_nodes("predict_test", "predict_val"), catalog
    )


@pytest.mark.parametrize("archive", ["gztar", "zip"])
def test_runtime_names_are_checked_for_a_packaged_conf(tmp_path, archive):
    """`python -m skin_lesion --conf-source=conf-skin_lesion.tar.gz --params seeed=3` ran
    with the seed at its default: a packaged conf's names went unchecked (a warning only)."""
    import shutil

    from kedro.config import OmegaConfigLoader

    from skin_lesion.config import ConfigError
    from skin_lesion.parameters_check import ParametersCheck

    for env in ("base", "demo", "local"):
        (tmp_path / "conf" / env).mkdir(parents=True)
    (tmp_path / "conf" / "base" / "parameters.yml").write_text("seed: 1\n")
    (tmp_path / "conf" / "base" / "catalog.yml").write_text(
        "raw:\n  type: x\n  path: ${runtime_params:raw_dir,/data}\n"
    )
    (tmp_path / "conf" / "local" / "catalog.yml").write_text("c: ${runtime_params:other,1}\n")
    source = shutil.make_archive(str(tmp_path / "conf-skin_lesion"), archive, tmp_path, "conf")
    assert resolver_names(source, ["base"]) == resolver_names(tmp_path / "conf", ["base"])
    assert resolver_names(source) == {"raw_dir", "other"}
    loader = OmegaConfigLoader(conf_source=source, env="demo", base_env="base")
    ParametersCheck._check_runtime_names(loader, {"seed": 3, "raw_dir": "/x"})
    with pytest.raises(ConfigError, match=r"'seeed' \(did you mean 'seed'\?\)"):
        ParametersCheck._check_runtime_names(loader, {"seeed": 3})
    with pytest.raises(ConfigError, match=r"'other'"):  # read only in conf/local, not run
        ParametersCheck._check_runtime_names(loader, {"other": 3})


def test_the_resume_check_reads_the_parameters_without_a_loading_line(caplog):
    """It looks at ``resume`` before every run with a training node; through ``catalog.load``
    each run's log carried two extra "Loading data from params:..." lines."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from skin_lesion.parameters_check import check_resume_current

    catalog = DataCatalog(
        {
            "params:classifier_training": MemoryDataset({"resume": False}),
            "params:contrastive_pretraining": MemoryDataset({"resume": False}),
        }
    )
    pipeline = Pipeline(
        [
            node(lambda p: p, "params:contrastive_pretraining", "a", name="pretrain_encoder"),
            node(lambda p: p, "params:classifier_training", "b", name="train_classifier"),
        ]
    )
    with caplog.at_level(logging.DEBUG):
        check_resume_current(pipeline, catalog)
    assert not [r for r in caplog.records if "Loading data" in r.getMessage()]


@pytest.mark.parametrize(
    "argv",
    [
        ["/venv/bin/kedro", "run", "--params", "raw_dir=/data", "--params", "seed=7"],
        ["python -m kedro", "run", "--params=raw_dir=/data", "--params", "seed=7"],
        ["/venv/lib/skin_lesion/__main__.py", "--params", "raw_dir=/data", "--params=seed=7"],
    ],
)
def test_a_repeated_params_option_is_refused_naming_what_would_be_dropped(argv):
    """click keeps the last --params only: `--params raw_dir=X --params seed=7` ran on the
    default data folder with exit status 0."""
    with pytest.raises(ConfigError) as refused:
        check_params_given_once(argv)
    message = str(refused.value)
    assert "'raw_dir=/data' would be ignored" in message
    assert message.endswith("--params raw_dir=/data,seed=7")


@pytest.mark.parametrize(
    "argv",
    [
        ["/venv/bin/kedro", "run", "--params", "raw_dir=/data,seed=7"],
        ["/venv/bin/kedro", "run"],
        ["/venv/bin/kedro", "viz", "run", "--params", "a=1", "--params", "b=2"],
        ["/venv/bin/ipython", "--params", "a=1", "--params", "b=2"],
    ],
)
def test_one_params_option_or_another_program_passes(argv):
    check_params_given_once(argv)
