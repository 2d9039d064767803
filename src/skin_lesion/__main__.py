"""``python -m skin_lesion``: Kedro's ``kedro run`` for an installed package, the way Kedro
runs a packaged project (``kedro package`` builds the wheel and a ``conf-skin_lesion.tar.gz``):

    pip install dist/skin_lesion-*.whl
    python -m skin_lesion --conf-source=conf-skin_lesion.tar.gz --env demo

It takes ``kedro run``'s options. The ``skin-lesion`` command is the classifier's own CLI
(``skin-lesion predict``), not this.
"""

import sys
from pathlib import Path
from typing import Any

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project


def main(*args: Any, **kwargs: Any) -> Any:
    """Run the project's pipelines as ``kedro run`` would (Kedro's project template)."""
    package_name = Path(__file__).parent.name
    configure_project(package_name)
    kwargs["standalone_mode"] = not hasattr(sys, "ps1")  # an interactive caller gets the result
    run = find_run_command(package_name)
    return run(*args, **kwargs)


if __name__ == "__main__":
    main()
