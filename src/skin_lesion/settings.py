"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (demo, test, local) override single keys of base parameters and
    # globals instead of replacing whole top-level groups.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
}
