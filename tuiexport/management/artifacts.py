"""Where the files of runs are: the configured store, and which stored file a run row names.

A run row's ``artifact_path`` is where its file is: a path in the artifacts folder (the
embedded default, or a folder every host mounts), a path outside it (``-o PATH``), or the
``s3://bucket/prefix/<key>`` of an object in the store ``artifacts_url`` names. A file in the
store is published by the row (``success``/``warning`` with ``artifact_kept``): there is no
rename in S3, each run's key is unique, and retention clears ``artifact_kept`` when it deletes
the object. So finding a published file in the store costs no request to the store.
"""

from __future__ import annotations

import contextlib
import re
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from tuiexport import config
from tuiexport.management import liveness, runs
from tuiexport.management.views import RunView
from tuiexport.storage import ArtifactStore, SeekableReader, open_store

_lock = threading.Lock()
_opened: tuple[tuple[str, str], ArtifactStore] | None = None


def store() -> ArtifactStore:
    """The store of the current settings (opened once per ``artifacts_url`` and folder)."""
    global _opened
    settings = config.settings()
    wanted = (settings.artifacts_url, str(config.artifacts_dir()))
    with _lock:
        if _opened is None or _opened[0] != wanted:
            _opened = (wanted, open_store(wanted[0], local_root=Path(wanted[1])))
        return _opened[1]


def in_object_store() -> bool:
    """Whether runs keep their files in an object store (``artifacts_url``), not a folder."""
    return bool(config.settings().artifacts_url)


def location(key: str) -> str:
    """What a run row records as the place of the file at ``key`` of the store."""
    if in_object_store():
        return f"{store().location}/{key}"
    return str(config.artifacts_dir() / key)


def key_of(artifact_path: str | None) -> str | None:
    """The key in the configured object store that a row's ``artifact_path`` names; None for
    a file on disk, or an object of another store (``artifacts_url`` changed since)."""
    if not artifact_path or not artifact_path.startswith("s3://") or not in_object_store():
        return None
    prefix = store().location + "/"
    return artifact_path.removeprefix(prefix) if artifact_path.startswith(prefix) else None


@dataclass(frozen=True)
class StoredFile:
    """A run's published file in the object store, read through the server (or fetched by the
    client itself from a short-lived presigned URL)."""

    store: ArtifactStore
    key: str
    size: int

    def open(self) -> SeekableReader:
        """The file as a seekable reader (ranges read what they need from the store)."""
        return SeekableReader(lambda start: self.store.open(self.key, start), self.size)

    def read(self, limit: int) -> bytes | None:
        """All its bytes when it holds at most ``limit`` (a small file kept in memory)."""
        if self.size > limit:
            return None
        with self.store.open(self.key) as f:
            return f.read(limit + 1)

    def presigned_url(self, expires: int, disposition: str) -> str | None:
        return self.store.presigned_url(self.key, expires, disposition=disposition)


def find(run: RunView) -> Path | StoredFile | None:
    """The run's file: a path inside the artifacts folder that is there, or the published
    object in the store; None otherwise (see :func:`why_missing`).

    The one gate between the history and the files: a path from the database is resolved
    (symlinks too) and must lie under the artifacts folder, whatever the row says."""
    if not run.artifact_path:
        return None
    key = key_of(run.artifact_path)
    if key is not None:
        kept = run.artifact_kept or runs.file_kept(run.artifact_path)
        return StoredFile(store(), key, run.size or 0) if kept else None
    if run.artifact_path.startswith("s3://"):
        return None
    root = config.artifacts_dir().resolve()
    try:
        path = Path(run.artifact_path).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def present(artifact_path: str | None, kept: bool) -> bool:
    """Whether a kept run's file can be served from here (no request to an object store)."""
    if key_of(artifact_path) is not None:
        return kept
    return bool(artifact_path) and Path(artifact_path or "").is_file()


def why_missing(run: RunView) -> tuple[str, str]:
    """Why :func:`find` found no file for a finished run that had one: ``(kind, sentence)``,
    kind ``removed`` (retention, a discarded run, or deleted by hand), ``elsewhere`` (a file
    this server cannot reach: another host's folder, or another store) or ``outside``
    (``-o PATH``)."""
    path = run.artifact_path or ""
    kept = run.artifact_kept or (bool(path) and runs.file_kept(path))
    if not kept:
        keep = config.settings().keep_artifacts
        return "removed", (
            f"The file of run {run.log_id} was removed (only the newest {keep} per export are "
            "kept); start a new run."
        )
    if path.startswith("s3://"):
        return "elsewhere", (
            f"The file of run {run.log_id} is in another object store than this server's "
            "artifacts_url; serve it from a server configured with that store."
        )
    row = runs.by_log_id(run.source_log_id or run.log_id)
    if row is not None and row.host and row.host != liveness.HOST:
        return "elsewhere", (
            f"The file of run {run.log_id} was made on the host {row.host}, in its own "
            "artifacts folder, which this server cannot read; keep artifacts in shared storage "
            "(artifacts_url, or one folder mounted on every host)."
        )
    root = config.artifacts_dir().resolve()
    if not Path(path).resolve().is_relative_to(root):
        return "outside", (
            f"The file of run {run.log_id} was written outside the artifacts folder "
            "(tuiexport --run -o); the server does not serve it."
        )
    return "removed", (
        f"The file of run {run.log_id} is no longer in the artifacts folder (deleted outside "
        "tuiexport); start a new run."
    )


def delete(artifact_path: str) -> bool:
    """Delete a run's file from wherever it is (retention, a discarded run); False: none."""
    key = key_of(artifact_path)
    if key is not None:
        return store().delete(key)
    try:
        Path(artifact_path).unlink()
    except OSError:
        return False
    return True


def discard_partial(artifact_path: str, part: Path) -> None:
    """What a run that died left: its part file, and in the object store its pending upload."""
    with suppress(OSError):
        part.unlink()
    key = key_of(artifact_path)
    if key is not None:
        store().discard_partial(key)


def remove_orphan_parts() -> int:
    """Remove the part files in this host's artifacts folder (a run's part file or local spool,
    a fingerprint manifest's parts) of runs that are over: what a process killed here left when
    another host marked its run (that host cannot reach this disk). A part file whose name
    names no run, or a run still queued or running (the folder may be shared), stays. Called by
    the long-running processes (``tuiexport worker``, ``tuiexport serve``) when they start."""
    root = config.artifacts_dir()
    if not root.is_dir():
        return 0
    parts: dict[Path, set[str]] = {}
    for path in root.glob("*/*.part"):
        names = {t for t in re.split(r"[._]", path.name) if len(t) == 10 and t.isalnum()}
        if names:
            parts[path] = names
    if not parts:
        return 0
    known = {r.log_id: r.status for r in runs.by_log_ids(set().union(*parts.values()))}
    removed = 0
    for path, names in parts.items():
        statuses = [known[n] for n in names if n in known]
        if statuses and not any(s in runs.ACTIVE for s in statuses):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
