"""Where a ``kedro run`` spends its time: wall seconds per node and per dataset load and save.

Kedro logs when each node starts and completes but not how long it took. :class:`RunTimer`
(registered in ``settings.HOOKS``) times every node's own work (between Kedro's
``before_node_run`` and ``after_node_run``, so without loading its inputs or saving its
outputs), and every load and save of a dataset (parameters aside), and logs the slowest at
the end of the run, e.g. for ``cpu_quick``'s reporting on a 2-core CPU (before the evaluation
batches of 16 of 2026-12-05 brought each prediction node to about 21 s)::

    Wall time by node (s): predict_test 51.1, predict_val 49.1, plot_embedding_map 7.4,
    evaluate_test 1.0, plot_gradcam_examples 0.7, ...; loading 0.3 (classifier 0.1, ...),
    saving 0.2

A memory-mapped dataset (the image cache) loads at once; reading its pages counts in the
nodes that touch them.

On CUDA, kernels run asynchronously: a node's time ends when its last result reaches the host
(every node here returns host arrays or saved files), so work it queued is counted in it.

:func:`last_run` returns the figures of the last run that finished in this process, for
``benchmarks/accuracy.py``, which records them with each stage.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

SHOWN = 5  # slowest nodes and datasets named in the log line
_LAST: dict[str, dict[str, float]] = {}


def last_run() -> dict[str, dict[str, float]]:
    """``{"nodes": {name: s}, "loads": {dataset: s}, "saves": {dataset: s}}`` of the last
    run that finished in this process (seconds rounded to 0.01; empty before any)."""
    return {key: dict(value) for key, value in _LAST.items()}


def _is_parameters(dataset_name: str) -> bool:
    return dataset_name == "parameters" or dataset_name.startswith("params:")


def _slowest(seconds: dict[str, float]) -> str:
    ranked = sorted(seconds.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{name} {value:.1f}" for name, value in ranked[:SHOWN])
    return shown + (", ..." if len(ranked) > SHOWN else "")


class RunTimer:
    """Times nodes, dataset loads and saves through Kedro's hooks (see the module).

    Its clocks start in the last ``before_*`` hook called and stop in the first ``after_*``
    one, so other hooks' work around a save or load (MLflow's artifact copies and hashing in
    ``after_dataset_saved``) is not counted as the dataset's: pluggy calls the hook
    registered last first, which is kedro-mlflow's and ours after this one.
    """

    def __init__(self) -> None:
        """Start with nothing timed; ``before_pipeline_run`` resets."""
        self._reset()

    def _reset(self) -> None:
        # By (kind, dataset or node name, node name): under a ThreadRunner two nodes may load
        # one dataset at once, and keyed by name alone the second start replaced the first.
        self._started: dict[tuple[str, str, str], float] = {}
        self._seconds: dict[str, defaultdict[str, float]] = {
            kind: defaultdict(float) for kind in ("nodes", "loads", "saves")
        }

    def _start(self, kind: str, name: str, node: Any) -> None:
        self._started[(kind, name, getattr(node, "name", ""))] = time.perf_counter()

    def _stop(self, kind: str, name: str, node: Any) -> None:
        started = self._started.pop((kind, name, getattr(node, "name", "")), None)
        if started is not None:  # a hook registered mid-run has no start: left out
            self._seconds[kind][name] += time.perf_counter() - started

    @hook_impl
    def before_pipeline_run(self) -> None:
        """Forget the previous run's figures."""
        self._reset()

    @hook_impl(trylast=True)  # after other hooks' work
    def before_node_run(self, node: Any) -> None:
        """Start the node's clock (its inputs are loaded by now)."""
        self._start("nodes", node.name, node)

    @hook_impl(tryfirst=True)  # before other hooks' work
    def after_node_run(self, node: Any) -> None:
        """Stop the node's clock (before its outputs are saved)."""
        self._stop("nodes", node.name, node)

    @hook_impl(trylast=True)  # after other hooks' work
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        """Start a load's clock."""
        if not _is_parameters(dataset_name):
            self._start("loads", dataset_name, node)

    @hook_impl(tryfirst=True)  # before other hooks' work
    def after_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        """Stop a load's clock; a dataset loaded by several nodes adds up."""
        if not _is_parameters(dataset_name):
            self._stop("loads", dataset_name, node)

    @hook_impl(trylast=True)  # after other hooks' work
    def before_dataset_saved(self, dataset_name: str, node: Any) -> None:
        """Start a save's clock."""
        self._start("saves", dataset_name, node)

    @hook_impl(tryfirst=True)  # before other hooks' work
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        """Stop a save's clock."""
        self._stop("saves", dataset_name, node)

    @hook_impl
    def after_pipeline_run(self) -> None:
        """Keep the figures for :func:`last_run` and log the slowest nodes and datasets."""
        _LAST.clear()
        _LAST.update(
            {
                kind: {name: round(value, 2) for name, value in seconds.items()}
                for kind, seconds in self._seconds.items()
            }
        )
        nodes, loads, saves = (self._seconds[k] for k in ("nodes", "loads", "saves"))
        if not nodes:
            return
        logger.info(
            "Wall time by node (s): %s; loading %.1f (%s), saving %.1f",
            _slowest(nodes),
            sum(loads.values()),
            _slowest(loads) or "nothing",
            sum(saves.values()),
        )
