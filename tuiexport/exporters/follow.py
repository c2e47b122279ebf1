"""Validation alongside writing: ``python -m tuiexport.exporters.follow`` (see
:class:`tuiexport.exporters.validate.Follower`).

The follower reads the part file while the export writes it, on the other core, through the
same validator that would read it after the run (:data:`validate.FOLLOWED`): at the end of
what is written so far it waits, until the export says the file is complete (its size and the
products it wrote). The export then needs only the verdict, not a second pass over the file.

Protocol on stdin, one JSON object a line: first ``{"validator", "path", "profile",
"options"}``, then, once the part file is complete, ``{"size", "expected"}`` (end of input
instead: the run stopped; the follower exits). On stdout: the JSON list of problems.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

#: Bytes read at once: the validators' blocks are this size too (memory beside the export).
READ = 1 << 20
#: How long the follower waits at the end of what is written before it looks again.
POLL_S = 0.02


class Growing(io.RawIOBase):
    """The part file as it grows: a read at its end waits for more, until :attr:`final` (the
    size of the complete file) is known and reached."""

    def __init__(self, path: Path, complete: threading.Event, final: dict[str, int]):
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed with this reader
        self._complete, self._final = complete, final
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        complete_and_read = False
        while True:
            n = self._file.readinto(buffer) or 0
            if n:
                self._pos += n
                return n
            if complete_and_read:
                if self._pos >= self._final["size"]:
                    return 0
                raise OSError(
                    f"the file ends after {self._pos:,} bytes, not {self._final['size']:,}"
                )
            if self._complete.is_set():
                complete_and_read = True  # one more read: what came just before the end
                continue
            self._complete.wait(POLL_S)

    def close(self) -> None:
        self._file.close()
        super().close()


def main() -> int:
    from tuiexport.exporters import validate, worker

    spec = json.loads(sys.stdin.readline())
    complete = threading.Event()
    final: dict[str, int] = {}

    def wait_for_the_end() -> None:
        line = sys.stdin.readline()
        if not line:  # the run stopped: nothing to check
            os._exit(1)
        final.update(json.loads(line))
        complete.set()

    threading.Thread(target=wait_for_the_end, daemon=True).start()
    check: Any = worker.resolve(spec["validator"])
    # The followed validators read no option: a plain namespace of them, so that the follower
    # never imports peewee (8 MB of its memory, beside the export's processes).
    options = SimpleNamespace(**spec["options"])
    validate.BLOCK = READ  # one block of the file in memory, not eight
    with io.BufferedReader(Growing(Path(spec["path"]), complete, final), READ) as reader:
        problems = check(
            Path(spec["path"]),
            spec["profile"],
            lambda: final["expected"],
            options,
            reader=reader,
        )
    sys.stdout.write(json.dumps(problems) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
