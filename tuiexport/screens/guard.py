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
            except Exception as exc:
                report(self.app, exc)

        return async_wrapper

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            report(self.app, exc)

    return wrapper
