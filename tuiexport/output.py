"""What the CLI prints for ``--json`` (one indented JSON document on stdout), and its argument types."""

from __future__ import annotations

import argparse
import sys

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
