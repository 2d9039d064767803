"""Command-line checks the benchmark scripts share."""

from __future__ import annotations

import argparse


def image_size(parser: argparse.ArgumentParser, flag: str, text: str) -> tuple[int, int]:
    """``HxW`` such as ``256x341`` as ``(height, width)``, both at least 1.

    Args:
        parser: The script's parser, whose ``error`` refuses a malformed size.
        flag: The option the text came from, for the refusal (``--cache``).
        text: The option's value.

    Returns:
        The height and width.

    Raises:
        SystemExit: Through ``parser.error`` (status 2), naming ``flag``, the value and the
            form expected.
    """
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        parser.error(f"{flag} must look like 256x341 (HxW), got {text!r}")
    if height < 1 or width < 1:
        parser.error(f"{flag} must have a height and width of at least 1, got {text!r}")
    return height, width
