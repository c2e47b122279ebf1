"""Shared setup for the TUI tests: a real SQLite file with known, fixed content.

Export IDs, share tokens and timestamps are fixed so that snapshots do not change between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import time
from datetime import datetime, timedelta

import pytest

from tests import tiny_catalog
from tuiexport import config, service
from tuiexport.management import definitions as definitions_module
from tuiexport.models import ExportDefinition, Run, Selection
from tuiexport.selection import Criteria

CREATED = datetime(2026, 3, 2, 9, 30)
BASE_URL = "http://127.0.0.1:8421"


def _fixed_uuids():
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def _fixed_tokens():
    counter = itertools.count(1)
    return lambda nbytes=None: f"token{next(counter):03d}-fixed-for-tests-abcdefgh"


def build_tui_db(path, monkeypatch) -> None:
    """Open a database at ``path`` holding the tiny catalog, three selections, five definitions
    (one invalid) and two past runs, all with fixed IDs and times."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(definitions_module.uuid, "uuid4", _fixed_uuids())
    monkeypatch.setattr(definitions_module, "new_share_token", _fixed_tokens())
    monkeypatch.setattr(definitions_module, "_producer", lambda: "operator")
    service.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    partners = service.create_selection(Criteria(suppliers="partners", only_in_stock=True))
    everything = service.create_selection(Criteria(suppliers="all"), name="Whole catalog")
    service.create_selection(
        Criteria(suppliers="all", manufacturer_ids=[1], search="ThinkPad"),
        name="Lenovo [Büro] notebooks",
    )
    service.create_definition(
        "Shop feed", selection_id=partners.id, profile="standard", output="csv"
    )
    service.create_definition(
        "Price and stock update", selection_id=partners.id, profile="standardUpdate", output="json"
    )
    service.create_definition(
        "Marketplace BMEcat",
        selection_id=everything.id,
        profile="bmecat12",
        output="xml",
        language="en",
    )
    service.create_definition(
        "Developer dump [all]",
        selection_id=everything.id,
        profile="developer",
        output="json",
        product_limit=5,
    )
    service.create_definition("Draft without selection", profile="standard", output="xml")
    for i, row in enumerate(ExportDefinition.select().order_by(ExportDefinition.id)):
        row.created = row.updated = CREATED + timedelta(days=i)
        row.save()
    Selection.update(created=CREATED, updated=CREATED).execute()
    for i, (export_id, name, status, count) in enumerate(
        [
            ("00000000-0000-4000-8000-000000000001", "Shop feed", "success", 8),
            ("00000000-0000-4000-8000-000000000004", "Developer dump [all]", "warning", 5),
        ]
    ):
        started = CREATED + timedelta(days=10 + i, hours=2)
        Run.create(
            log_id=f"LOG{i + 1:07d}",
            export_id=export_id,
            export_name=name,
            trigger="cli",
            status=status,
            started=started,
            finished=started + timedelta(seconds=42),
            heartbeat=started,
            api_version="",
            profile="standard",
            output="csv",
            file_format="standard CSV (ZIP)",
            product_count=count,
            omitted_count=15 if status == "warning" else 0,
            size=12_345 * (i + 1),
            sha256="ab" * 32,
            artifact_path=f"/srv/exports/run{i + 1}.zip",
            artifact_kept=True,
            messages=[
                f"{count} products written.",
                *(["15 of 20 products were left out."] if i else []),
            ],
            supplier_shares={"Alpha Distribution": count - 2, "Gamma Großhandel": 2},
        )


@pytest.fixture
def tui_db(tmp_path, monkeypatch):
    pytest.importorskip("tuiexport.exporters.registry", reason="the exporters are not there yet")
    monkeypatch.delenv("TEXTUAL", raising=False)
    config.reset_settings()
    # A relative path: the status line shows "tui.sqlite", the same in every run (snapshots).
    monkeypatch.chdir(tmp_path)
    build_tui_db("tui.sqlite", monkeypatch)
    yield tmp_path / "tui.sqlite"
    service.close_database()


def sync(test):
    """Run an async test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


def make_app():
    from tuiexport.app import ExportApp

    return ExportApp(server_url=BASE_URL)


def notifications(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def settle(pilot, delay: float = 0.05) -> None:
    """Wait for every worker and the messages they post."""
    from textual.worker import WorkerCancelled, WorkerFailed

    for _ in range(3):
        # Superseded work is cancelled; failures show as notifications.
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause(delay)


def env_for_subprocess(home) -> dict:
    env = dict(os.environ, TUIEXPORT_HOME=str(home), TZ="UTC")
    env.pop("TUIEXPORT_DB", None)
    return env


async def type_keys(pilot, *keys: str) -> None:
    """One key, then the app settles, then the next: human speed, not one burst."""
    for key in keys:
        await pilot.press(key)
        await pilot.pause(0.05)
        await settle(pilot)


async def until(pilot, condition, seconds: float = 3.0) -> bool:
    """Give the app frames (bounded) to reach a state, e.g. a pushed modal or a loaded worker."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        await pilot.pause(0.02)
    return bool(condition())


async def move_to(pilot, name: str) -> None:
    """Put the definition list's cursor on the export called ``name``."""
    lst = pilot.app.screen.exports.definitions
    lst.move_cursor([v.name for v in lst.views].index(name))
    await settle(pilot)


def screen_text(app) -> str:
    """What the terminal shows now, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
