"""The `?` screen: every key, generated from the bindings so it never drifts from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def all_bindings(app_bindings: Iterable[BindingType]) -> list[Binding]:
    """Every binding of the TUI that has an id (the ids ``[keymap]`` in config.toml may name);
    ``app_bindings`` are the App's (passed in: this module never imports the App)."""
    from textual.screen import Screen
    from textual.widget import Widget

    from tuiexport.screens.command_log import CommandLogScreen
    from tuiexport.screens.dialogs import ConfirmScreen, NameScreen, UnsavedScreen
    from tuiexport.screens.links import LinksScreen
    from tuiexport.screens.main import BINDINGS
    from tuiexport.screens.run_details import RunDetailsScreen
    from tuiexport.widgets.definition_list import DefinitionRows
    from tuiexport.widgets.history_table import HistoryTable

    owners: list[type[Screen[Any]] | type[Widget]] = [
        DefinitionRows,
        HistoryTable,
        RunDetailsScreen,
        LinksScreen,
        ConfirmScreen,
        UnsavedScreen,
        NameScreen,
        HelpScreen,
        CommandLogScreen,
    ]
    found = [b for b in [*BINDINGS, *app_bindings] if isinstance(b, Binding)]
    for owner in owners:
        found.extend(b for b in owner.BINDINGS if isinstance(b, Binding))
    return [b for b in found if b.id]


def binding_ids(app_bindings: Iterable[BindingType]) -> set[str]:
    return {b.id for b in all_bindings(app_bindings) if b.id}


def _keys(binding: Binding, keymap: Mapping[str, str]) -> str:
    """The keys of a binding as the user has them (their [keymap] replaces the defaults)."""
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    names = {
        "question_mark": "?",
        "slash": "/",
        "right_square_bracket": "]",
        "left_square_bracket": "[",
        "space": "space",
        "delete": "del",
    }
    return " ".join(names.get(k.strip(), k.strip()) for k in keys.split(","))


def key_table(
    app_bindings: Iterable[BindingType], keymap: Mapping[str, str] | None = None
) -> Table:
    """The key table; ``app_bindings`` are the App's (passed in: this module never imports it)."""
    from tuiexport.screens.command_log import CommandLogScreen
    from tuiexport.screens.main import BINDINGS
    from tuiexport.screens.run_details import RunDetailsScreen
    from tuiexport.widgets.definition_list import DefinitionRows
    from tuiexport.widgets.history_table import HistoryTable

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()

    def section(
        title: str, bindings: Iterable[BindingType], extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        table.add_row(Text(title, style="underline"), "")
        for binding in bindings:
            if isinstance(binding, Binding) and binding.description:
                table.add_row(_keys(binding, keymap or {}), binding.description)
        for keys, text in extra:
            table.add_row(keys, text)
        table.add_row("", "")

    section(
        "Everywhere",
        [*BINDINGS, *app_bindings],
        [("tab", "Exports ⇄ history pane")],
    )
    section(
        "Exports list",
        [
            b
            for b in DefinitionRows.BINDINGS
            if isinstance(b, Binding) and b.description in ("Open/close",)
        ],
        [("↑ ↓ pgup pgdn home end", "Move"), ("letters, digits", "Filter the list by name")],
    )
    section(
        "Expanded export",
        [],
        [
            ("tab / shift+tab", "Next / previous field"),
            ("esc", "Close (asks about unsaved changes)"),
        ],
    )
    section(
        "History", [b for b in HistoryTable.BINDINGS if isinstance(b, Binding) and b.key == "enter"]
    )
    section("Run details", RunDetailsScreen.BINDINGS)
    section("Command log", CommandLogScreen.BINDINGS)
    section(
        "Selection tab",
        [],
        [("space", "Tick a list entry"), ("ctrl+s f2", "Save"), ("ctrl+w f12", "Close")],
    )
    return table


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help.close")
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys"
            box.border_subtitle = "Esc closes"
            # The user's keymap: Textual keeps it on the App (set_keymap), without a getter.
            yield Static(key_table(self.app.BINDINGS, self.app._keymap))

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()  # ↑ ↓ pgup pgdn scroll the list
