"""argparse value types shared by the families' command lines (argparse only: ``gazelabel --help`` stays fast)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer > 0; argparse turns the error into one line naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0; argparse turns the error into one line naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


__all__ = ["nonnegative_int", "positive_int"]
