"""The Textual application: one main screen, errors as notifications, the palette's commands."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.theme import BUILTIN_THEMES

from tuiexport import config, service
from tuiexport.screens.command_log import Entry
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
        Binding("ctrl+l,f11", "command_log", "Command log", id="command_log", show=False),
    ]

    def __init__(
        self,
        *,
        server_url: str = "",
        server_note: str = "",
        db_target: str | None = None,
        read_only: bool | None = None,
    ) -> None:
        super().__init__()
        settings = config.settings()
        self.server_url = server_url
        self.server_note = server_note
        #: Nothing that writes runs (see widgets.guard.writes); downloads by setting.
        self.read_only = settings.read_only if read_only is None else read_only
        self.read_only_reason = (
            "--read-only" if read_only else "read_only = true in the configuration"
        )
        self.read_only_downloads = not self.read_only or settings.read_only_downloads
        #: Every change made in this session as the command that does the same (ctrl+l shows).
        self.commands: list[Entry] = []
        # The user's theme and keys (config.toml); both were checked by check_look().
        self.theme = settings.theme
        self.set_keymap(settings.keymap)
        #: What the download child process opens: the --db argument, else the open SQLite file.
        self.db_target = db_target or service.database_location()

    @staticmethod
    def check_look() -> None:
        """Refuse an unknown theme or key binding id in the configuration with one sentence
        (before the screen is taken over, so it reaches the terminal)."""
        from tuiexport.screens.help import binding_ids

        settings = config.settings()
        themes = sorted(BUILTIN_THEMES)
        if settings.theme not in themes:
            raise config.ConfigError(
                f"Unknown theme '{settings.theme}' in the configuration; use one of "
                f"{', '.join(themes)}."
            )
        unknown = sorted(set(settings.keymap) - binding_ids(ExportApp.BINDINGS))
        if unknown:
            raise config.ConfigError(
                f"Unknown key binding id {', '.join(map(repr, unknown))} in [keymap]; the ids are "
                f"{', '.join(sorted(binding_ids(ExportApp.BINDINGS)))}."
            )

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

    def record(self, what: str, command: str) -> None:
        """Log an action the operator took with its equivalent command line."""
        self.commands.append(Entry(datetime.now(), what, command))

    def action_command_log(self) -> None:
        from tuiexport.screens.command_log import CommandLogScreen

        if not isinstance(self.screen, CommandLogScreen):
            self.push_screen(CommandLogScreen(self.commands))

    def action_help(self) -> None:
        from tuiexport.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
