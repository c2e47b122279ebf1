"""How values look on screen: dates, sizes, durations, counts, status colours.

Times are stored in UTC and shown in local time. Tests fix the zone (TZ=UTC) for snapshots.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from rich.text import Text

from tuiexport.units import file_size

STATUS_STYLES = {
    "queued": "cyan",
    "running": "bold cyan",
    "success": "green",
    "warning": "yellow",
    "failed": "bold red",
    "cancelled": "magenta",
    "interrupted": "red",
    "held": "bold #ff8700",
    "discarded": "dim",
}
STATUS_MARKS = {
    "queued": "…",
    "running": "…",
    "success": "✓",
    "warning": "!",
    "failed": "✗",
    "cancelled": "-",
    "interrupted": "✗",
    "held": "‖",
    "discarded": "-",
}

SHORT_PROFILES = {
    "standard": "std",
    "standardUpdate": "upd",
    "developer": "dev",
    "bmecat12": "BMEcat",
}


def local(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def when(value: datetime | None, *, short: bool = False) -> str:
    value = local(value)
    if value is None:
        return ""
    return value.strftime("%d.%m. %H:%M" if short else "%Y-%m-%d %H:%M")


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells; a cut one ends with "…"."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def size(n: int | None) -> str:
    return file_size(n)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def compact(n: int | None) -> str:
    """12 / 1.2k / 12k / 1.2M: counts that must fit narrow columns."""
    if n is None:
        return "—"
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def short_format(profile: str, output: str) -> str:
    if profile == "bmecat12":
        return "BMEcat XML" if output == "xml" else f"BMEcat {output.upper()}"
    return f"{SHORT_PROFILES.get(profile, profile)} {output.upper()}"


def status(value: str) -> Text:
    return Text(f"{STATUS_MARKS.get(value, '?')} {value}", style=STATUS_STYLES.get(value, ""))


def settle_heap() -> None:
    """Exempt what is alive now (definitions, history rows, widgets) from the cyclic collector.

    With 100,000 history rows loaded a full collection took 80–110 ms on the UI thread, and
    landed on some key press (the p95 of expanding a row). Frozen objects are still freed by
    reference counting; only cycles among them wait. Called after each big load.
    """
    gc.freeze()
