"""Every action of the main screen as a command in the palette (ctrl+p / f10)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

#: (title, action on the main screen, help)
COMMANDS = [
    ("New export definition", "new_definition", "Create an export and open it"),
    ("Open / close the export", "toggle_row", "Expand the highlighted export into its editor"),
    ("Save", "save", "Save the open export or selection"),
    ("Discard changes", "discard", "Revert the open export to what is stored"),
    ("Download export", "download", "Run the export now and save the file to the downloads folder"),
    ("Share URL", "share", "Copy the export's share URL (OSC 52) and show it"),
    ("New share token", "rotate", "Rotate the share token; the old URL stops working"),
    ("Share links", "links", "One URL per consumer: last fetch, 7 days, overdue; new, revoke"),
    ("Delete export", "delete", "Delete the export after confirmation"),
    ("Edit product selection", "edit_selection", "Open the export's selection in a tab"),
    ("New product selection", "new_selection", "Open a new selection tab for the export"),
    ("Remove product selection", "remove_selection", "Unassign the selection from the open export"),
    ("Sort exports", "cycle_sort", "Next sort order: name, last run, created, format"),
    ("Filter exports", "filter", "Type to filter the export list"),
    ("Focus history", "focus_history", "Move to the history pane"),
    ("Focus exports", "focus_definitions", "Move to the export list"),
    ("Close tab", "close_tab", "Close the selection tab (asks about unsaved changes)"),
    ("Next tab", "next_tab", "Switch to the next tab"),
    ("Previous tab", "previous_tab", "Switch to the previous tab"),
    ("Cancel download", "cancel_download", "Stop the running download"),
    ("Help", "app.help", "Show every key"),
]


class ExportCommands(Provider):
    def _available(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        from tuiexport.screens.main import MainScreen

        screen = None
        for mode_screen in self.app.screen_stack:
            if isinstance(mode_screen, MainScreen):
                screen = mode_screen
        if not isinstance(screen, MainScreen):
            return
        for title, action, help_text in COMMANDS:
            name = action.split(".")[-1]
            if action.startswith("app.") or screen.check_action(name, ()) is not False:
                yield title, partial(screen.run_action, action), help_text

    async def discover(self) -> Hits:
        for title, run, help_text in self._available():
            yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, run, help_text in self._available():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), run, help=help_text)
