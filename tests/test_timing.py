"""RunTimer: wall time per node, dataset load and save, through Kedro's own runner."""

from __future__ import annotations

import logging
import time

from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from skin_lesion import timing


class SlowDataset(MemoryDataset):
    """A dataset that takes ``delay`` seconds to load."""

    def __init__(self, data, delay: float) -> None:
        super().__init__(data)
        self._delay = delay

    def load(self):
        time.sleep(self._delay)
        return super().load()


def _slow_double(x: int, factor: int) -> int:
    time.sleep(0.2)
    return x * factor


def _quick(y: int) -> int:
    return y + 1


def test_nodes_loads_and_saves_are_timed_and_logged(caplog) -> None:
    pipeline = Pipeline(
        [
            Node(_slow_double, ["raw", "params:factor"], "doubled", name="slow_double"),
            Node(_quick, "doubled", "out", name="quick"),
        ]
    )
    catalog = DataCatalog(
        {
            "raw": SlowDataset(3, delay=0.3),
            "params:factor": MemoryDataset(2),
            "doubled": MemoryDataset(),
            "out": MemoryDataset(),
        }
    )
    timer, hooks = timing.RunTimer(), _create_hook_manager()
    hooks.register(timer)
    with caplog.at_level(logging.INFO, logger="skin_lesion.timing"):
        timer.before_pipeline_run()  # what the session calls around the runner
        SequentialRunner().run(pipeline, catalog, hooks)
        timer.after_pipeline_run()
    ran = timing.last_run()
    assert set(ran["nodes"]) == {"slow_double", "quick"}
    # The node's own work only: its 0.3 s input load is counted as a load, not in the node.
    assert 0.2 <= ran["nodes"]["slow_double"] < 0.3 + 0.2
    assert ran["nodes"]["quick"] < 0.1
    assert ran["loads"]["raw"] >= 0.3 and "params:factor" not in ran["loads"]
    assert {"doubled", "out"} <= set(ran["saves"])
    assert "Wall time by node (s): slow_double 0.2, quick 0.0; loading 0.3 (raw 0.3" in caplog.text
    # A new run starts from nothing; last_run hands out a copy.
    ran["nodes"].clear()
    assert timing.last_run()["nodes"]
    timer.before_pipeline_run()
    timer.after_pipeline_run()
    assert timing.last_run()["nodes"] == {}


def test_two_nodes_loading_one_dataset_at_once_are_both_timed() -> None:
    """Under a ThreadRunner the second load's start replaced the first's: one load lost."""
    from kedro.runner import ThreadRunner

    pipeline = Pipeline(
        [
            Node(_quick, "raw", "a", name="first"),
            Node(_quick, "raw", "b", name="second"),
        ]
    )
    catalog = DataCatalog(
        {"raw": SlowDataset(3, delay=0.5), "a": MemoryDataset(), "b": MemoryDataset()}
    )
    timer, hooks = timing.RunTimer(), _create_hook_manager()
    hooks.register(timer)
    timer.before_pipeline_run()
    ThreadRunner(max_workers=2).run(pipeline, catalog, hooks)
    timer.after_pipeline_run()
    assert timing.last_run()["loads"]["raw"] >= 0.95  # two loads of 0.5 s each


class SlowHooks:
    """Another plugin's hooks doing 0.2 s of work around every node, load and save (as
    MLflow's copies and hashes a saved checkpoint in after_dataset_saved)."""

    def _work(self, **kwargs) -> None:
        time.sleep(0.2)

    before_node_run = after_node_run = hook_impl(_work)
    before_dataset_loaded = after_dataset_loaded = hook_impl(_work)
    before_dataset_saved = after_dataset_saved = hook_impl(_work)


def test_other_hooks_work_is_not_counted_as_a_nodes_or_datasets_time() -> None:
    pipeline = Pipeline([Node(_quick, "raw", "out", name="quick")])
    catalog = DataCatalog({"raw": MemoryDataset(3), "out": MemoryDataset()})
    timer, hooks = timing.RunTimer(), _create_hook_manager()
    hooks.register(SlowHooks(), name="registered first")
    hooks.register(timer)
    hooks.register(SlowHooks(), name="registered last")  # called first, as kedro-mlflow's
    timer.before_pipeline_run()
    SequentialRunner().run(pipeline, catalog, hooks)
    timer.after_pipeline_run()
    ran = timing.last_run()
    assert ran["nodes"]["quick"] < 0.1
    assert ran["loads"]["raw"] < 0.1 and ran["saves"]["out"] < 0.1
