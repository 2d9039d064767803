"""MLflow tracking: what one tracked `kedro run` holds, and silence when tracking is off."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from kedro_mlflow.framework.hooks import mlflow_hook
from mlflow.tracking import MlflowClient

from skin_lesion.hooks import (
    MlflowOutputsHook,
    history_metrics,
    lineage_tags,
    name_slice,
    scalar_test_metrics,
    slice_description,
)
from skin_lesion.provenance import code_version, dataset_fingerprint
from tests.conftest import run_kedro

HISTORY = [
    {"phase": "warmup", "epoch": 0, "loss": 1.5, "lr": 0.001, "balanced_accuracy": 0.4},
    {"phase": "finetune", "epoch": 0, "loss": 1.0, "lr": 0.0005, "balanced_accuracy": 0.6},
    {"phase": "finetune", "epoch": 1, "loss": 0.8, "lr": 0.0001, "balanced_accuracy": None},
]


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made and nothing in it, made once per session:
    creating one runs MLflow's schema migrations (about 3 s); copies of it take milliseconds."""
    path = tmp_path_factory.mktemp("mlflow_store") / "mlflow.db"
    assert MlflowClient(f"sqlite:///{path.as_posix()}").search_experiments() is not None
    return path


@pytest.fixture
def tracked_project(kedro_project: Path, empty_store: Path):
    """The test project with tracking on, into ``mlflow.db`` inside it; its tracking URI."""
    shutil.copy(empty_store, kedro_project / "mlflow.db")
    uri = f"sqlite:///{(kedro_project / 'mlflow.db').as_posix()}"
    config = {
        "server": {"mlflow_tracking_uri": uri},
        "tracking": {"disable_tracking": {"pipelines": []}},  # conf/test lists them all
    }
    (kedro_project / "conf" / "test" / "mlflow.yml").write_text(yaml.safe_dump(config))
    yield kedro_project, uri
    # kedro-mlflow 2.0.3 keeps the last run's id in its process-wide hook and re-opens that
    # run before each node of a later session whose tracking is off; forget it here.
    mlflow_hook.run_id = None


def test_history_metrics_prefix_the_phase_and_step_by_epoch():
    steps = history_metrics(HISTORY, "training")
    assert steps == [
        (0, {"warmup/loss": 1.5, "warmup/lr": 0.001, "warmup/balanced_accuracy": 0.4}),
        (0, {"finetune/loss": 1.0, "finetune/lr": 0.0005, "finetune/balanced_accuracy": 0.6}),
        (1, {"finetune/loss": 0.8, "finetune/lr": 0.0001}),
    ]
    assert history_metrics([{"epoch": 3, "loss": 4.7}], "pretraining") == [
        (3, {"pretraining/loss": 4.7})
    ]


def test_scalar_test_metrics_flatten_numbers_and_leave_out_settings():
    metrics = {
        "test_images": 24,
        "tta": "flips",
        "test": {
            "balanced_accuracy": 0.5,
            "macro_auc": None,
            "confusion_matrix": [[1, 0], [0, 1]],
            "per_class": {"mel": {"recall": 0.25, "support": 4, "auc": None}},
        },
        "bootstrap": {"macro_f1": {"estimate": 0.4, "low": 0.3, "high": 0.5, "n_resamples": 50}},
        "operating_point": {"temperature": 1.2},
        "calibration": {"temperature": 1.3, "ece_before": 0.08, "ece_after": 0.02},
        "melanoma": {
            "validated_threshold": {
                "threshold": 0.1375,
                "target_sensitivity": 0.9,
                "val_sensitivity": 0.91,
                "val_specificity": 0.6,
                "sensitivity": 0.93,
            }
        },
    }
    assert scalar_test_metrics(metrics) == {
        "test/melanoma/validated_threshold/sensitivity": 0.93,
        "val/melanoma/validated_threshold/threshold": 0.1375,
        "val/melanoma/validated_threshold/sensitivity": 0.91,
        "val/melanoma/validated_threshold/specificity": 0.6,
        "test/test_images": 24.0,
        "test/balanced_accuracy": 0.5,
        "test/per_class/mel/recall": 0.25,
        "test/per_class/mel/support": 4.0,
        "test/bootstrap/macro_f1/estimate": 0.4,
        "test/bootstrap/macro_f1/low": 0.3,
        "test/bootstrap/macro_f1/high": 0.5,
        "val/calibration/temperature": 1.3,  # fitted on validation
        "test/calibration/ece_before": 0.08,
        "test/calibration/ece_after": 0.02,
    }


def test_lineage_tags_name_split_classifier_and_data():
    splits = pd.DataFrame({"image_id": ["a", "b"], "label": [0, 1], "split": ["train", "test"]})
    (split_tag,) = lineage_tags("splits", splits).values()
    assert len(split_tag) == 64
    classifier = {"params": {"split_sha256": split_tag}, "state_dict": {"w": torch.ones(2)}}
    tags = lineage_tags("classifier", classifier)
    assert tags["split_sha256"] == split_tag and len(tags["classifier_sha256"]) == 64
    changed = {**classifier, "state_dict": {"w": torch.zeros(2)}}
    assert lineage_tags("classifier", changed)["classifier_sha256"] != tags["classifier_sha256"]
    # A checkpoint made before the split was recorded: no tag rather than "None".
    assert lineage_tags("pretrained_encoder", {"params": {}}) == {}
    # The fingerprint of the train/val images it learnt from, where recorded.
    learnt = {"params": {"split_sha256": "s", "data_sha256": {"images": "i", "metadata": "m"}}}
    assert lineage_tags("pretrained_encoder", learnt) == {
        "split_sha256": "s",
        "train_val_images_sha256": "i",
    }
    metrics = {"split_sha256": "s", "operating_point": {"classifier_sha256": "c"}}
    assert lineage_tags("test_metrics", metrics) == {"split_sha256": "s", "classifier_sha256": "c"}
    metadata = pd.DataFrame({"image_id": ["a"], "lesion_id": ["L"]})
    assert lineage_tags("cached_metadata", metadata) == {
        "metadata_sha256": dataset_fingerprint(metadata)["metadata_sha256"]
    }
    assert lineage_tags("report", "<html>") == {}


def test_code_tags_name_the_commit_or_nothing(monkeypatch):
    from skin_lesion import provenance
    from skin_lesion.hooks import code_tags

    code = {"commit": "c" * 40, "src_tree": "s", "conf_tree": "t", "changed": 2, "changes": []}
    monkeypatch.setattr(provenance, "code_version", lambda: code)
    assert code_tags() == {"mlflow.source.git.commit": "c" * 40, "code_changes": "2"}
    monkeypatch.setattr(provenance, "code_version", lambda: None)  # an installed package
    assert code_tags() == {}
    # A copy without git: its verified stamp names the commit; without one, only the tree.
    copy = {**code, "stamp": "verified"}
    monkeypatch.setattr(provenance, "code_version", lambda: copy)
    assert code_tags() == {
        "mlflow.source.git.commit": "c" * 40,
        "code_changes": "2",
        "code_src_tree": "s",
        "code_stamp": "verified",
    }
    unstamped = {**code, "commit": None, "changed": None, "stamp": "no git checkout and no X"}
    monkeypatch.setattr(provenance, "code_version", lambda: unstamped)
    assert code_tags() == {"code_src_tree": "s", "code_stamp": "no git checkout and no X"}


def test_hook_does_nothing_without_an_active_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert mlflow.active_run() is None
    hook = MlflowOutputsHook()
    hook.after_dataset_saved("training_history", HISTORY, node=None)
    hook.after_dataset_saved("report", "<html></html>", node=None)
    assert mlflow.active_run() is None
    assert list(tmp_path.iterdir()) == []  # no store, no mlruns/


@pytest.mark.slow
def test_kedro_run_logs_parameters_curves_test_metrics_and_files(tracked_project):
    project, uri = tracked_project
    run_kedro(project)  # the default pipeline: all four, in order
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("skin_lesion")
    (run,) = client.search_runs([experiment.experiment_id])
    run_id, params = run.info.run_id, run.data.params
    assert run.info.status == "FINISHED"

    # Parameters: flattened by kedro-mlflow, as the test environment sets them.
    assert params["encoder.name"] == "test_efficientnet"
    assert params["contrastive_pretraining.epochs"] == "2"
    assert params["classifier_training.warmup.epochs"] == "1"
    assert params["classifier_training.finetune.epochs"] == "2"
    assert params["reporting.bootstrap.n_resamples"] == "50"
    assert params["seed"] == "42"
    # Each parameter once: no copy under `parameters.` (Kedro's whole-parameters input).
    assert not [name for name in params if name.startswith("parameters.")]

    # Curves: one point per epoch that ran, step = epoch within the phase, values as saved.
    reporting = project / "data" / "test" / "08_reporting"
    saved = json.loads((reporting / "pretraining_history.json").read_text())
    saved += json.loads((reporting / "training_history.json").read_text())
    curves = {  # phase: (epochs set in conf/test, metrics to check)
        "pretraining": (params["contrastive_pretraining.epochs"], ("loss", "lr")),
        "warmup": (params["classifier_training.warmup.epochs"], ("loss", "val_loss")),
        "finetune": (params["classifier_training.finetune.epochs"], ("loss", "macro_f1")),
    }
    for phase, (epochs, keys) in curves.items():
        records = [r for r in saved if r.get("phase", "pretraining") == phase]
        for key in keys:
            history = sorted(
                (m.step, m.value) for m in client.get_metric_history(run_id, f"{phase}/{key}")
            )
            assert [step for step, _ in history] == list(range(int(epochs)))
            assert [value for _, value in history] == pytest.approx([r[key] for r in records])

    # Test metrics: headline numbers, bootstrap bounds and per-class scores, as in the JSON.
    metrics = json.loads((reporting / "test_metrics.json").read_text())
    logged = run.data.metrics
    assert logged["test/balanced_accuracy"] == pytest.approx(metrics["test"]["balanced_accuracy"])
    assert logged["test/macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    for name in ("balanced_accuracy", "macro_f1", "melanoma_sensitivity"):
        bounds = metrics["bootstrap"][name]
        assert logged[f"test/bootstrap/{name}/low"] == pytest.approx(bounds["low"])
        assert logged[f"test/bootstrap/{name}/high"] == pytest.approx(bounds["high"])
    for name, scores in metrics["test"]["per_class"].items():
        assert logged[f"test/per_class/{name}/support"] == scores["support"]
        assert logged[f"test/per_class/{name}/recall"] == pytest.approx(scores["recall"])
    assert logged["test/calibration/ece_after"] == pytest.approx(
        metrics["calibration"]["ece_after"]
    )
    assert not any(name.startswith("test/operating_point") for name in logged)

    # Files: the checkpoints, the report and the metrics JSON, byte for byte in size.
    files = {
        "checkpoints/classifier.pt": project / "data" / "test" / "06_models" / "classifier.pt",
        "checkpoints/pretrained_encoder.pt": project / "data/test/06_models/pretrained_encoder.pt",
        "reporting/report.html": reporting / "report.html",
        "reporting/test_metrics.json": reporting / "test_metrics.json",
    }
    logged_files = {
        info.path: info.file_size
        for folder in ("checkpoints", "reporting")
        for info in client.list_artifacts(run_id, folder)
        if not info.is_dir
    }
    assert logged_files == {name: path.stat().st_size for name, path in files.items()}
    figures = sorted((reporting / "figures").glob("*.png"))
    assert len(figures) == 10
    logged_figures = {
        info.path: info.file_size for info in client.list_artifacts(run_id, "reporting/figures")
    }
    assert logged_figures == {f"reporting/figures/{p.name}": p.stat().st_size for p in figures}

    # Tags: what the outputs were made from, as the outputs themselves record it.
    tags = run.data.tags
    assert tags["split_sha256"] == metrics["split_sha256"]
    assert len(tags["split_sha256"]) == 64
    assert tags["classifier_sha256"] == metrics["operating_point"]["classifier_sha256"]
    cached = pd.read_parquet(project / "data" / "test" / "03_primary" / "cached_metadata.parquet")
    assert tags["metadata_sha256"] == dataset_fingerprint(cached)["metadata_sha256"]
    code = code_version()  # the package's checkout: the commit the run's code came from
    if code is not None:
        assert tags["mlflow.source.git.commit"] == code["commit"]
        assert tags["code_changes"] == str(code["changed"])
    on_split = f"tags.split_sha256 = '{tags['split_sha256']}'"
    found = client.search_runs([experiment.experiment_id], filter_string=on_split)
    assert [r.info.run_id for r in found] == [run_id]

    # Runs that read these inputs without making them carry the same three tags.
    lineage = ("metadata_sha256", "split_sha256", "classifier_sha256")
    run_kedro(project, "reporting")
    run_kedro(project, "reporting", from_nodes=["build_report"])
    runs = client.search_runs([experiment.experiment_id], filter_string=on_split)
    assert len(runs) == 3
    for other in runs:
        assert {key: other.data.tags.get(key) for key in lineage} == {
            key: tags[key] for key in lineage
        }


def test_store_and_artifacts_sit_at_the_project_root_from_any_working_folder(
    kedro_project: Path, monkeypatch
):
    """A kernel started in notebooks/ tracks into the root's mlflow.db, not notebooks/."""
    from kedro.config import OmegaConfigLoader

    from skin_lesion.settings import CONFIG_LOADER_ARGS, SessionProject

    monkeypatch.setattr(SessionProject, "path", None)  # no session: the working folder's
    root = kedro_project.resolve()
    (root / "notebooks").mkdir()
    for cwd in (root, root / "notebooks"):
        monkeypatch.chdir(cwd)
        for env, experiment in (("local", "skin_lesion"), ("demo", "skin_lesion_demo")):
            loader = OmegaConfigLoader(str(root / "conf"), env=env, **CONFIG_LOADER_ARGS)
            loader.config_patterns["mlflow"] = ["mlflow*", "mlflow*/**", "**/mlflow*"]
            config = loader["mlflow"]
            assert (
                config["server"]["mlflow_tracking_uri"] == f"sqlite:///{root.as_posix()}/mlflow.db"
            )
            kwargs = config["tracking"]["experiment"]["create_experiment_kwargs"]
            assert kwargs["artifact_location"] == f"{root.as_posix()}/mlruns/{experiment}"


def test_a_session_from_outside_the_project_tracks_into_the_project(
    kedro_project: Path, monkeypatch
):
    """A script or kernel elsewhere (here inside another Kedro project) that creates a
    session for this project tracked into an mlflow.db of its working folder."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = kedro_project.resolve()
    elsewhere = root.parent / f"{root.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pyproject.toml").write_text((root / "pyproject.toml").read_text())
    monkeypatch.chdir(elsewhere)
    bootstrap_project(root)
    try:
        with KedroSession.create(project_path=root, env="demo") as session:
            session.load_context()
            assert mlflow.get_tracking_uri() == f"sqlite:///{root.as_posix()}/mlflow.db"
    finally:
        mlflow_hook.run_id = None
    assert (root / "mlflow.db").is_file()
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / "mlruns").exists()


def test_without_mlflow_installed_runs_go_untracked():
    """A box with the training stack but no mlflow still loads the project settings."""
    code = (
        "import sys; sys.modules['mlflow'] = None\n"  # `import mlflow` now fails as if absent
        "from skin_lesion import settings\n"
        "hooks = [type(h).__name__ for h in settings.HOOKS]\n"
        "expected = ['SessionProject', 'RunLock', 'ParametersCheck', 'HostMemoryHook',"
        " 'RunTimer']\n"
        "assert hooks == expected, hooks\n"
        "assert settings.CONFIG_LOADER_ARGS['merge_strategy']['parameters'] == 'soft'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


INTERRUPTED_RUN = """
import os, signal, sys, time
import mlflow
uri, how = sys.argv[1:3]
sys.argv = ["/venv/bin/kedro", "run"]  # as the kedro command's process
mlflow.set_tracking_uri(uri)
from skin_lesion.hooks import MlflowOutputsHook
hook = MlflowOutputsHook()
run = mlflow.start_run()  # as kedro-mlflow's before_pipeline_run does
print(run.info.run_id, flush=True)
hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
hook.before_node_run()
if how == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
elif how == "ctrl-c":
    raise KeyboardInterrupt
else:  # the pipeline ends; kedro-mlflow ends the run
    hook.after_pipeline_run(run_params={}, pipeline=None, catalog=None)
    mlflow.end_run()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "status", "exit_code"),
    [("sigterm", "KILLED", 143), ("ctrl-c", "KILLED", -2), ("end", "FINISHED", 0)],
)
def test_a_run_interrupted_before_its_end_is_marked_killed(tmp_path, how, status, exit_code):
    """Ctrl-C left MLflow's exit handler to end the run FINISHED; SIGTERM left it RUNNING."""
    import os
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path.as_posix()}/mlflow.db"
    # Not the experiment an earlier in-process kedro run left in MLFLOW_EXPERIMENT_ID.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_RUN, uri, how],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == exit_code, done.stderr[-2000:]
    run_id = done.stdout.split()[0]
    assert mlflow.MlflowClient(uri).get_run(run_id).info.status == status


def test_a_run_without_its_raw_data_stops_before_an_mlflow_run_opens(tracked_project):
    """Missing HAM10000 (or folder to classify) stopped the first node, after kedro-mlflow
    had opened a run, which then sat in the history as FAILED."""
    import shutil

    from kedro.io import DatasetError

    project, uri = tracked_project
    shutil.rmtree(project / "data" / "test" / "01_raw" / "HAM10000")
    with pytest.raises(DatasetError, match=r"HAM10000 (metadata|image folder) not found"):
        run_kedro(project, "data_processing")
    experiments = mlflow.MlflowClient(uri).search_experiments()
    assert not mlflow.MlflowClient(uri).search_runs([e.experiment_id for e in experiments])


@pytest.mark.slow
def test_a_resume_that_is_refused_stops_before_an_mlflow_run_opens(tracked_project, monkeypatch):
    """``resume`` of a saved run with other settings was refused by the training node as it
    started, after kedro-mlflow had opened a run, which then sat in the history as FAILED."""
    from skin_lesion import parameters_check
    from skin_lesion.engine import ResumeMismatchError

    project, uri = tracked_project
    for pipeline in ("data_processing", "contrastive_pretraining", "classifier_training"):
        run_kedro(project, pipeline)
    client = mlflow.MlflowClient(uri)

    def statuses() -> list[str]:
        ids = [e.experiment_id for e in client.search_experiments()]
        return sorted(run.info.status for run in client.search_runs(ids))

    assert statuses() == ["FINISHED"] * 3
    other_lr = {"resume": True, "finetune": {"optim": {"lr": 0.0005}}}
    refusal = (
        r"^cannot resume: the saved run differs in classifier_training.finetune.optim.lr: "
        r"0.001 before, now 0.0005. Restore those values, or set resume: false to start over$"
    )
    with pytest.raises(ResumeMismatchError, match=refusal) as refused:
        run_kedro(project, "classifier_training", classifier_training=other_lr)
    assert statuses() == ["FINISHED"] * 3  # no run opened
    assert "check_resume_current" in {entry.name for entry in refused.traceback}
    other_temperature = {"resume": True, "temperature": 0.2}
    with pytest.raises(ResumeMismatchError, match=r"temperature: 0.1 before, now 0.2") as refused:
        run_kedro(project, "contrastive_pretraining", contrastive_pretraining=other_temperature)
    assert "check_resume_current" in {entry.name for entry in refused.traceback}
    assert statuses() == ["FINISHED"] * 3
    # The same settings resume (nothing left to train) and are tracked as before.
    run_kedro(project, "classifier_training", classifier_training={"resume": True})
    assert statuses() == ["FINISHED"] * 4
    # The node's own check stays as the backstop, with the same error: without the hook's
    # it refuses once started, and the run it was in ends FAILED.
    monkeypatch.setattr(parameters_check, "check_resume_current", lambda pipeline, catalog: None)
    with pytest.raises(ResumeMismatchError, match=refusal) as refused:
        run_kedro(project, "classifier_training", classifier_training=other_lr)
    assert "check_resume_current" not in {entry.name for entry in refused.traceback}
    assert statuses() == ["FAILED"] + ["FINISHED"] * 4


def test_an_unknown_encoder_stops_the_run_before_an_mlflow_run_opens(tracked_project):
    """The encoder check needs timm, so it runs when the run starts, not when the context is
    created: still before kedro-mlflow opens a run, which would end FAILED."""
    from skin_lesion.config import ConfigError

    project, uri = tracked_project
    with pytest.raises(ConfigError, match=r"encoder.name: 'efficientnet_b9' is not a timm"):
        run_kedro(project, "data_processing", encoder={"name": "efficientnet_b9"})
    experiments = mlflow.MlflowClient(uri).search_experiments()
    assert not mlflow.MlflowClient(uri).search_runs([e.experiment_id for e in experiments])
    assert not (project / "data" / "test" / "02_intermediate").exists()


def test_a_partial_run_is_named_with_its_slicing(tracked_project):
    """kedro-mlflow names a run after its pipelines only: every `--from-nodes`/`--nodes` run
    of the default pipeline was `__default__`, as a whole run, in the MLflow UI's list."""
    project, uri = tracked_project
    run_kedro(project, "data_processing", node_names=["validate_metadata"])
    run_kedro(project, "data_processing")
    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    names = sorted(run.info.run_name for run in client.search_runs(ids))
    assert names == ["data_processing", "data_processing --nodes validate_metadata"]


def test_the_slicing_is_described_as_on_the_command_line():
    assert slice_description({"pipeline_names": ["reporting"], "tags": None}) == ""
    described = slice_description(
        {
            "from_nodes": ["evaluate_test"],
            "node_names": ["a", "b"],
            "tags": ("gpu",),
            "only_missing_outputs": True,
        }
    )
    assert described == "--from-nodes evaluate_test --nodes a,b --tags gpu --only-missing-outputs"


def test_a_run_name_set_in_mlflow_yml_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow, "MlflowClient", lambda: pytest.fail("renamed a named run"))
    name_slice("run-id", "my experiment", {"from_nodes": ["x"], "pipeline_names": None})
    name_slice("run-id", "__default__", {"pipeline_names": None})  # a whole run: kept
    name_slice("run-id", "a+b", {"pipeline_names": ["a", "b"]})  # already in order: kept


@pytest.mark.parametrize(
    ("pipelines", "described", "expected"),
    [
        (["reporting", "classifier_training"], {}, "classifier_training+reporting"),
        (
            ["reporting", "inference", "data_processing"],
            {"tags": ("gpu",)},
            "data_processing+inference+reporting --tags gpu",
        ),
        (["reporting"], {"from_nodes": ["evaluate_test"]}, "reporting --from-nodes evaluate_test"),
    ],
)
def test_several_pipelines_are_named_in_one_order(monkeypatch, pipelines, described, expected):
    """Kedro's CLI passes `--pipelines` on through a set: kedro-mlflow's name, the names
    joined by `+`, came in another order from one run of a command to the next."""
    renamed = []

    class Client:
        def update_run(self, run_id, name):
            renamed.append((run_id, name))

    monkeypatch.setattr(mlflow, "MlflowClient", Client)
    name_slice("run-id", "+".join(pipelines), {"pipeline_names": pipelines, **described})
    assert renamed == [("run-id", expected)]


def test_sigterm_is_left_alone_outside_the_kedro_command(monkeypatch):
    """A notebook catches SystemExit: a SIGTERM turned into one would not end its kernel."""
    import signal
    import sys

    from skin_lesion import hooks

    hook = MlflowOutputsHook()
    for argv, installed in (
        (["/usr/lib/python3/ipykernel_launcher.py", "-f", "k.json"], False),
        (["/venv/bin/pytest"], False),
        (["/venv/bin/kedro", "viz"], False),
        (["/venv/bin/kedro", "run", "--env", "demo"], True),
        (["/venv/lib/python3.11/site-packages/kedro/__main__.py", "run"], True),
        (["python -m kedro", "run", "--env", "demo"], True),  # as kedro/__main__.py sets it
        (["python -m kedro", "viz"], False),
        (["/venv/lib/python3.11/site-packages/skin_lesion/__main__.py", "--env", "demo"], True),
    ):
        monkeypatch.setattr(sys, "argv", argv)
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
        assert (signal.getsignal(signal.SIGTERM) is hooks._exit_on_sigterm) is installed, argv
        hook.after_pipeline_run(run_params={}, pipeline=None, catalog=None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    # One-shot: the handler puts the default back before it raises.
    monkeypatch.setattr(signal, "signal", lambda sig, handler: seen.append((sig, handler)))
    seen = []
    with pytest.raises(SystemExit) as stopped:
        hooks._exit_on_sigterm(signal.SIGTERM, None)
    assert stopped.value.code == 143 and seen == [(signal.SIGTERM, signal.SIG_DFL)]


def test_inputs_loaded_on_another_thread_still_tag_the_run(tmp_path, monkeypatch):
    """`kedro run --async` loads inputs in a thread pool, and ThreadRunner runs nodes (and
    their loads) in worker threads; MLflow's active run is per thread, so the lineage tags
    of what a `--nodes build_report` run read were silently left out there."""
    import threading

    import pandas as pd

    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path.as_posix()}/mlflow.db")
    experiment = MlflowClient().create_experiment("threads")
    hook = MlflowOutputsHook()
    splits = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "lesion_id": ["l1", "l2"],
            "label": [0, 1],
            "split": ["train", "test"],
        }
    )
    # As kedro-mlflow's before_pipeline_run does, on the main thread.
    run = mlflow.start_run(experiment_id=experiment)
    try:
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
        loader = threading.Thread(target=hook.after_dataset_loaded, args=("splits", splits, None))
        loader.start()
        loader.join()
        hook.after_pipeline_run(run_params={}, pipeline=None, catalog=None)
        tags = MlflowClient().get_run(run.info.run_id).data.tags
    finally:
        mlflow.end_run()
        mlflow.set_tracking_uri(previous)
    assert tags["split_sha256"] == lineage_tags("splits", splits)["split_sha256"]
