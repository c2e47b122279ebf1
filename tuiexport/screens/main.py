"""The main screen: an "Exports" tab (definitions | history) beside the selection editor tabs.

It is composed of components, each with its own state and an interface of methods and messages:

- :class:`~tuiexport.screens.selection_tabs.SelectionTabs` (the tabs, the focus in each, the
  selection tabs' life),
- :class:`~tuiexport.widgets.exports_pane.ExportsPane` (definition list, editor, history; which row
  is open),
- :class:`~tuiexport.widgets.download_bar.DownloadBar` (the download's child process and progress),
- :class:`~tuiexport.screens.definition_actions.DefinitionActions` (the export commands; its writes
  run in workers).

The screen itself holds the key table (one place for the binding ids that ``[keymap]``, the help
screen and the key bar read), says which commands apply where (:meth:`MainScreen.check_action`),
routes each action and bubbled message to the component that owns it, and shows the status line.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, Static, TabPane

from tuiexport import config, service
from tuiexport.management.views import DefinitionView, RunView, SelectionView
from tuiexport.screens.definition_actions import DefinitionActions
from tuiexport.screens.links import LinksScreen
from tuiexport.screens.run_details import RunDetailsScreen
from tuiexport.screens.selection_tabs import EXPORTS_TAB, SelectionTabs
from tuiexport.widgets.definition_list import DefinitionRows
from tuiexport.widgets.download_bar import DownloadBar
from tuiexport.widgets.exports_pane import ExportsPane
from tuiexport.widgets.guard import background, guarded, writes
from tuiexport.widgets.history_table import HistoryTable
from tuiexport.widgets.key_bar import KeyBar
from tuiexport.widgets.selection_editor import SelectionEditor

if TYPE_CHECKING:
    from tuiexport.app import ExportApp
#: Actions that only make sense on the Exports tab.
EXPORT_ACTIONS = {
    "new_definition",
    "download",
    "share",
    "rotate",
    "links",
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
    Binding("ctrl+k", "links", "Share links", id="links", show=False),
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


class MainScreen(Screen[None]):
    CSS_PATH: ClassVar[list[str | PurePath]] = ["main.tcss", "editor.tcss", "selection.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = BINDINGS

    if TYPE_CHECKING:
        app: ExportApp

    def __init__(self) -> None:
        super().__init__()
        self.exports = ExportsPane(id="exports")
        self.tabs = SelectionTabs(id="tabs")
        self.downloads = DownloadBar(id="download")
        self.actions = DefinitionActions(self, self.exports, self.downloads)

    def compose(self) -> ComposeResult:
        with self.tabs, TabPane("Exports", id=EXPORTS_TAB):
            yield self.exports
        yield self.downloads
        yield Static("", id="status")
        yield KeyBar()

    def on_mount(self) -> None:
        self.exports.definitions.focus()
        self.show_status()

    # --- what the App and the palette ask ----------------------------------------------------

    @property
    def on_exports_tab(self) -> bool:
        return self.tabs.on_exports

    def current(self) -> DefinitionView | None:
        """The definition actions apply to: the expanded one while editing, else the cursor row."""
        return self.exports.current()

    def show_tab(self, pane_id: str) -> None:
        self.tabs.show(pane_id)

    def unsaved(self) -> list[str]:
        """What would be lost by quitting now."""
        name = self.exports.unsaved()
        return ([f"the export '{name}'"] if name is not None else []) + self.tabs.unsaved()

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

    # --- the export commands (DefinitionActions) ----------------------------------------------

    @writes("creating exports")
    @guarded
    def action_new_definition(self) -> None:
        self.actions.new()

    @guarded
    def action_toggle_row(self) -> None:
        self.actions.toggle_row()

    @guarded
    def action_download(self) -> None:
        self.actions.download()

    @guarded
    def action_share(self) -> None:
        self.actions.share()

    @writes("giving exports new share tokens")
    @guarded
    def action_rotate(self) -> None:
        self.actions.rotate()

    @guarded
    def action_links(self) -> None:
        view = self.current()
        if view is not None:
            self.app.push_screen(LinksScreen(view))

    @writes("deleting exports")
    @guarded
    def action_delete(self) -> None:
        self.actions.delete()

    @writes("saving")
    @guarded
    def action_save(self) -> None:
        if not self.on_exports_tab:
            self.tabs.save_active()
        elif self.exports.definitions.expanded is not None:
            self.actions.save()
        else:
            self.notify("Open an export with Enter to edit it.", timeout=3)

    @guarded
    def action_discard(self) -> None:
        self.actions.discard()

    def action_escape(self) -> None:
        if isinstance(self.focused, Input) and self.focused.id == "filter":
            self.exports.definitions.focus()
        elif self.on_exports_tab and self.exports.definitions.expanded is not None:
            self.actions.close_editor()

    def action_cancel_download(self) -> None:
        self.downloads.cancel()

    def on_download_bar_started(self, message: DownloadBar.Started) -> None:
        self.actions.download_started()

    def on_download_bar_finished(self, message: DownloadBar.Finished) -> None:
        self.actions.download_finished(message.run)

    @guarded
    def on_selection_editor_saved(self, message: SelectionEditor.Saved) -> None:
        self.actions.selection_saved(message)

    # --- the list, the filter and the history (ExportsPane) -----------------------------------

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
        self.exports.focus_filter()

    def action_cycle_sort(self) -> None:
        self.exports.cycle_sort()

    def on_definition_rows_typed(self, message: DefinitionRows.Typed) -> None:
        # Type to filter: a letter typed on the list starts (or goes on with) the filter.
        message.stop()
        filter_input = self.query_one("#filter", Input)
        filter_input.insert_text_at_cursor(message.character)
        self.set_focus(filter_input, scroll_visible=False)

    @on(HistoryTable.RowSelected)
    def open_run(self, event: HistoryTable.RowSelected) -> None:
        key = event.row_key.value
        run = self.exports.history.runs.get(key) if key is not None else None
        if run is not None:
            self.app.push_screen(RunDetailsScreen(run, self.download_changes_since))

    def download_changes_since(self, run: RunView) -> bool:
        """Start the delta download since ``run`` (the run details' ``s``); whether it runs."""
        self.actions.download_delta(run)
        return self.downloads.running

    # --- the selection tabs (SelectionTabs) ---------------------------------------------------

    async def open_selection_tab(
        self, selection: SelectionView | None, *, for_export: str | None = None
    ) -> None:
        view = self.current()
        settings = config.settings()
        await self.tabs.open(
            selection,
            limit=view.effective_limit if view is not None else settings.contract_limit,
            language=view.language if view is not None else settings.default_language,
            for_export=for_export,
        )

    @guarded
    async def action_edit_selection(self) -> None:
        view = self.current()
        if view is None:
            return
        editor = self.exports.editor
        if (
            editor.view is not None
            and editor.view.export_id == view.export_id
            and self.exports.definitions.expanded is not None
        ):
            selection_id = editor.selection_id
        else:
            selection_id = view.selection_id
        if selection_id is None:
            await self.action_new_selection()
            return
        await self.open_selection_tab(service.get_selection(selection_id))

    @guarded
    async def action_new_selection(self) -> None:
        view = self.current()
        await self.open_selection_tab(None, for_export=view.export_id if view is not None else None)

    @writes("changing an export's selection")
    def action_remove_selection(self) -> None:
        if self.exports.definitions.expanded is None:
            self.notify("Open the export with Enter to change its selection.", timeout=3)
            return
        self.exports.editor.assign(None)
        self.notify("Selection removed; save (ctrl+s) to keep it so.", timeout=3)

    @guarded
    def action_close_tab(self) -> None:
        self.tabs.close_active()

    def action_next_tab(self) -> None:
        self.tabs.step(1)

    def action_previous_tab(self) -> None:
        self.tabs.step(-1)
