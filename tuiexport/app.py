"""The Textual application: one main screen, errors as notifications, the palette's commands."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from tuiexport import service
from tuiexport.screens.palette import ExportCommands


class ExportApp(App[int]):
    """``server_url``: the running share server's base URL, or "" when it is off."""

    CSS_PATH = "app.tcss"
    TITLE = "tuiexport"
    COMMANDS = App.COMMANDS | {ExportCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        # Declaring the palette binding replaces Textual's own ctrl+p one: name both keys.
        Binding(
            "ctrl+p,f10", "command_palette", "Commands", id="palette", show=False, priority=True
        ),
    ]

    def __init__(
        self, *, server_url: str = "", server_note: str = "", db_target: str | None = None
    ) -> None:
        super().__init__()
        self.server_url = server_url
        self.server_note = server_note
        #: What the download child process opens: the --db argument, else the open SQLite file.
        self.db_target = db_target or service.database_location()

    def on_mount(self) -> None:
        from tuiexport.screens.main import MainScreen

        # Pushed, not returned by get_default_screen: only pushed screens load their CSS_PATH.
        self.push_screen(MainScreen())
        if not self.server_url and self.server_note:
            self.notify(
                f"The share server is off{self.server_note}.", severity="warning", markup=False
            )

    async def action_quit(self) -> None:
        """Quit; with unsaved edits (an open export or a selection tab) ask first."""
        from tuiexport.screens.dialogs import ConfirmScreen
        from tuiexport.screens.main import MainScreen

        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        unsaved = main.unsaved() if main is not None else []
        downloading = main is not None and main.downloads.running
        if not unsaved and not downloading:
            self.exit()
            return
        assert main is not None  # without the main screen nothing is unsaved or downloading

        def answer(yes: bool | None) -> None:
            if yes:
                if downloading:
                    main.downloads.cancel()
                self.exit()

        parts = []
        if unsaved:
            parts.append("without saving " + ", ".join(unsaved))
        if downloading:
            parts.append(f"cancelling the download of '{main.downloads.export_name}'")
        question = "Quit " + " and ".join(parts) + "?"
        self.push_screen(ConfirmScreen(question, yes="Quit"), answer)

    def action_help(self) -> None:
        from tuiexport.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
