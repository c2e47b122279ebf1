"""Run one download in a child process, so that the export never competes with the UI for the GIL.

An export in a thread of the TUI's process holds the GIL in long C calls (cursor batches, encoding)
and made key presses wait for seconds. The child calls the same service functions
(``begin_run`` with ``trigger="tui"``, then ``PreparedRun.execute``) and reports over a pipe:
``("started", log_id, name)``, ``("progress", done, total)``, ``("done", log_id)`` or
``("error", sentence)``. Its history row carries the child's pid, so a child that dies is marked
``interrupted`` like any other dead run. A delta (``since``: what changed since that run, as
``tuiexport --run EXPORT --since LOGID``) goes through ``run_delta``, which may run the export
in full first: its log ID is known, and ``started`` sent, once it has ended. This module must
not import Textual.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

#: Niceness of the child: the person at the keyboard wins when both want the CPU.
NICE = 10
#: Progress messages per second at most: the writer reports far more often than a screen needs.
PROGRESS_HZ = 10


def _child(
    db_target: str,
    export_id: str,
    folder: str,
    conn: Connection,
    cancel: EventType,
    since: str | None = None,
) -> None:
    # The terminal belongs to the TUI: nothing the child might print may reach it.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    # On a busy machine the screen goes first; the export only slows when the CPU is short.
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICE)
    from tuiexport import config, service
    from tuiexport.errors import UserError

    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1 / PROGRESS_HZ or done >= total:
            last[0] = now
            conn.send(("progress", done, total))

    prepared = None
    try:
        config.reset_settings()
        service.prepare_database(db_target, load_sample=False)
        if since is None:
            prepared = service.begin_run(export_id, trigger="tui", output_path=folder)
            started = (prepared.log_id, prepared.definition.name)
        else:
            run = service.run_delta(
                export_id,
                since,
                trigger="tui",
                output_path=folder,
                progress=progress,
                cancel=cancel.is_set,
            )
            started = (run.log_id, run.export_name)
    except UserError as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - the parent shows it as one sentence
        conn.send(("error", f"The download could not start: {type(exc).__name__}: {exc}."))
        return
    conn.send(("started", *started))
    if prepared is not None:
        prepared.execute(progress=progress, cancel=cancel.is_set)
    conn.send(("done", started[0]))
    service.close_database()


_running: set[ChildRun] = set()


def cancel_all() -> None:
    """Ask every running download to stop (the TUI is quitting): each ends ``cancelled``."""
    for child in list(_running):
        child.cancel()


class ChildRun:
    """A download running in a child process; iterate :meth:`messages` until it ends."""

    def __init__(
        self, db_target: str, export_id: str, folder: str, since: str | None = None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        # Textual replaces sys.stderr with an object whose fileno() is -1, which multiprocessing
        # (its resource tracker) passes on to the processes it starts: hand it the real one.
        saved = sys.stderr
        sys.stderr = sys.__stderr__ if sys.__stderr__ is not None else open(os.devnull, "w")  # noqa: SIM115 - a stand-in while the child starts
        try:
            self._recv, send = context.Pipe(duplex=False)
            self.cancel_event = context.Event()
            self.process = context.Process(
                target=_child,
                args=(db_target, export_id, folder, send, self.cancel_event, since),
                name="tuiexport-download",
                # Not a daemon: the writers may start processes of their own, and at exit Python
                # waits for it, which cancel_all() keeps short.
                daemon=False,
            )
            self.process.start()
        finally:
            sys.stderr = saved
        send.close()
        _running.add(self)

    def cancel(self) -> None:
        self.cancel_event.set()

    def messages(self, cancelled: Callable[[], bool] = lambda: False) -> Iterator[tuple[Any, ...]]:
        """Messages from the child until it exits; ``cancelled()`` true sets the cancel event."""
        while True:
            if cancelled():
                self.cancel()
            if self._recv.poll(0.1):
                try:
                    message = self._recv.recv()
                except EOFError:
                    break
                yield message
                if message[0] in ("done", "error"):
                    break
            elif not self.process.is_alive():
                # Drain what it sent just before exiting.
                while self._recv.poll(0):
                    try:
                        yield self._recv.recv()
                    except EOFError:
                        break
                break
        self.process.join(timeout=5)
        _running.discard(self)

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode
