"""Pilot journeys through the TUI, each checking the screen and the database."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import Input

from tests.test_tui_helpers import (  # noqa: F401 - tui_db is a fixture
    BASE_URL,
    make_app,
    move_to,
    notifications,
    settle,
    sync,
    tui_db,
    until,
)
from tuiexport import service
from tuiexport.models import ExportDefinition, Run
from tuiexport.screens.dialogs import ConfirmScreen, UnsavedScreen
from tuiexport.screens.help import HelpScreen
from tuiexport.screens.run_details import RunDetailsScreen, details
from tuiexport.widgets.selection_editor import SelectionEditor

pytestmark = pytest.mark.usefixtures("tui_db")


def rendered(renderable) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def names(app) -> list[str]:
    return [v.name for v in app.screen.exports.definitions.views]


@sync
async def test_create_definition():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        screen = app.screen
        assert screen.exports.definitions.expanded is not None
        assert app.focused.id == "ed-name"
        await pilot.press(*"Nightly [ERP] feed")
        await pilot.press("ctrl+s")
        await settle(pilot)
        row = ExportDefinition.get(ExportDefinition.name == "Nightly [ERP] feed")
        assert row.selection_id is None
        assert "Nightly [ERP] feed" in names(app)
        assert screen.exports.definitions.expanded_view.name == "Nightly [ERP] feed"
        assert "No product selection" in rendered(screen.exports.editor.info_table())


@sync
async def test_selection_tab_create_save_assign():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Draft without selection")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("f4")  # edit selection: none assigned, so a new one
        await settle(pilot)
        editor = app.screen.query_one(SelectionEditor)
        assert app.screen.tabs.active != "exports-tab"
        editor.query_one("#sel-only_new").value = True
        editor.query_one("#sel-search", Input).value = "Maus"
        await pilot.pause(0.4)
        await settle(pilot)
        assert editor.count == service.count_products(
            service.Criteria(only_new=True, search="Maus")
        )
        assert "Selection:" in str(app.screen.tabs.get_tab(editor.parent.id).label)
        await pilot.press("f2")
        await settle(pilot)
        definition = service.get_definition("Draft without selection")
        assert definition.selection_id == editor.selection.id
        assert definition.valid
        assert service.get_selection(editor.selection.id).criteria.search == "Maus"
        assert any("Assigned to 'Draft without selection'" in n for n in notifications(app))
        assert not editor.dirty


@sync
async def test_download_adds_history_row_with_product_count():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await pilot.press("f5")
        await settle(pilot, 0.2)
        run = Run.select().where(Run.trigger == "tui").get()
        expected = service.count_products(
            service.get_selection(service.get_definition("Shop feed").selection_id).criteria
        )
        assert run.status == "success" and run.product_count == expected
        history = app.screen.exports.history
        assert history.runs[run.log_id].product_count == expected
        assert history.get_row_index(run.log_id) == 0  # newest first
        assert any(run.artifact_path in n for n in notifications(app))


@sync
async def test_share_copies_url():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Marketplace BMEcat")
        await pilot.press("f6")
        view = service.get_definition("Marketplace BMEcat")
        assert (
            app.clipboard
            == f"{BASE_URL}/api/v1/exports/{view.export_id}/download?token={view.share_token}"
        )
        assert any(app.clipboard in n for n in notifications(app))


@sync
async def test_invalid_definition_shows_reasons_and_refuses_download():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Draft without selection")
        await pilot.press("f5")
        await settle(pilot)
        assert Run.select().where(Run.trigger == "tui").count() == 0
        assert any("No product selection is assigned" in n for n in notifications(app))
        await pilot.press("enter")
        await settle(pilot)
        assert "No product selection is assigned" in rendered(
            app.screen.exports.editor.info_table()
        )


@sync
async def test_delete_asks_first():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Price and stock update")
        await pilot.press("delete")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert (
            ExportDefinition.select()
            .where(ExportDefinition.name == "Price and stock update")
            .exists()
        )
        await pilot.press("delete")
        await pilot.press("y")
        await settle(pilot)
        assert (
            not ExportDefinition.select()
            .where(ExportDefinition.name == "Price and stock update")
            .exists()
        )
        assert "Price and stock update" not in names(app)


@sync
async def test_sort_and_filter():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert names(app) == [v.name for v in service.list_definitions("name")]
        await pilot.press("f9")  # last run
        await settle(pilot)
        assert names(app) == [v.name for v in service.list_definitions("last_run")]
        assert names(app)[0] == "Developer dump [all]"
        await pilot.press("f9", "ctrl+o")  # created, then format
        await settle(pilot)
        assert names(app) == [v.name for v in service.list_definitions("format")]
        await pilot.press("slash", *"shop")
        await pilot.pause(0.3)
        await settle(pilot)
        assert names(app) == ["Shop feed"]
        await pilot.press("escape")
        assert app.screen.exports.definitions.rows_focused
        app.screen.query_one("#filter", Input).value = ""
        await pilot.press("m")  # a letter typed on the list starts the filter
        await pilot.pause(0.3)
        await settle(pilot)
        assert app.screen.query_one("#filter", Input).value == "m"
        assert set(names(app)) == {v.name for v in service.list_definitions(filter_text="m")}


@sync
async def test_run_details_and_copy():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("tab")
        assert app.focused is app.screen.exports.history
        await pilot.press("enter")
        assert isinstance(app.screen, RunDetailsScreen)
        assert app.screen.run.log_id == "LOG0000002"  # newest first
        text = rendered(details(app.screen.run))
        assert "15 of 20 products were left out" in text and "Gamma Großhandel" in text
        await pilot.press("l")
        assert app.clipboard == "LOG0000002"
        await pilot.press("p")
        assert app.clipboard == "/srv/exports/run2.zip"
        await pilot.press("escape")
        assert not isinstance(app.screen, RunDetailsScreen)


@sync
async def test_unsaved_selection_tab_asks_before_closing():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await pilot.press("f4")
        await settle(pilot)
        editor = app.screen.query_one(SelectionEditor)
        before = service.get_selection(editor.selection.id).criteria
        assert not editor.dirty
        editor.query_one("#sel-only_with_price").value = True
        await pilot.pause()
        assert editor.dirty
        await settle(pilot)  # the tab takes the focus a frame after it opens
        await pilot.press("f12")
        await until(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        assert isinstance(app.screen, UnsavedScreen)
        await pilot.press("c")
        assert app.screen.query(SelectionEditor)
        await pilot.press("f12")
        await until(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("d")
        await settle(pilot)
        assert not app.screen.query(SelectionEditor)
        assert app.screen.tabs.active == "exports-tab"
        assert service.get_selection(editor.selection.id).criteria == before


@sync
async def test_help_and_palette_list_the_actions():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        from tuiexport.screens.palette import ExportCommands

        provider = ExportCommands(app.screen)
        titles = [hit.text async for hit in provider.search("download")]
        assert "Download export" in titles


@sync
async def test_quit_with_unsaved_changes_asks():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("x")  # typed into the focused name field
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.is_running
        assert app.screen.exports.editor.dirty


@sync
async def test_escape_cancels_a_running_download(isolated_home):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await pilot.press("f5")
        assert app.screen.downloads.running
        await pilot.press("escape")  # the child process is still starting: it sees the cancel
        await settle(pilot, 0.2)
        run = Run.select().where(Run.trigger == "tui").get()
        assert run.status == "cancelled"
        assert any("cancelled" in n for n in notifications(app))
        assert not list((isolated_home / "downloads").glob("*.zip"))
        assert app.screen.exports.history.runs[run.log_id].status == "cancelled"


@sync
async def test_command_palette_opens_with_ctrl_p_and_f10():
    from textual.command import CommandPalette

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("ctrl+p", "f10"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert isinstance(app.screen, CommandPalette)
            await pilot.press("escape")
            await pilot.pause(0.1)
