"""The command log: what was done in the TUI, replayed through the real CLI, gives the same data."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys

import pytest
from textual.widgets import Input, OptionList

from tests.test_tui_helpers import make_app, move_to, settle, sync, tui_db, type_keys, until  # noqa: F401
from tuiexport.screens.command_log import CommandLogScreen
from tuiexport.screens.dialogs import ConfirmScreen
from tuiexport.widgets.selection_editor import SelectionEditor

pytestmark = pytest.mark.usefixtures("tui_db")


def snapshot(path) -> list[tuple]:
    """What an operator changes, per definition (IDs and tokens are random, so not compared)."""
    con = sqlite3.connect(path)
    rows = con.execute(
        "SELECT d.name, d.profile, d.output, d.language, d.long_descriptions, d.product_limit, "
        "d.options, s.name, s.criteria FROM export_definition d "
        "LEFT JOIN selection s ON s.id = d.selection_id ORDER BY d.name"
    ).fetchall()
    con.close()
    return [(*r[:7], r[7], json.loads(r[8]) if r[8] else None) for r in rows]


def tokens(path) -> dict[str, str]:
    con = sqlite3.connect(path)
    # Each export's first share link's token: its share URL (issue 12 gave exports named links).
    found = dict(
        con.execute(
            "SELECT d.name, l.token FROM export_definition d JOIN share_link l "
            "ON l.export_id = d.export_id AND l.revoked IS NULL "
            "AND l.id = (SELECT MIN(id) FROM share_link WHERE export_id = d.export_id)"
        ).fetchall()
    )
    con.close()
    return found


@sync
async def test_every_action_has_a_command_that_does_the_same(tui_db, tmp_path):  # noqa: F811 - the imported fixture
    pristine = tmp_path / "replay.sqlite"
    with sqlite3.connect(tui_db) as src, sqlite3.connect(pristine) as dst:
        src.backup(dst)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        # A new export, renamed and switched to JSON Lines, no long texts.
        await type_keys(pilot, "ctrl+n")
        await type_keys(pilot, *"Replay feed")
        screen = app.screen
        screen.query_one("#ed-format").value = ("standard", "jsonl")
        screen.query_one("#ed-long").value = False
        await type_keys(pilot, "ctrl+s", "escape")
        # A new selection for the draft, assigned on save.
        await move_to(pilot, "Draft without selection")
        await type_keys(pilot, "enter", "f4")
        await until(pilot, lambda: bool(screen.query(SelectionEditor)))
        editor = screen.query_one(SelectionEditor)
        editor.query_one("#sel-only_new").value = True
        editor.query_one("#sel-search", Input).value = "Maus"
        await pilot.pause(0.4)
        await type_keys(pilot, "ctrl+s", "f12")  # (ctrl+w in a text field deletes a word)
        # Excel on the shop feed, a new token for the BMEcat, one export deleted.
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter")
        screen.query_one("#ed-excel").value = True
        await type_keys(pilot, "ctrl+s", "escape")
        await move_to(pilot, "Marketplace BMEcat")
        await type_keys(pilot, "f7")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await type_keys(pilot, "y")
        await move_to(pilot, "Price and stock update")
        await type_keys(pilot, "f8")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await type_keys(pilot, "y")
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f6")
        # One key away, newest first; Enter copies the command.
        await type_keys(pilot, "ctrl+l")
        assert isinstance(app.screen, CommandLogScreen)
        assert app.screen.query_one(OptionList).option_count == len(app.commands)
        await type_keys(pilot, "enter")
        assert app.clipboard == app.commands[-1].command
        assert app.clipboard.startswith("curl -fROJ 'http://127.0.0.1:8421/api/v1/exports/")
        await type_keys(pilot, "escape")
        commands = [entry.command for entry in app.commands]
    tui_tokens = tokens(tui_db)

    env = {**os.environ, "TUIEXPORT_DB": str(pristine)}
    before = tokens(pristine)
    for command in commands:
        argv = shlex.split(command)
        if argv[0] == "curl":
            continue
        assert argv[0] == "tuiexport"
        done = subprocess.run(
            [sys.executable, "-m", "tuiexport", *argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
    assert snapshot(pristine) == snapshot(tui_db)
    assert tokens(pristine)["Marketplace BMEcat"] != before["Marketplace BMEcat"]
    assert tui_tokens["Marketplace BMEcat"] != before["Marketplace BMEcat"]
