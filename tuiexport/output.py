"""What the CLI commands print for ``--json``: one indented JSON document on stdout."""

from __future__ import annotations

import sys

import msgspec


def print_json(data: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(data), indent=2).decode() + "\n")
