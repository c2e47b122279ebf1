"""Snapshots of the TUI at 80×24 and 160×48 (pytest-textual-snapshot). Update with --snapshot-update.

Deterministic: fixed IDs, tokens and times in the database (see test_tui_helpers), TZ=UTC, no
cursor blink, no animations, a fixed share server URL and no user configuration (TUIEXPORT_HOME is a tmp dir).
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.test_tui_helpers import make_app, settle, tui_db  # noqa: F401 - tui_db is a fixture

pytestmark = pytest.mark.usefixtures("tui_db")


def prepare(*keys: str):
    async def run_before(pilot) -> None:
        pilot.app.animation_level = "none"  # the tab underline slides otherwise
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        # Opening a tab moves the focus into it a frame later; the key bar follows the focus.
        for _ in range(50):
            tabs = pilot.app.screen.query("#tabs")
            active = tabs.first().active_pane if tabs else None
            if active is None or (pilot.app.focused and active in pilot.app.focused.ancestors):
                break
            await pilot.pause(0.02)
        # The selection tab recounts 0.3 s after the last change (a timer, not yet a worker):
        # wait past it, then for the count and preview workers it starts.
        await pilot.pause(0.5)
        await settle(pilot)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return run_before


def test_main_collapsed(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=prepare())


def test_main_expanded(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=prepare("down", "enter"))


def test_selection_tab(snap_compare):
    # Row 5 is "Shop feed" (sorted by name): its selection opens in a tab.
    keys = ("down", "down", "down", "down", "f4")
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=prepare(*keys))


def test_main_history_focused_80x24(snap_compare):
    # Tab gives the history the whole width: status, date, name and product count show.
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=prepare("tab"))


def test_main_160x48(snap_compare):
    # Both halves in full: every main history column beside the definitions.
    assert snap_compare(make_app(), terminal_size=(160, 48), run_before=prepare())


def test_help_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=prepare("question_mark"))


def test_main_read_only(snap_compare):
    # "read-only" in the status line; the keys that would write dimmed in the key bar.
    from tests.test_tui_helpers import BASE_URL
    from tuiexport.app import ExportApp

    app = ExportApp(server_url=BASE_URL, read_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=prepare())


def test_links_with_a_delta_fetch(snap_compare):
    # Share links (ctrl+k) of "Shop feed": Shop A's last fetch was a delta, shown in 80 columns.
    from datetime import timedelta

    from tests.test_tui_helpers import CREATED
    from tuiexport import service
    from tuiexport.models import Run, ShareLink

    shop = service.create_link("Shop feed", "Shop A")
    ShareLink.update(created=CREATED).execute()
    full = Run.get(Run.log_id == "LOG0000001")
    started = CREATED + timedelta(days=12)
    for log_id, delta in (("LOG0000003", {}), ("LOG0000004", {"delta_since": "LOG0000001"})):
        Run.create(
            **{
                **{
                    f.name: getattr(full, f.name) for f in Run._meta.sorted_fields if f.name != "id"
                },
                "log_id": log_id,
                "trigger": "api",
                "started": started,
                "finished": started + timedelta(seconds=3),
                "link_id": shop.link_id if delta else None,
                "link_name": shop.name if delta else "",
                **(
                    {**delta, "delta_base": "LOG0000003", "changed_count": 2, "removed_count": 1}
                    if delta
                    else {}
                ),
            }
        )
        started += timedelta(minutes=1)
    keys = ("down", "down", "down", "down", "ctrl+k", "down")
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=prepare(*keys))


def test_editor_says_what_saving_would_do(snap_compare):
    # "Shop feed" open, its limit typed down to 3 (unsaved): the line under the limit says what
    # saving would do to it.
    before = prepare("down", "down", "down", "down", "enter")

    async def run_before(pilot) -> None:
        await before(pilot)
        pilot.app.screen.query_one("#ed-limit", Input).focus()
        await pilot.press("3")
        await settle(pilot)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
