"""The run history: every run, however started."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path

from tuiexport.db import database
from tuiexport.errors import NotFound
from tuiexport.management.views import RunView
from tuiexport.models import Run, utcnow

STATUSES = ("running", "success", "warning", "failed", "cancelled", "interrupted")
#: A run on another host whose heartbeat is older than this is considered dead.
STALE_AFTER = timedelta(minutes=10)
HOST = socket.gethostname()


def view(row: Run) -> RunView:
    return RunView(
        log_id=row.log_id,
        export_id=row.export_id,
        export_name=row.export_name,
        trigger=row.trigger,
        status=row.status,
        started=row.started,
        finished=row.finished,
        api_version=row.api_version,
        profile=row.profile,
        output=row.output,
        file_format=row.file_format,
        product_count=row.product_count,
        omitted_count=row.omitted_count,
        size=row.size,
        sha256=row.sha256,
        artifact_path=row.artifact_path,
        artifact_kept=row.artifact_kept,
        messages=json.loads(row.messages or "[]"),
        supplier_shares=json.loads(row.supplier_shares or "{}"),
    )


def list_history(
    limit: int = 200, offset: int = 0, *, export_id: str | None = None, status: str | None = None
) -> list[RunView]:
    """Runs, newest first."""
    query = Run.select()
    if export_id:
        query = query.where(Run.export_id == export_id)
    if status:
        query = query.where(Run.status == status)
    return [view(r) for r in query.order_by(Run.id.desc()).limit(limit).offset(offset)]


def count_history(export_id: str | None = None) -> int:
    query = Run.select()
    if export_id:
        query = query.where(Run.export_id == export_id)
    return query.count()


def get_run(log_id: str) -> RunView:
    row = Run.get_or_none(Run.log_id == (log_id or "").strip().upper())
    if row is None:
        raise NotFound(f"There is no run with log ID '{log_id}'.")
    return view(row)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted() -> int:
    """Mark runs whose process died as ``interrupted`` and remove their partial files.

    Called at every start (CLI, server, TUI). A run of this host is dead when its process is gone;
    a run of another host when its heartbeat is stale."""
    dead = []
    stale = utcnow() - STALE_AFTER
    for row in Run.select().where(Run.status == "running"):
        if (row.host == HOST and not _alive(row.pid)) or (row.host != HOST and row.heartbeat < stale):
            dead.append(row)
    for row in dead:
        with database.atomic():
            fresh = Run.get_by_id(row.id)
            if fresh.status != "running":
                continue
            messages = json.loads(fresh.messages or "[]")
            messages.append("The process running this export ended before it finished.")
            fresh.status = "interrupted"
            fresh.finished = fresh.heartbeat
            fresh.messages = json.dumps(messages)
            fresh.save()
        if row.artifact_path:
            remove_partial(Path(row.artifact_path), row.log_id)
    return len(dead)


def part_path(target: Path, log_id: str) -> Path:
    """The temporary file a run writes beside its target before the atomic rename."""
    return target.with_name(f".{target.name}.{log_id}.part")


def remove_partial(target: Path, log_id: str) -> None:
    try:
        part_path(target, log_id).unlink()
    except OSError:
        pass
