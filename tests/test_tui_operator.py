"""Operator journeys (issue: tabs always reachable, filtering that types, readable history).

Keys are pressed one at a time with a pause between them, as a person types; each test checks
what is on screen (focus, active tab, widths) and, where it matters, the database.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.test_tui_helpers import (  # noqa: F401 - tui_db is a fixture
    make_app,
    move_to,
    notifications,
    screen_text,
    settle,
    sync,
    tui_db,
    type_keys,
    until,
)
from tuiexport import service
from tuiexport.models import ExportDefinition
from tuiexport.widgets.definition_list import DefinitionRows
from tuiexport.widgets.selection_editor import SelectionEditor

pytestmark = pytest.mark.usefixtures("tui_db")

EXPORTS = "exports-tab"


def focus_in_active_pane(app) -> bool:
    tabs = app.screen.tabs
    pane = tabs.active_pane
    return app.focused is not None and pane is not None and pane in app.focused.ancestors


@sync
async def test_selection_tab_reachable_again_from_the_list():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f4")
        assert await until(pilot, lambda: screen.tabs.active != EXPORTS)
        selection_pane = screen.tabs.active
        assert await until(pilot, lambda: focus_in_active_pane(app))
        # Back to the exports: the list has the focus, arrows work at once.
        await type_keys(pilot, "ctrl+pageup")
        assert screen.tabs.active == EXPORTS
        assert isinstance(app.focused, DefinitionRows)
        # Every way back into the open selection tab must land there, focus included.
        for key in ("right_square_bracket", "ctrl+pagedown"):
            await type_keys(pilot, key)
            assert screen.tabs.active == selection_pane, key
            assert focus_in_active_pane(app), key
            # In the tab the focus is in a text field, where "[" is text: ctrl+pageup goes back.
            await type_keys(pilot, "ctrl+pageup")
            assert screen.tabs.active == EXPORTS
            assert isinstance(app.focused, DefinitionRows)
        # e / F4 on the definition whose selection is open switches to that tab.
        await type_keys(pilot, "f4")
        assert screen.tabs.active == selection_pane
        assert focus_in_active_pane(app)
        # From a check list inside the selection tab, too.
        editor = screen.query_one(SelectionEditor)
        checklists = [
            w for w in editor.query("*") if w.can_focus and "check" in type(w).__name__.lower()
        ]
        if checklists:
            checklists[0].focus()
            await settle(pilot)
            await type_keys(pilot, "ctrl+pageup")
            assert screen.tabs.active == EXPORTS
            await type_keys(pilot, "ctrl+pagedown")
            assert screen.tabs.active == selection_pane


@sync
async def test_typing_a_name_on_the_list_filters_and_fires_no_command():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        before = ExportDefinition.select().count()
        await type_keys(pilot, *"shop")
        await pilot.pause(0.3)
        await settle(pilot)
        assert screen.query_one("#filter", Input).value == "shop"
        assert [v.name for v in screen.exports.definitions.views] == ["Shop feed"]
        # Letters that were commands ("d" download, "e" selection, "n" new, "q" quit) are text.
        screen.query_one("#filter", Input).value = ""
        await type_keys(pilot, "escape")
        assert isinstance(app.focused, DefinitionRows)
        await type_keys(pilot, *"dev")
        assert screen.query_one("#filter", Input).value == "dev"
        await type_keys(pilot, "escape")
        screen.query_one("#filter", Input).value = ""
        await type_keys(pilot, *"quint")
        assert app.is_running
        assert screen.query_one("#filter", Input).value == "quint"
        assert not screen.downloads.running
        assert screen.tabs.active == EXPORTS
        assert ExportDefinition.select().count() == before


@sync
async def test_history_readable_at_80x24_when_focused():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        history = screen.exports.history
        assert history.size.width < 40  # the definitions have the width while focused
        await type_keys(pilot, "tab")
        assert app.focused is history
        await settle(pilot)
        assert history.size.width >= 76
        assert not screen.query_one("#definitions-pane").display
        text = screen_text(app)
        for column in ("Status", "Date", "Name", "Products"):
            assert column in text, column
        await type_keys(pilot, "tab")
        assert isinstance(app.focused, DefinitionRows)
        assert screen.query_one("#definitions-pane").display
        assert history.size.width < 40


@sync
async def test_history_shows_every_main_column_at_160x48():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        for column in ("Status", "Date", "Name", "Products", "File format", "API"):
            assert column in text, column
        definitions = app.screen.query_one("#definitions-pane")
        assert definitions.size.width <= 64  # no 30 empty columns beside short rows


@sync
async def test_new_twice_and_duplicate_names():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_keys(pilot, "ctrl+n")
        await type_keys(pilot, "escape")
        await type_keys(pilot, "ctrl+n")
        await settle(pilot)
        drafts = [
            n
            for (n,) in ExportDefinition.select(ExportDefinition.name).tuples()
            if n.startswith("New export")
        ]
        assert sorted(drafts) == ["New export", "New export 2"]
        # Renaming to a name another export has (other case, extra blanks) is refused.
        name = app.screen.query_one("#ed-name", Input)
        name.value = "  shop   FEED "
        await type_keys(pilot, "ctrl+s")
        assert any("exists already" in n for n in notifications(app))
        assert not ExportDefinition.select().where(ExportDefinition.name == "shop FEED").exists()


@sync
async def test_enter_opens_with_the_cursor_after_the_name():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter")
        name = app.screen.query_one("#ed-name", Input)
        assert app.focused is name
        await type_keys(pilot, "space", *"EU")
        assert name.value == "Shop feed EU"


@sync
async def test_space_checks_the_first_match_of_a_filtered_checklist():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Draft without selection")
        await type_keys(pilot, "f4")
        assert await until(pilot, lambda: bool(app.screen.query(SelectionEditor)))
        checklist = app.screen.query_one("#sel-manufacturers")
        checklist.query_one(Input).focus()
        await settle(pilot)
        await type_keys(pilot, *"logi", "enter")
        await type_keys(pilot, "space")
        assert checklist.values == [3]


@sync
async def test_key_bar_tab_into_editor_and_remove_selection_key():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one("KeyBar")
        line = str(bar.render())
        assert "Help" in line and "Commands" in line
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter", "escape")
        assert isinstance(app.focused, DefinitionRows)
        await type_keys(pilot, "enter")
        app.screen.exports.definitions.focus()
        await settle(pilot)
        await type_keys(pilot, "tab")
        assert app.focused is app.screen.query_one("#ed-name", Input)
        await type_keys(pilot, "ctrl+x")
        assert app.screen.exports.editor.selection_id is None
        await type_keys(pilot, "ctrl+s")
        assert service.get_definition("Shop feed").selection_id is None


@sync
async def test_invalid_selection_is_saved_with_its_reasons_shown():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f4")
        assert await until(pilot, lambda: bool(app.screen.query(SelectionEditor)))
        editor = app.screen.query_one(SelectionEditor)
        editor.query_one("#sel-price_min", Input).value = "500"
        editor.query_one("#sel-price_max", Input).value = "100"
        await pilot.pause(0.4)
        await type_keys(pilot, "ctrl+s")
        warning = [n for n in app._notifications if "invalid" in str(n.message)]
        assert warning and warning[-1].severity == "warning"
        assert "minimum price 500 is above the maximum 100" in str(warning[-1].message)
        assert not service.get_definition("Shop feed").valid


@sync
async def test_excel_variant_visible_and_saved_for_csv():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter")
        excel = app.screen.query_one("#ed-excel")
        assert excel.display
        excel.value = True
        await type_keys(pilot, "ctrl+s")
        assert service.get_definition("Shop feed").options == {"csv_variant": "excel"}
        await type_keys(pilot, "escape")
        await move_to(pilot, "Marketplace BMEcat")
        await type_keys(pilot, "enter")
        assert not app.screen.query_one("#ed-excel").display


@sync
async def test_selection_tab_shows_what_saving_would_change():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f4")
        assert await until(pilot, lambda: bool(app.screen.query(SelectionEditor)))
        editor = app.screen.query_one(SelectionEditor)
        impact = editor.query_one("#sel-impact")
        await settle(pilot)
        assert not impact.display  # nothing changed yet
        editor.query_one("#sel-only_new").value = True
        await pilot.pause(0.5)
        await settle(pilot)
        assert await until(pilot, lambda: impact.display)
        shown = str(impact.render())
        saved = service.get_selection(editor.selection.id).criteria
        lost = service.count_products(saved) - service.count_products(editor.criteria())
        assert f"−{lost:,} lost" in shown and "+0 gained" in shown
        # Both exports that use it, with their count against the limit.
        assert "Price and stock update" in shown and "Shop feed" in shown
        assert "→" in shown
        # Nothing was saved meanwhile.
        assert service.get_selection(editor.selection.id).criteria == saved


@sync
async def test_selection_impact_says_it_is_computing_and_restarts_on_each_edit(monkeypatch):
    """At 1M products the impact takes seconds: the panel says it is being worked out (with
    the seconds so far), and an edit meanwhile drops the old computation for the new rules."""
    import threading

    from tuiexport.widgets import selection_editor as module

    gate, calls = threading.Event(), []
    real = service.selection_impact

    def slow_impact(*args, **kwargs):  # the real computation, held until the test lets it go
        calls.append(args[1])
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(module.service, "selection_impact", slow_impact)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f4")
        assert await until(pilot, lambda: bool(app.screen.query(SelectionEditor)))
        editor = app.screen.query_one(SelectionEditor)
        impact = editor.query_one("#sel-impact")
        assert await until(pilot, lambda: editor.count is not None)
        editor.query_one("#sel-only_new").value = True
        assert await until(pilot, lambda: "working out what it changes" in str(impact.render()))
        assert impact.display and len(calls) == 1
        # Another edit while the first impact is still being worked out.
        editor.query_one("#sel-only_with_price").value = True
        assert await until(pilot, lambda: len(calls) == 2)
        assert "working out what it changes" in str(impact.render())
        gate.set()
        await settle(pilot)
        shown = str(impact.render())
        saved = service.get_selection(editor.selection.id).criteria
        lost = service.count_products(saved) - service.count_products(editor.criteria())
        assert f"−{lost:,} lost" in shown, shown  # for the rules on screen, not the first edit
        assert "working out" not in shown


@sync
async def test_run_details_and_editor_plot_the_last_runs():
    from tuiexport.screens.run_details import RunDetailsScreen
    from tuiexport.widgets.run_trends import CountSparkline, RunTrends

    app = make_app()
    async with app.run_test(size=(100, 34)) as pilot:
        await settle(pilot)
        await type_keys(pilot, "tab", "enter")
        assert isinstance(app.screen, RunDetailsScreen)
        trends = app.screen.query_one(RunTrends)
        assert await until(pilot, lambda: bool(trends.runs))
        run = app.screen.run
        expected = [
            r.product_count
            for r in reversed(service.list_history(export_id=run.export_id))
            if r.status in ("success", "warning")
        ]
        assert [r.product_count for r in trends.runs] == expected
        assert "● this one" in trends.border_title
        await type_keys(pilot, "escape", "tab")
        await move_to(pilot, run.export_name)
        await type_keys(pilot, "enter")
        spark = app.screen.query_one(CountSparkline)
        assert await until(pilot, lambda: list(spark.data) == [float(c) for c in expected])


async def tab_to(pilot, widget_id: str, presses: int = 30) -> None:
    """Press tab, one key at a time, until ``widget_id`` has the focus."""
    for _ in range(presses):
        if pilot.app.focused is not None and pilot.app.focused.id == widget_id:
            return
        await type_keys(pilot, "tab")
    raise AssertionError(f"tab never reached #{widget_id}")


@sync
async def test_gate_limits_and_validation_are_edited_in_the_definition_editor():
    """Issue 11: the publish gate's limits and the validation switch, typed at 80×24, saved,
    shown again, and logged as the CLI command that does the same; a limit over 100 % is
    refused with a sentence."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter")
        screen = app.screen
        text = screen_text(app)
        assert "Validate" in text and "Hold if" in text and "% size" in text and "empty" in text
        assert screen.query_one("#ed-gate-products", Input).value == "30"  # the default
        assert screen.query_one("#ed-gate-size", Input).value == ""  # no limit
        await tab_to(pilot, "ed-validate")
        await type_keys(pilot, "space")  # validation off
        await tab_to(pilot, "ed-gate-products")
        await type_keys(pilot, "backspace", "backspace", "2", "0")
        await tab_to(pilot, "ed-gate-size")
        await type_keys(pilot, "4", "0")
        await tab_to(pilot, "ed-gate-empty")
        await type_keys(pilot, "space")
        await type_keys(pilot, "ctrl+s")
        stored = service.get_definition("Shop feed").options
        assert stored == {
            "gate_product_drop": 20.0,
            "gate_size_drop": 40.0,
            "gate_hold_empty": False,
            "validate": False,
        }
        assert app.commands[-1].command == (
            "tuiexport exports update 'Shop feed' --gate-product-drop 20 --gate-size-drop 40 "
            "--no-gate-hold-empty --no-validate"
        )
        # Reopened, the editor shows what is stored.
        await type_keys(pilot, "escape")
        await type_keys(pilot, "enter")
        assert screen.query_one("#ed-gate-products", Input).value == "20"
        assert not screen.query_one("#ed-validate").value
        # Emptied: no limit ("off"); over 100: refused, nothing stored.
        await tab_to(pilot, "ed-gate-products")
        await type_keys(pilot, "backspace", "backspace")
        await type_keys(pilot, "ctrl+s")
        assert service.get_definition("Shop feed").options["gate_product_drop"] is None
        assert app.commands[-1].command.endswith("--gate-product-drop off")
        await tab_to(pilot, "ed-gate-size")
        await type_keys(pilot, "backspace", "backspace", "1", "5", "0", "ctrl+s")
        assert any("percentages from 0 to 100" in n for n in notifications(app))
        assert service.get_definition("Shop feed").options["gate_size_drop"] == 40.0


@sync
async def test_letters_arriving_before_the_filter_has_the_focus_are_kept():
    """The browser case of issue 14 ("shop" became "sop"): the terminal delivers a key to the
    widget focused when it arrives. A letter that arrives while the first one is still moving
    the focus from the list to the filter is handed to the list, and must reach the filter
    (in order) all the same."""
    from textual import events

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        for char in "shop":  # in one burst: each is queued before the previous is handled
            key = events.Key(char, char)
            key.set_sender(app)
            app._driver.send_message(key)
        await pilot.pause(0.3)
        await settle(pilot)
        assert screen.query_one("#filter", Input).value == "shop"
        assert [v.name for v in screen.exports.definitions.views] == ["Shop feed"]


@sync
async def test_an_unsaved_limit_or_selection_says_what_saving_would_do():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter")
        editor = app.screen.exports.editor
        saving = editor.query_one("#ed-saving")
        assert not saving.display  # nothing unsaved
        count = app.screen.exports.counts[editor.selection_id]
        limit = editor.query_one("#ed-limit", Input)
        limit.focus()
        await type_keys(pilot, "3")
        assert saving.display
        assert str(saving.content) == (
            f"Saving: {count:,} products, limit 200,000 → 3; over: the first 3 by puid go out"
        )
        await type_keys(pilot, "backspace", "ctrl+x")  # the limit as stored, no selection
        assert str(saving.content) == (
            f"Saving: {count:,} → 0 products / limit 200,000\n"
            "✗ turns invalid: No product selection is assigned."
        )
        await type_keys(pilot, "ctrl+s")
        assert await until(pilot, lambda: not service.get_definition("Shop feed").valid)
        await settle(pilot)
        assert not saving.display  # saved: nothing unsaved any more
        # Assigning a selection again (as the Select does) makes it valid.
        editor.assign(service.get_selection(service.list_selections()[0].id))
        await settle(pilot)
        assert "✓ becomes valid" in str(saving.content)
