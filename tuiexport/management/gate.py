"""The publish gate (issue 11): a run whose file is complete but far smaller than the export's
last published run is ``held`` instead of published, until an operator approves or discards it.

The limits are export options (:class:`~tuiexport.exporters.base.ExportOptions`:
``gate_product_drop``, ``gate_size_drop``, ``gate_hold_empty``). A held run's file is kept
(inside the artifacts folder at its own path; for ``-o PATH`` beside the path, see
:func:`held_path`), never served: share URLs go on serving the last published artifact
(``engine.reusable_artifact``) and retention never removes either file (``engine.apply_retention``).
Approving makes the held file the current artifact (the run becomes ``success`` or ``warning``,
what it would have been); discarding deletes it (``discarded``). Every decision is a message in
the run's history. The rows are written by :mod:`.runs`, as every write of the runs table.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from tuiexport.errors import Conflict
from tuiexport.exporters.base import ExportOptions
from tuiexport.management import artifacts, runs
from tuiexport.management.history import get_run
from tuiexport.management.views import RunView
from tuiexport.models import Run, utcnow
from tuiexport.storage import StorageError
from tuiexport.units import file_size


def check(
    export_id: str, options: ExportOptions, product_count: int, size: int
) -> tuple[list[str], str | None]:
    """Why a complete file must not be published (empty: it may), and the log ID of the run it
    was compared with. The first run of an export (nothing published yet) is never held."""
    previous = runs.last_published(export_id)
    if previous is None:
        return [], None
    reasons: list[str] = []
    before = previous.product_count or 0
    if product_count == 0 and options.gate_hold_empty:
        reasons.append(
            f"0 products, run {previous.log_id} had {before:,}; an empty file is never "
            "published without approval (option gate_hold_empty)."
        )
    elif options.gate_product_drop is not None and before > 0:
        drop = (before - product_count) * 100 / before
        if drop > options.gate_product_drop:
            reasons.append(
                f"{product_count:,} products, {_percent(drop, options.gate_product_drop)} fewer "
                f"than run {previous.log_id} ({before:,}); the limit is "
                f"{options.gate_product_drop:g} % (option gate_product_drop)."
            )
    old_size = previous.size or 0
    if options.gate_size_drop is not None and old_size > 0:
        drop = (old_size - size) * 100 / old_size
        if drop > options.gate_size_drop:
            reasons.append(
                f"{file_size(size)}, {_percent(drop, options.gate_size_drop)} smaller than run "
                f"{previous.log_id} ({file_size(old_size)}); the limit is "
                f"{options.gate_size_drop:g} % (option gate_size_drop)."
            )
    return reasons, previous.log_id


def may_hold(export_id: str, options: ExportOptions) -> bool:
    """Whether :func:`check` could hold the export's next run: it has a published run to
    compare with and at least one limit set."""
    limits = (
        options.gate_product_drop is not None
        or options.gate_size_drop is not None
        or options.gate_hold_empty
    )
    return limits and runs.last_published(export_id) is not None


def _percent(drop: float, limit: float) -> str:
    """``62 %``; one decimal where the whole number would read as the limit itself."""
    whole = f"{drop:.0f}"
    return f"{drop:.1f} %" if float(whole) <= limit else f"{whole} %"


def held_message(log_id: str) -> str:
    return (
        "Held by the publish gate: the file is kept but not published (share URLs go on "
        "serving the previous artifact). Approve it to publish it, or discard it: "
        f"'tuiexport history approve {log_id}' or 'tuiexport history discard {log_id}', the "
        "run's details in the TUI, or POST /api/v1/runs/{logId}/approve|discard."
    )


def held_path(target: Path, log_id: str, inside_artifacts: bool) -> Path:
    """Where a held run's file waits: in the artifacts folder its own path (unique per run, and
    nothing serves a held run); for ``-o PATH`` beside the path, so that the file there stays
    the previous one until the run is approved."""
    if inside_artifacts:
        return target
    return target.with_name(f"{target.name}.held-{log_id}")


def _held(log_id: str) -> Run:
    run = get_run(log_id)  # NotFound: "There is no run with log ID …"
    row = runs.by_log_id(run.log_id)
    assert row is not None
    if row.status != "held":
        raise Conflict(
            f"The run {row.log_id} is not held (its status is {row.status}); only a held run "
            "can be approved or discarded."
        )
    return row


def approve(log_id: str, by: str = "cli") -> RunView:
    """Publish a held run's file: it becomes the export's current artifact (for ``-o PATH`` it
    replaces the file at the path). The run becomes what it would have been (success/warning)."""
    row = _held(log_id)
    status = row.outcome if row.outcome in ("success", "warning") else "success"
    key = artifacts.key_of(row.artifact_path)
    if key is not None:  # in the object store: publishing is the row's change alone
        if artifacts.store().stat(key) is None:
            raise Conflict(
                f"The file of the held run {row.log_id} ({row.artifact_path}) is gone; discard "
                "the run instead."
            )
        message = (
            f"Approved ({by}, {utcnow():%Y-%m-%d %H:%M:%S} UTC): published; "
            f"{row.artifact_path} is the export's current file."
        )
        if not runs.settle_held(row.id, status, message):
            raise Conflict(f"The run {row.log_id} was decided by someone else meanwhile.")
        return get_run(row.log_id)
    source = Path(row.artifact_path or "")
    target = source.with_name(source.name.removesuffix(f".held-{row.log_id}"))
    if not source.is_file():
        raise Conflict(
            f"The file of the held run {row.log_id} ({source}) is gone; discard the run instead."
        )
    if source != target:
        try:
            os.replace(source, target)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise Conflict(f"Could not publish {source} as {target}: {reason}.") from None
    message = (
        f"Approved ({by}, {utcnow():%Y-%m-%d %H:%M:%S} UTC): published; {target} is the "
        "export's current file."
    )
    if not runs.settle_held(row.id, status, message, artifact_path=str(target)):
        raise Conflict(f"The run {row.log_id} was decided by someone else meanwhile.")
    return get_run(row.log_id)


def discard(log_id: str, by: str = "cli") -> RunView:
    """Refuse a held run: its file is deleted; the previous artifact goes on serving."""
    row = _held(log_id)
    previous = runs.last_published(row.export_id)
    message = f"Discarded ({by}, {utcnow():%Y-%m-%d %H:%M:%S} UTC): the file was deleted" + (
        f"; run {previous.log_id} stays the export's current file." if previous else "."
    )
    if not runs.settle_held(row.id, "discarded", message, artifact_kept=False):
        raise Conflict(f"The run {row.log_id} was decided by someone else meanwhile.")
    with suppress(StorageError):  # an object left behind is never served (the row says so)
        artifacts.delete(row.artifact_path or "")
    return get_run(row.log_id)
