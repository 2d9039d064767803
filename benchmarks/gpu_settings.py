"""Check ``benchmarks/gpu.sh``'s ``ABLATIONS`` and ``SPEED_ARGS`` before any GPU work.

``gpu.sh`` hands them to ``accuracy.py --ablation`` and ``speed.py`` only when those steps
come, after the steps before them: a typo surfaced minutes into a GPU session. This reads
them with those scripts' own names and parser, on any machine (no GPU), and exits 2 naming
what is wrong:

    python benchmarks/gpu_settings.py [--ablations "cross-entropy ..."] [--speed-args "..."]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))


def check(ablations: str | None, speed_args: str | None) -> list[str]:
    """What is wrong with ``ABLATIONS`` (space-separated names) and ``SPEED_ARGS``."""
    problems = []
    if ablations is not None:
        from benchmarks.accuracy import ABLATIONS

        unknown = [name for name in ablations.split() if name not in ABLATIONS]
        if unknown:
            problems.append(
                f"ABLATIONS: unknown ablation(s) {' '.join(unknown)} "
                f"(known: {' '.join(sorted(ABLATIONS))})"
            )
    if speed_args:
        from benchmarks import speed_args as speed  # the script's parser, without torch

        # argparse's usage line names the script; put back after, for an in-process caller.
        program, sys.argv[0] = sys.argv[0], "benchmarks/speed.py"
        try:
            # Split as gpu.sh's unquoted $SPEED_ARGS is: at spaces, quotes kept as text.
            speed.parse_args(speed_args.split())
        except SystemExit as refused:  # argparse has printed its message
            if refused.code:
                problems.append(f"SPEED_ARGS={speed_args}: refused by benchmarks/speed.py (above)")
        finally:
            sys.argv[0] = program
    return problems


def main(argv: list[str] | None = None) -> int:
    """Exit 2 naming each problem, 0 when there is none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablations", help="gpu.sh's ABLATIONS")
    parser.add_argument("--speed-args", help="gpu.sh's SPEED_ARGS")
    args = parser.parse_args(argv)
    problems = check(args.ablations, args.speed_args)
    for problem in problems:
        print(f"benchmarks/gpu.sh: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
