"""Database writes never run on the UI thread (issue 15).

Another process holding the SQLite write lock makes a save wait; the keys must keep working
meanwhile (typing included, which the save must not undo), and the save must finish (and say so)
once the lock is gone. A write that fails is a
notification, not a traceback.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.test_tui_helpers import (  # noqa: F401 - tui_db is a fixture
    make_app,
    move_to,
    notifications,
    settle,
    sync,
    tui_db,
    until,
)
from tuiexport import service
from tuiexport.models import ExportDefinition
from tuiexport.screens.command_log import CommandLogScreen
from tuiexport.screens.dialogs import ConfirmScreen
from tuiexport.screens.main import MainScreen


def stored_name(export_id: str) -> str:
    return ExportDefinition.get(ExportDefinition.export_id == export_id).name


@sync
async def test_a_save_waiting_for_the_database_does_not_freeze_the_keys(tui_db):  # noqa: F811 - the imported fixture
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        await move_to(pilot, "Shop feed")
        export_id = screen.exports.current().export_id
        await pilot.press("enter")
        await settle(pilot)
        assert app.focused.id == "ed-name"
        await pilot.press(*" EU")
        await pilot.pause(0.05)
        # Another program (here: a second connection) holds the write lock.
        other = sqlite3.connect(tui_db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            await pilot.press("ctrl+s")
            # Keys are handled while the save waits: the command log opens and closes, and
            # typing still reaches the name field.
            await pilot.press("ctrl+l")
            assert await until(pilot, lambda: isinstance(app.screen, CommandLogScreen))
            await pilot.press("escape")
            assert await until(pilot, lambda: isinstance(app.screen, MainScreen))
            assert app.focused.id == "ed-name"
            await pilot.press(*" 2")
            await pilot.pause(0.05)
            assert app.focused.value == "Shop feed EU 2"
            # Past a second the wait is said, not hidden.
            assert await until(
                pilot, lambda: any("waiting for the database" in n for n in notifications(app))
            )
            assert stored_name(export_id) == "Shop feed"
            assert not any(n.startswith("Saved") for n in notifications(app))
        finally:
            other.execute("ROLLBACK")
            other.close()
        # The lock is gone: the save completes and says so.
        assert await until(pilot, lambda: "Saved 'Shop feed EU'." in notifications(app), 10)
        assert stored_name(export_id) == "Shop feed EU"
        assert screen.exports.editor.view.name == "Shop feed EU"
        assert app.commands[-1].what == "Saved 'Shop feed EU'"
        # What was typed while it waited is kept, as an unsaved edit of the stored export.
        assert app.focused.value == "Shop feed EU 2"
        assert screen.exports.editor.changes() == {"name": "Shop feed EU 2"}


@pytest.mark.usefixtures("tui_db")
@sync
async def test_a_failed_write_is_a_notification():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        export_id = app.screen.exports.current().export_id
        await pilot.press("delete")
        assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        # Deleted elsewhere (the CLI, another TUI) while the question is on screen.
        service.delete_definition(export_id)
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert f"There is no export '{export_id}' (see 'tuiexport exports list')." in (
            notifications(app)
        )
        assert not any(n.startswith(("Deleted", "Unexpected")) for n in notifications(app))
