"""Errors a user sees: each carries one sentence and the CLI exit code it maps to."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an impossible request. ``str(exc)`` is one sentence that says what to do."""

    exit_code = 2
    http_status = 400


class NotFound(UserError):
    http_status = 404


class Conflict(UserError):
    http_status = 409


class InvalidDefinition(Conflict):
    """The export definition cannot run; ``reasons`` lists why."""

    def __init__(self, name: str, reasons: list[str]):
        self.reasons = reasons
        super().__init__(f"The export '{name}' is invalid: " + " ".join(reasons))


class RunFailed(UserError):
    """The run started but could not finish; the history entry says ``failed``."""

    exit_code = 1
    http_status = 500


class RunHeld(UserError):
    """The run finished but the publish gate held its file (issue 11): not published."""

    exit_code = 3
    http_status = 409


class DatabaseLost(UserError):
    """The database went away in the middle of something and did not come back in time."""

    exit_code = 1
    http_status = 503


class Busy(UserError):
    """Too many exports are running; try again later."""

    exit_code = 1
    http_status = 503


class Gone(UserError):
    """A delta's cursor the server no longer has a manifest for: fetch the full feed."""

    exit_code = 4
    http_status = 410
