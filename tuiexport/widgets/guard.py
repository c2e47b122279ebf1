"""The one place that turns exceptions into notifications: never a traceback on screen."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from textual.app import App
from textual.dom import DOMNode

from tuiexport.errors import UserError

if TYPE_CHECKING:
    from textual.worker import Worker

    from tuiexport.app import ExportApp

log = logging.getLogger("tuiexport.tui")

#: What ``guarded`` decorates: an action or handler returning nothing (an error returns early).
_Handler = TypeVar("_Handler", bound=Callable[..., None] | Callable[..., Coroutine[Any, Any, None]])
_P = ParamSpec("_P")
_R = TypeVar("_R")
_Node = TypeVar("_Node", bound=DOMNode)


def report(app: App[Any], exc: BaseException) -> None:
    """Show an error as a notification: the sentence of a UserError, else the exception briefly."""
    if isinstance(exc, UserError):
        app.notify(str(exc), title="Cannot do that", severity="error", markup=False, timeout=8)
        return
    log.exception("unexpected error in the TUI", exc_info=exc)
    app.notify(
        f"Unexpected error: {type(exc).__name__}: {exc}",
        title="Error",
        severity="error",
        markup=False,
        timeout=10,
    )


def guarded(method: _Handler) -> _Handler:
    """Decorate an action or handler: any exception becomes a notification."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                await method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the one place every error ends up
                report(self.app, exc)

        return cast("_Handler", async_wrapper)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the one place every error ends up
            report(self.app, exc)

    return cast("_Handler", wrapper)


def background(
    group: str, *, exclusive: bool = True
) -> Callable[
    [Callable[Concatenate[_Node, _P], _R]], Callable[Concatenate[_Node, _P], Worker[_R | None]]
]:
    """``@work`` in a thread whose errors become notifications (Textual does not bubble a worker's
    state change, so every worker goes through here instead of a handler per widget)."""
    from textual import work

    def decorate(
        method: Callable[Concatenate[_Node, _P], _R],
    ) -> Callable[Concatenate[_Node, _P], Worker[_R | None]]:
        @functools.wraps(method)
        def run(self: _Node, *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the one place every error ends up
                try:
                    self.app.call_from_thread(report, self.app, exc)
                except RuntimeError:  # the app is closing
                    log.exception("error in a worker while the app closed", exc_info=exc)
                return None

        return work(thread=True, exclusive=exclusive, group=group, exit_on_error=False)(run)

    return decorate


#: One write at a time, in the order asked for: a save then a delete must not overtake each other.
_write_lock = threading.Lock()
#: After this long a write still waiting (another process holds the database) says so.
SLOW_WRITE_SECONDS = 1.0


def write_in_background(
    node: DOMNode,
    what: str,
    write: Callable[[], _R],
    done: Callable[[_R], None],
    failed: Callable[[], None] | None = None,
) -> Worker[None]:
    """Run ``write`` (a service call that changes the database) in a thread worker, never on the
    UI thread: a database held by another writer blocks that thread, not the keys. ``done(result)``
    then runs on the UI thread; an error in either becomes a notification (after which ``failed()``
    runs, on the UI thread too). ``what`` ("Saving
    'Shop feed'") is said when the write has waited longer than :data:`SLOW_WRITE_SECONDS`."""
    app = node.app
    finished = threading.Event()

    def say_waiting() -> None:
        if not finished.is_set():
            app.notify(f"{what}… (waiting for the database; keys keep working)", timeout=4)

    timer = node.set_timer(SLOW_WRITE_SECONDS, say_waiting)

    def on_ui_thread(callback: Callable[..., None], *args: Any) -> None:
        try:
            app.call_from_thread(callback, *args)
        except RuntimeError:  # the app is closing: nothing left to show it on
            log.warning("a write finished while the app closed: %s", what)

    def run_done(result: _R) -> None:
        timer.stop()
        try:
            done(result)
        except Exception as exc:  # noqa: BLE001 - the one place every error ends up
            report(app, exc)

    def run_failed(exc: Exception) -> None:
        timer.stop()
        report(app, exc)
        if failed is not None:
            failed()

    def run() -> None:
        try:
            with _write_lock:
                result = write()
        except Exception as exc:  # noqa: BLE001 - the one place every error ends up
            finished.set()
            on_ui_thread(run_failed, exc)
            return
        finished.set()
        on_ui_thread(run_done, result)

    return node.run_worker(
        run, name=what, group="writes", thread=True, exclusive=False, exit_on_error=False
    )


def refuse_read_only(app: ExportApp, what: str) -> bool:
    """In read-only mode: say that ``what`` is off and why, and return True."""
    if not getattr(app, "read_only", False):
        return False
    app.notify(
        f"{what[0].upper()}{what[1:]} is off: this TUI is read-only ({app.read_only_reason}).",
        title="Read-only",
        severity="warning",
        markup=False,
        timeout=6,
    )
    return True


def writes(what: str) -> Callable[[_Handler], _Handler]:
    """Decorate an action that changes stored data: in read-only mode it does nothing but say
    why. The key bar shows such actions dimmed there (it reads ``.writes``)."""

    def decorate(method: _Handler) -> _Handler:
        @functools.wraps(method)
        def refuse_or_run(self: Any, *args: Any, **kwargs: Any) -> Any:
            if refuse_read_only(self.app, what):
                return None
            return method(self, *args, **kwargs)

        refuse_or_run.writes = what  # type: ignore[attr-defined]
        return cast("_Handler", refuse_or_run)

    return decorate
