"""The main screen: an "Exports" tab (definitions | history) beside the selection editor tabs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static, TabbedContent, TabPane

from tuiexport import service
from tuiexport.errors import UserError
from tuiexport.management.views import DefinitionView
from tuiexport.screens import command_log as commands
from tuiexport.screens.definition_actions import DefinitionActionsMixin
from tuiexport.screens.dialogs import UnsavedScreen
from tuiexport.screens.run_details import RunDetailsScreen
from tuiexport.screens.selection_tabs import SelectionTabsMixin
from tuiexport.widgets.definition_list import DefinitionRows
from tuiexport.widgets.download_bar import DownloadBar
from tuiexport.widgets.exports_pane import ExportsPane
from tuiexport.widgets.guard import background, guarded, refuse_read_only, writes
from tuiexport.widgets.history_table import HistoryTable
from tuiexport.widgets.key_bar import KeyBar

EXPORTS_TAB = "exports-tab"
#: Printable keys that stay commands on the list (a name hardly starts with them); every other
#: printable key typed on the list goes into the filter, so typing a name filters by it.
BOUND_CHARACTERS = set("/?[] ")

#: Actions that only make sense on the Exports tab.
EXPORT_ACTIONS = {
    "new_definition",
    "download",
    "share",
    "rotate",
    "delete",
    "cycle_sort",
    "filter",
    "edit_selection",
    "new_selection",
    "remove_selection",
    "discard",
    "toggle_row",
    "focus_history",
    "focus_definitions",
}

# Commands are on function and ctrl keys: letters are for typing (names into the filter, text
# into fields), so no word typed on the list can start a download or quit. The second key is
# for terminals that swallow the first (F-keys in some SSH clients, ctrl keys inside tmux).
BINDINGS: list[BindingType] = [
    Binding("ctrl+n", "new_definition", "New", id="new"),
    Binding("f5,ctrl+d", "download", "Download", id="download"),
    Binding("f6,ctrl+u", "share", "Share URL", id="share"),
    Binding("ctrl+s,f2", "save", "Save", id="save"),
    Binding("ctrl+r,f3", "discard", "Discard", id="discard", show=False),
    Binding("f4,ctrl+e", "edit_selection", "Selection", id="edit_selection"),
    Binding(
        "ctrl+x",
        "remove_selection",
        "Remove selection",
        id="remove_selection",
        show=False,
        priority=True,
    ),
    Binding("f7,ctrl+t", "rotate", "New token", id="rotate", show=False),
    Binding("delete,f8", "delete", "Delete", id="delete"),
    Binding("f9,ctrl+o", "cycle_sort", "Sort", id="sort"),
    Binding("slash,ctrl+f", "filter", "Filter", id="filter"),
    Binding("ctrl+w,f12", "close_tab", "Close tab", id="close_tab"),
    Binding(
        "right_square_bracket,ctrl+pagedown", "next_tab", "Next tab", id="next_tab", show=False
    ),
    Binding(
        "left_square_bracket,ctrl+pageup", "previous_tab", "Prev tab", id="previous_tab", show=False
    ),
    Binding("question_mark,f1", "app.help", "Help", id="help"),
    Binding("escape", "escape", "Close", id="escape", show=False),
    Binding("escape", "cancel_download", "Cancel download", id="cancel_download", priority=True),
]


class MainScreen(DefinitionActionsMixin, SelectionTabsMixin, Screen[None]):
    CSS_PATH: ClassVar[list[str | PurePath]] = ["main.tcss", "editor.tcss", "selection.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.exports = ExportsPane(id="exports")
        #: The widget that last had the focus in each tab pane, to give it back on return.
        self._pane_focus: dict[str, Widget] = {}

    def compose(self) -> ComposeResult:
        with TabbedContent(id="tabs"), TabPane("Exports", id=EXPORTS_TAB):
            yield self.exports
        yield DownloadBar(id="download")
        yield Static("", id="status")
        yield KeyBar()

    def on_mount(self) -> None:
        self.exports.definitions.focus()
        self.show_status()

    # --- tabs ------------------------------------------------------------------------------

    def show_tab(self, pane_id: str) -> None:
        """Make ``pane_id`` the active tab and move the focus into it in the same step.

        The focus moves first and synchronously: had the tab switched first, Textual would move
        the focus off the hidden pane to a sibling still in it (the other half of the definition
        list), whose pane would then take the tab straight back.
        """
        target = self._focus_target(pane_id)
        if target is not None:
            self.set_focus(target, scroll_visible=False)
        self.tabs.active = pane_id

    def _focus_target(self, pane_id: str) -> Widget | None:
        try:
            pane = self.tabs.get_pane(pane_id)
        except NoMatches:
            return None
        last = self._pane_focus.get(pane_id)
        if last is not None and last.is_attached and last.focusable and pane in last.ancestors:
            return last
        if pane_id == EXPORTS_TAB:
            return self.exports.definitions
        return next((w for w in pane.query("Input") if w.focusable), None) or next(
            (w for w in pane.query("*") if w.focusable), None
        )

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        pane = next((a for a in event.widget.ancestors if isinstance(a, TabPane)), None)
        if pane is not None and pane.id:
            self._pane_focus[pane.id] = event.widget

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # A tab chosen with the mouse (or by Textual itself): the focus follows it there too.
        pane = event.tabbed_content.active_pane
        focused = self.focused
        if pane is not None and pane.id and (focused is None or pane not in focused.ancestors):
            target = self._focus_target(pane.id)
            if target is not None:
                self.set_focus(target, scroll_visible=False)
        self.refresh_bindings()

    # --- helpers ---------------------------------------------------------------------------

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    @property
    def on_exports_tab(self) -> bool:
        return self.tabs.active == EXPORTS_TAB

    @property
    def downloads(self) -> DownloadBar:
        return self.query_one(DownloadBar)

    def current(self) -> DefinitionView | None:
        """The definition actions apply to: the expanded one while editing, else the cursor row."""
        lst = self.exports.definitions
        if lst.expanded is not None and (lst.cursor == lst.expanded or self._editor_has_focus()):
            return lst.expanded_view
        return lst.cursor_view

    def _editor_has_focus(self) -> bool:
        focused = self.focused
        return focused is not None and self.exports.editor in focused.ancestors_with_self

    def unsaved(self) -> list[str]:
        """What would be lost by quitting now."""
        names = []
        editor = self.exports.editor
        if self.exports.definitions.expanded is not None and editor.dirty:
            assert editor.view is not None  # an expanded row has its definition loaded
            names.append(f"the export '{editor.view.name}'")
        names.extend(f"'{e.title.rstrip(' *')}'" for e in self.selection_editors() if e.dirty)
        return names

    def share_url(self, view: DefinitionView) -> str:
        return service.share_url(view.export_id, base_url=self.app.server_url or None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in EXPORT_ACTIONS:
            return self.on_exports_tab
        if action == "close_tab":
            return not self.on_exports_tab
        if action == "remove_selection":
            # Only while an export is open; elsewhere ctrl+x stays the text fields' "cut".
            return self.on_exports_tab and self.exports.definitions.expanded is not None
        if action == "cancel_download":
            return self.is_mounted and self.downloads.running
        return True

    @background("status")
    def show_status(self) -> None:
        from tuiexport.service import catalog_stats

        stats = catalog_stats()
        server = (
            f"share {self.app.server_url}"
            if self.app.server_url
            else f"share server off{self.app.server_note}"
        )
        where = service.database_location()
        home = str(Path.home())
        if where.startswith(home + "/"):
            where = "~" + where[len(home) :]
        if len(where) > 48:
            where = "…" + where[-47:]
        line = Text(no_wrap=True, overflow="ellipsis")
        if self.app.read_only:
            line.append("read-only", style="bold reverse")
            line.append(" ")
        line.append(server, style="bold" if self.app.server_url else "")
        line.append(f" · {stats.products:,} products · {where}")
        self.app.call_from_thread(self.query_one("#status", Static).update, line)

    # --- the definition list ---------------------------------------------------------------

    @guarded
    def action_toggle_row(self) -> None:
        lst = self.exports.definitions
        if lst.cursor_view is None:
            return
        if lst.expanded == lst.cursor:
            self.close_editor()
        else:
            self.close_editor(then=lambda: self.open_editor(lst.cursor))

    def open_editor(self, index: int, *, focus_name: bool = True) -> None:
        lst = self.exports.definitions
        view = lst.views[index]
        lst.expand_row(index)
        self.exports.editor.load(view, service.list_selections(), self.share_url(view))
        if focus_name:
            self.exports.editor.focus_name()

    def close_editor(self, then: Callable[[], None] | None = None) -> None:
        """Collapse the expanded row, asking first about unsaved changes; then run ``then``."""
        lst, editor = self.exports.definitions, self.exports.editor
        if lst.expanded is None:
            if then:
                then()
            return

        def finish(answer: str | None) -> None:
            if answer == "cancel":
                return
            if answer == "save" and (
                refuse_read_only(self.app, "saving") or not self.save_definition()
            ):
                return
            lst.collapse()
            lst.focus()
            if then:
                then()

        if editor.dirty:
            assert editor.view is not None  # only a loaded definition can be dirty
            self.app.push_screen(UnsavedScreen(f"The export '{editor.view.name}'"), finish)
        else:
            finish("discard")

    def save_definition(self) -> bool:
        editor = self.exports.editor
        try:
            changes = editor.changes()
            if "name" in changes and not changes["name"]:
                raise UserError("Give the export a name before saving.")
            if not changes:
                self.notify("Nothing to save.", timeout=2)
                return True
            assert editor.view is not None  # changes() is empty without a definition
            before = editor.view.name
            view = service.update_definition(editor.view.export_id, **changes)
            self.app.record(f"Saved '{view.name}'", commands.update_definition(before, changes))
        except UserError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        editor.load(view, service.list_selections(), self.share_url(view))
        self.exports.definitions.replace_view(view)
        self.exports.reload(cursor_id=view.export_id)
        self.notify(
            f"Saved '{view.name}'." + ("" if view.valid else " It is still invalid."), markup=False
        )
        return True

    def action_escape(self) -> None:
        if isinstance(self.focused, Input) and self.focused.id == "filter":
            self.exports.definitions.focus()
        elif self.on_exports_tab and self.exports.definitions.expanded is not None:
            self.close_editor()

    def action_cancel_download(self) -> None:
        self.downloads.cancel()

    def action_tab_from_list(self) -> None:
        """Tab on the open row goes into its editor; elsewhere on the list, to the history."""
        lst = self.exports.definitions
        if lst.expanded is not None and lst.cursor == lst.expanded:
            self.exports.editor.focus_name()
        else:
            self.action_focus_history()

    def action_focus_history(self) -> None:
        self.exports.history.focus()

    def action_focus_definitions(self) -> None:
        self.exports.definitions.focus()

    def action_filter(self) -> None:
        filter_input = self.query_one("#filter", Input)
        filter_input.focus()
        filter_input.action_end()

    def action_cycle_sort(self) -> None:
        self.exports.cycle_sort()

    def on_key(self, event: events.Key) -> None:
        # Type to filter: a printable key without a binding, typed on the list, starts the filter.
        if (
            isinstance(self.focused, DefinitionRows)
            and event.is_printable
            and event.character
            and event.character not in BOUND_CHARACTERS
        ):
            filter_input = self.query_one("#filter", Input)
            filter_input.insert_text_at_cursor(event.character)
            self.set_focus(filter_input, scroll_visible=False)
            event.stop()

    # --- saving ----------------------------------------------------------------------------

    @writes("saving")
    @guarded
    def action_save(self) -> None:
        if self.on_exports_tab:
            if self.exports.definitions.expanded is not None:
                self.save_definition()
            else:
                self.notify("Open an export with Enter to edit it.", timeout=3)
        else:
            self.save_selection_tab()

    def action_discard(self) -> None:
        lst = self.exports.definitions
        if lst.expanded is not None and lst.expanded_view is not None:
            self.open_editor(lst.expanded, focus_name=False)
            self.notify("Changes discarded.", timeout=2)

    # --- history ---------------------------------------------------------------------------

    @on(HistoryTable.RowSelected)
    def open_run(self, event: HistoryTable.RowSelected) -> None:
        key = event.row_key.value
        run = self.exports.history.runs.get(key) if key is not None else None
        if run is not None:
            self.app.push_screen(RunDetailsScreen(run))
