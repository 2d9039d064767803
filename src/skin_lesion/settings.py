"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from skin_lesion.hooks import MlflowOutputsHook

# kedro-mlflow registers its own hook (one MLflow run per `kedro run`, parameters logged);
# this one adds the training curves, test metrics, checkpoints and report to that run.
HOOKS = (MlflowOutputsHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (demo, test, local) override single keys of base parameters, globals
    # and mlflow.yml instead of replacing whole top-level groups.
    "merge_strategy": {"parameters": "soft", "globals": "soft", "mlflow": "soft"},
}
