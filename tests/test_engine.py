"""Running exports: history entries, atomic files, limits, retention, cancellation, refusals."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from tests import tiny_catalog
from tuiexport import config, service
from tuiexport.errors import InvalidDefinition, UserError
from tuiexport.models import Run
from tuiexport.selection import Criteria


@pytest.fixture
def feed(empty_db):
    tiny_catalog.build()
    s = service.create_selection(Criteria(suppliers="all"), name="All")
    return service.create_definition("Feed", selection_id=s.id, profile="standard", output="jsonl")


def lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_a_run_is_recorded_and_its_file_is_whole(feed, isolated_home):
    run = service.run_export(feed.export_id, trigger="cli")
    assert run.status == "success", run.messages
    assert run.product_count == 20 and run.omitted_count == 0
    path = Path(run.artifact_path)
    assert path.is_file() and path.is_relative_to(isolated_home / "artifacts")
    data = path.read_bytes()
    assert run.size == len(data)
    assert run.sha256 == hashlib.sha256(data).hexdigest()
    assert [p["puid"] for p in lines(run.artifact_path)] == list(range(1001, 1021))
    assert not list(path.parent.glob(".*.part")), "no temporary file may remain"
    assert len(run.log_id) == 10 and run.log_id.isalnum()
    history = service.list_history()
    assert [(h.log_id, h.status, h.trigger, h.export_name) for h in history] == [
        (run.log_id, "success", "cli", "Feed")
    ]
    assert run.file_format == "standard JSON Lines"
    assert sum(run.supplier_shares.values()) >= 19


def test_limit_cuts_first_n_by_puid_with_warning(feed):
    service.update_definition(feed.export_id, product_limit=5)
    run = service.run_export(feed.export_id)
    assert run.status == "warning"
    assert run.product_count == 5 and run.omitted_count == 15
    assert [p["puid"] for p in lines(run.artifact_path)] == [1001, 1002, 1003, 1004, 1005]
    assert any("15 of 20 products were left out" in m and "limit of 5" in m for m in run.messages)


def test_invalid_definition_refuses_and_records_nothing(feed):
    bad = service.create_definition("Draft")
    with pytest.raises(InvalidDefinition, match="No product selection is assigned"):
        service.run_export(bad.export_id)
    assert service.count_history() == 0


def test_retention_keeps_last_k_artifacts_and_every_row(feed, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_KEEP_ARTIFACTS", "2")
    config.reset_settings()
    runs = [service.run_export(feed.export_id) for _ in range(4)]
    kept = [Path(r.artifact_path).exists() for r in runs]
    assert kept == [False, False, True, True]
    assert [r.artifact_kept for r in reversed(service.list_history())] == kept
    assert service.count_history() == 4


def test_cancel_leaves_previous_artifact_and_no_partial(feed):
    first = service.run_export(feed.export_id)
    cancel = threading.Event()
    cancel.set()
    run = service.run_export(feed.export_id, cancel=cancel)
    assert run.status == "cancelled"
    assert not Path(run.artifact_path).exists()
    assert Path(first.artifact_path).read_bytes()  # untouched
    assert not list(Path(first.artifact_path).parent.glob(".*.part"))


def test_progress_reports_reach_the_total(feed):
    seen = []
    service.run_export(feed.export_id, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 20)
    assert seen[-1][1] == 20


def test_output_path_checks_happen_before_the_run(feed, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        service.run_export(feed.export_id, output_path=tmp_path / "missing" / "x.jsonl")
    assert service.count_history() == 0
    run = service.run_export(feed.export_id, output_path=tmp_path)
    assert Path(run.artifact_path).parent == tmp_path
    assert Path(run.artifact_path).name.startswith("Feed_") and run.artifact_path.endswith(".jsonl")


def test_interrupted_runs_are_detected_at_next_start(feed, isolated_home):
    prepared = service.begin_run(feed.export_id)
    prepared.part_path.parent.mkdir(parents=True, exist_ok=True)
    prepared.part_path.write_bytes(b"half")
    Run.update(pid=2**22 + 12345).where(Run.log_id == prepared.log_id).execute()  # a dead process
    assert service.mark_interrupted() == 1
    run = service.get_run(prepared.log_id)
    assert run.status == "interrupted"
    assert "ended before it finished" in run.messages[-1]
    assert not prepared.part_path.exists()


def test_a_live_run_of_this_process_is_not_interrupted(feed):
    service.begin_run(feed.export_id)
    assert service.mark_interrupted() == 0


def test_reusable_artifact_only_while_nothing_changed(feed):
    assert service.reusable_artifact(feed.export_id) is None
    run = service.run_export(feed.export_id)
    assert service.reusable_artifact(feed.export_id).log_id == run.log_id
    service.update_definition(feed.export_id, language="en")
    assert service.reusable_artifact(feed.export_id) is None
    run = service.run_export(feed.export_id)
    assert service.reusable_artifact(feed.export_id).log_id == run.log_id
    from tuiexport.schema import bump_catalog_version

    bump_catalog_version()
    assert service.reusable_artifact(feed.export_id) is None
