"""argparse types the commands share: a bad value is refused by argparse, naming the option."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A count (--top, --days): 1 or more. Zero or a negative one would reach the SQL (LIMIT -1,
    "Top 0", a period that ends before it starts) and fail there, blaming the database."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value
