"""Kedro project settings."""

from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.hooks import hook_impl
from kedro.utils import find_kedro_project
from omegaconf import OmegaConf

from skin_lesion import warning_filters
from skin_lesion.host_memory import HostMemoryHook
from skin_lesion.parameters_check import ParametersCheck
from skin_lesion.run_lock import RunLock
from skin_lesion.timing import RunTimer

# Third-party warnings no user of this project can act on, for sessions made without the
# Kedro CLI (notebooks, scripts); the CLI installs them first (a kedro.init entry point).
warning_filters.install()


class SessionProject:
    """Kedro hook: ``${project_root:}`` is the project of the session being set up.

    A script or kernel outside the project (``KedroSession.create(project_path=...)``, or
    ``%reload_kedro PATH``) otherwise tracked into an ``mlflow.db`` of its working folder,
    or of another Kedro project holding that folder, while its catalog read this one.
    """

    path: Path | None = None

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook resolves mlflow.yml
    def after_context_created(self, context: Any) -> None:
        SessionProject.path = Path(context.project_path)


# kedro-mlflow registers its own hook (one MLflow run per `kedro run`, parameters logged);
# ours adds the training curves, test metrics, checkpoints, report and figures to that run.
# Tracking is a dependency, but the pipelines do not need it: where kedro-mlflow and mlflow
# are not installed (a bare GPU box with only the training stack), runs go untracked.
# ParametersCheck refuses a mistyped `--params` name or parameter key before any work;
# RunTimer logs where the run's time went (per node, loading, saving) at its end.
# HostMemoryHook keeps glibc's malloc from handing each batch's memory back to the kernel
# (skin_lesion.host_memory: up to 2x faster CPU training and evaluation). SessionProject
# anchors ${project_root:} (below) to the session's project. RunLock refuses a run while
# another process runs one on the same data folder (skin_lesion.run_lock).
try:
    from skin_lesion.hooks import MlflowOutputsHook
except ModuleNotFoundError as error:  # tests/test_mlflow.py runs this without mlflow
    if error.name != "mlflow" and not (error.name or "").startswith("mlflow."):
        raise
    HOOKS: tuple = (SessionProject(), RunLock(), ParametersCheck(), HostMemoryHook(), RunTimer())
else:
    HOOKS = (
        SessionProject(),
        RunLock(),
        ParametersCheck(),
        HostMemoryHook(),
        RunTimer(),
        MlflowOutputsHook(),
    )


def project_root() -> str:
    """The project of the last Kedro context created in this process, else the Kedro project
    holding the working folder (or the folder itself), as a POSIX path.

    ``${project_root:}`` in config anchors paths that Kedro would otherwise take relative
    to the working folder, e.g. the MLflow SQLite file: a notebook kernel started in
    ``notebooks/`` then tracks into the same ``mlflow.db`` as ``kedro run`` at the root.
    """
    cwd = Path.cwd()
    return (SessionProject.path or find_kedro_project(cwd) or cwd).resolve().as_posix()


# Registered here, not through CONFIG_LOADER_ARGS["custom_resolvers"]: Kedro registers
# those with OmegaConf.register_new_resolver, which OmegaConf 2.4 deprecates with a warning
# on every run. Kedro skips a name that is already registered.
if not OmegaConf.has_resolver("project_root"):
    getattr(OmegaConf, "register_resolver", OmegaConf.register_new_resolver)(
        "project_root", project_root
    )

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (demo, test, local) override single keys of base parameters, globals
    # and mlflow.yml instead of replacing whole top-level groups.
    "merge_strategy": {"parameters": "soft", "globals": "soft", "mlflow": "soft"},
}
