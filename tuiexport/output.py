"""What the CLI prints for ``--json`` (one indented JSON document on stdout), and its argument types."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import msgspec


def print_json(data: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(data), indent=2).decode() + "\n")


def port_number(text: str) -> int:
    """A TCP port for argparse: a whole number from 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port (a number from 0 to 65535)")
    return port


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (a bigger one would overflow
    the database's 64-bit integers or mean nothing)."""

    def convert(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"'{text[:40]}' is not a whole number from {low:,} to {high:,}"
            )
        return value

    return convert
