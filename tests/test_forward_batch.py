"""Forward-only passes take the device's batch size unless one is given."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from skin_lesion import engine
from tests.conftest import run_kedro


def test_null_takes_the_devices_default_and_a_number_wins() -> None:
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")
    assert engine.forward_batch_size(None, cpu) == engine.FORWARD_BATCH_CPU == 16
    assert engine.forward_batch_size(None, cuda) == engine.FORWARD_BATCH_GPU == 256
    assert engine.forward_batch_size(None, mps) == 256
    assert engine.forward_batch_size(None, cuda, gpu=64) == 64
    assert engine.forward_batch_size(None, cpu, gpu=64) == 16
    for device in (cpu, cuda):
        assert engine.forward_batch_size(7, device) == 7


@pytest.mark.parametrize(
    "key",
    [
        "classifier_training.eval_batch_size",
        "contrastive_pretraining.embed_batch_size",
        "reporting.batch_size",
    ],
)
def test_the_batch_sizes_accept_null_and_refuse_zero(key: str) -> None:
    from skin_lesion.classification import ClassifierConfig
    from skin_lesion.evaluation import ReportingConfig
    from skin_lesion.pretraining import PretrainConfig

    group, name = key.split(".")
    config = {
        "classifier_training": ClassifierConfig,
        "contrastive_pretraining": PretrainConfig,
        "reporting": ReportingConfig,
    }[group]
    assert getattr(config(**{name: None}), name) is None
    assert getattr(config(), name) is None  # the default
    with pytest.raises(ValueError, match=name):
        config(**{name: 0})


@pytest.mark.slow
def test_every_forward_only_pass_of_a_run_uses_the_cpus_batch(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test env leaves all three batch sizes null, as base does: on a CPU each of the
    # run's forward-only passes must ask for the default and get 16.
    calls: list[tuple[str, int | None, str, int]] = []
    resolve = engine.forward_batch_size

    def spy(requested, device, **kwargs):
        size = resolve(requested, device, **kwargs)
        frame = sys._getframe(1)
        while frame.f_code.co_name.startswith("<"):  # a comprehension's own frame
            frame = frame.f_back
        calls.append((frame.f_code.co_name, requested, device.type, size))
        return size

    monkeypatch.setattr(engine, "forward_batch_size", spy)
    run_kedro(kedro_project)
    callers = {caller for caller, *_ in calls}
    # validation each epoch, the kNN monitor, the embedding export, reporting's predictions
    assert callers == {"validate", "evaluate", "export_embeddings", "predict_split"}, calls
    assert {(requested, device, size) for _, requested, device, size in calls} == {
        (None, "cpu", 16)
    }
    # A number in the parameters is used as given.
    calls.clear()
    run_kedro(kedro_project, "reporting", reporting={"batch_size": 5})
    assert {(caller, size) for caller, _, _, size in calls} == {("predict_split", 5)}
