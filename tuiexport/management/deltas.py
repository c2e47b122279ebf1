"""Delta feeds and run diffs (issue 12): cursors, fingerprint manifests, what changed.

Every full run of an export whose writer fingerprints its records keeps a manifest
(:mod:`tuiexport.exporters.fingerprints`) in the export's artifacts folder, named by its log ID,
for as long as retention keeps the newest ``keep_artifacts`` runs (with ``artifacts_url``, also
beside the run's file in the object store, from where other hosts fetch it). A consumer's cursor is the
log ID of whatever it downloaded last — a run, a served download of a run, or a delta — and
stands for the full run whose state it has (:func:`state_run`). A delta compares that run's
manifest with the current run's and writes the added and changed products with the export's
own writer (``engine.run_delta``).

The runs table is written by :mod:`.runs` only; this module reads it and manages the files.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from tuiexport import config
from tuiexport.errors import Gone, NotFound, UserError
from tuiexport.exporters import fingerprints, registry
from tuiexport.management import artifacts, runs
from tuiexport.management.views import RunDiff
from tuiexport.models import Run
from tuiexport.storage import StorageError
from tuiexport.storage.local import LocalWriter

#: Puids of each kind a run diff shows as examples.
EXAMPLES = 5
SUFFIX = ".fingerprints"


def manifest_path(export_id: str, log_id: str) -> Path:
    """Where a run's manifest lives: the export's artifacts folder, whatever ``-o`` said."""
    return config.artifacts_dir() / export_id / f"{log_id}{SUFFIX}"


def _manifest_key(export_id: str, log_id: str) -> str:
    return f"{export_id}/{log_id}{SUFFIX}"


def manifest(export_id: str, log_id: str) -> Path | None:
    """A run's manifest on this host, if it has one. Where runs keep their files in an object
    store, the manifest is there too, beside the file (another host may have made the run):
    fetched once into the artifacts folder, which is then its cache on this host."""
    path = manifest_path(export_id, log_id)
    if path.is_file() or not artifacts.in_object_store():
        # missing, or made by an older version: no delta from it
        return path if fingerprints.current(path) else None
    store = artifacts.store()
    try:
        with store.open(_manifest_key(export_id, log_id)) as source, LocalWriter(path) as copy:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
            copy.commit()
    except (NotFound, StorageError):
        return None
    return path if fingerprints.current(path) else None


def store_manifest(export_id: str, log_id: str) -> None:
    """Put a finished run's manifest beside its file in the object store (before the run is
    published). Without it, other hosts answer a delta from this run with 410 (full feed)."""
    path = manifest_path(export_id, log_id)
    key = _manifest_key(export_id, log_id)
    with suppress(StorageError), open(path, "rb") as source, artifacts.store().create(key) as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
        out.commit()


def remove_stored_manifest(export_id: str, log_id: str) -> None:
    """Retention: the manifest of a run whose file was deleted from the object store."""
    with suppress(StorageError):
        artifacts.store().delete(_manifest_key(export_id, log_id))


def refusal(profile: str, output: str) -> str | None:
    """Why this pair answers no delta (None: it does)."""
    if registry.supports_delta(profile, output):
        return None
    if profile == "bmecat12":
        return (
            "BMEcat exports answer no deltas: a BMEcat 1.2 update (T_UPDATE_PRODUCTS) needs the "
            "official update schema, which tuiexport does not ship; fetch the full file "
            "(without since)."
        )
    return (
        f"{registry.file_format(profile, output)} exports answer no deltas; fetch the full file "
        "(without since), or use a CSV, JSON, JSON Lines or XML export."
    )


def state_run(row: Run) -> Run | None:
    """The full run whose state a consumer has after downloading ``row``: the run itself, the
    run a served download copied (same file, same SHA-256), or the run a delta brought them to."""
    if row.delta_base:
        return runs.by_log_id(row.delta_base)
    if row.outcome or not row.sha256:
        return row
    source: Run | None = (
        Run.select()
        .where(
            Run.export_id == row.export_id,
            Run.sha256 == row.sha256,
            Run.outcome != "",
            runs.FULL,
        )
        .order_by(Run.id.desc())
        .first()
    )
    return source


def gone(since: str) -> Gone:
    return Gone(
        f"There is no delta since {since}: that run is unknown, of another export or format, "
        "or older than the runs kept; fetch the full feed (without since) and keep its log ID "
        "(X-Log-Id) as the next cursor."
    )


def cursor(export_id: str, since: str, profile: str, output: str) -> tuple[str, Path]:
    """``since`` (a log ID this export answered with) as ``(log ID of its full run, manifest)``.
    Raises Gone when the server cannot answer a delta from it."""
    since = (since or "").strip().upper()
    row = runs.by_log_id(since)
    if row is None or row.export_id != export_id:
        raise gone(since)
    state = state_run(row)
    if state is None or (state.profile, state.output) != (profile, output):
        raise gone(since)
    path = manifest(export_id, state.log_id)
    if path is None:
        raise gone(since)
    return state.log_id, path


def _manifest_of(log_id: str) -> tuple[Run, Path]:
    row = runs.by_log_id((log_id or "").strip().upper())
    if row is None:
        raise NotFound(f"There is no run with log ID '{log_id}'.")
    state = state_run(row)
    path = manifest(row.export_id, state.log_id) if state is not None else None
    if state is None or path is None:
        reason = refusal(row.profile, row.output)
        raise UserError(
            f"The run {row.log_id} has no fingerprint manifest "
            + (
                "(its format keeps none); "
                if reason
                else "(it failed, is older than the runs kept, or predates this version's "
                "manifests); "
            )
            + "compare two kept runs of a CSV, JSON, JSON Lines or XML export."
        )
    return state, path


def run_diff(old: str, new: str) -> RunDiff:
    """Products added, removed and changed from run ``old`` to run ``new`` (of one export)."""
    a, path_a = _manifest_of(old)
    b, path_b = _manifest_of(new)
    if a.export_id != b.export_id:
        raise UserError(
            f"The runs {a.log_id} and {b.log_id} belong to different exports; compare two runs "
            "of the same export."
        )
    counts = {"added": 0, "removed": 0, "changed": 0}
    figures = 0
    examples: dict[str, list[int]] = {"added": [], "removed": [], "changed": []}
    for change in fingerprints.diff(path_a, path_b):
        counts[change.kind] += 1
        figures += change.figures
        if len(examples[change.kind]) < EXAMPLES:
            examples[change.kind].append(change.puid)
    return RunDiff(
        old=a.log_id,
        new=b.log_id,
        old_count=fingerprints.count(path_a),
        new_count=fingerprints.count(path_b),
        added=counts["added"],
        removed=counts["removed"],
        changed=counts["changed"],
        changed_figures=figures,
        shares_before=dict(a.supplier_shares),
        shares_after=dict(b.supplier_shares),
        examples=examples,
    )


def diff_with_previous(log_id: str) -> RunDiff | None:
    """A run against the export's run published before it (a held run: the one it would
    replace); None when either has no manifest."""
    row = runs.by_log_id((log_id or "").strip().upper())
    if row is None or row.delta_base:
        return None
    previous: Run | None = (
        Run.select()
        .where(
            Run.export_id == row.export_id,
            Run.id < row.id,
            Run.status.in_(["success", "warning"]),
            Run.outcome != "",
            runs.FULL,
        )
        .order_by(Run.id.desc())
        .first()
    )
    if previous is None:
        return None
    try:
        return run_diff(previous.log_id, row.log_id)
    except UserError:
        return None


def prune(export_id: str, keep: int) -> int:
    """Delete the manifests of all but the newest ``keep`` full runs (running and held ones
    and the published one always stay). Returns how many were deleted."""
    folder = config.artifacts_dir() / export_id
    if not folder.is_dir():
        return 0
    rows = runs.manifest_runs(export_id)
    published = runs.newest_complete_kept(export_id)
    wanted = {r.log_id for r in rows[: max(keep, 1)]}
    wanted |= {r.log_id for r in rows if r.status in ("held", "running")}
    if published is not None:
        wanted.add(published.log_id)
    removed = 0
    for path in folder.glob(f"*{SUFFIX}"):
        if path.name.removesuffix(SUFFIX) not in wanted:
            with suppress(OSError):
                path.unlink()
                removed += 1
    # The notes a run killed while writing left behind (<logId>.new, <logId>.new.<n>.part).
    running = {r.log_id for r in rows if r.status == "running"}
    for path in folder.glob("*.new*"):
        if path.name.split(".", 1)[0] not in running:
            with suppress(OSError):
                path.unlink()
    return removed
