"""The one-line progress display of the CLI (``--run``, ``catalog demo``, ``catalog import``)."""

from __future__ import annotations

import sys
import time


class TerminalProgress:
    """``done/total unit  percent  ETA`` on stderr, when stderr is a terminal; silent otherwise
    (cron mails stay short). Call it as a ``progress(done, total)`` callback; :meth:`close`
    clears the line."""

    def __init__(self, unit: str, enabled: bool | None = None):
        self.unit = unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        pct = done / total * 100 if total else 100.0
        if self.unit == "bytes":
            text = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB read"
        else:
            text = f"{done:,}/{total:,} {self.unit}"
        rate = done / max(now - self.start, 1e-6)
        eta = (
            f"ETA {(total - done) / rate:4.0f}s" if rate and total else f"{now - self.start:5.0f}s"
        )
        sys.stderr.write(f"\r  {text}  {pct:5.1f}%  {eta} ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
