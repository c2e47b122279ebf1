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


def span(seconds: float) -> str:
    """A duration as people say it: "40 s", "15 min", "24 h", "3 days"."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 72 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"
