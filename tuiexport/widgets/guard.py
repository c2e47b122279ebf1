"""The one place that turns exceptions into notifications: never a traceback on screen."""

from __future__ import annotations

import functools
import inspect
import logging

from textual.app import App

from tuiexport.errors import UserError

log = logging.getLogger("tuiexport.tui")


def report(app: App, exc: BaseException) -> None:
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


def guarded(method):
    """Decorate an action or handler: any exception becomes a notification."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self, *args, **kwargs):
            try:
                return await method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the one place every error ends up
                report(self.app, exc)

        return async_wrapper

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the one place every error ends up
            report(self.app, exc)

    return wrapper


def background(group: str, *, exclusive: bool = True):
    """``@work`` in a thread whose errors become notifications (Textual does not bubble a worker's
    state change, so every worker goes through here instead of a handler per widget)."""
    from textual import work

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the one place every error ends up
                try:
                    self.app.call_from_thread(report, self.app, exc)
                except RuntimeError:  # the app is closing
                    log.exception("error in a worker while the app closed", exc_info=exc)

        return work(thread=True, exclusive=exclusive, group=group, exit_on_error=False)(run)

    return decorate
