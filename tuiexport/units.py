"""Figures as people read them, shared by the CLI and the TUI."""

from __future__ import annotations


def file_size(n: int | None, empty: str = "") -> str:
    """``204.5 kB``: decimal units, one decimal above bytes."""
    if n is None:
        return empty
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
