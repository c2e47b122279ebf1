"""The command behind every action: each change made in the TUI as the ``tuiexport`` command (or,
for share URLs, the ``curl`` call) that does the same, ready to copy into a cron job or a script.

The command lines are built from the same values the TUI handed to ``service``; a test replays
them through the real CLI and compares the database.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tuiexport import service
from tuiexport.management.views import DefinitionView, SelectionView

q = shlex.quote


@dataclass(frozen=True)
class Entry:
    when: datetime
    what: str
    command: str


def create_definition(view: DefinitionView) -> str:
    return (
        f"tuiexport exports create --name {q(view.name)} --profile {view.profile} "
        f"--output {view.output} --language {view.language}"
    )


def update_definition(
    ref: str, changes: dict[str, object], options_before: dict[str, Any] | None = None
) -> str:
    """``tuiexport exports update`` with the flags for exactly these changes. Exports are named
    by name (unique, and what a person reads in a crontab), as they were before the change;
    ``options_before`` are the stored options the change started from."""
    parts = ["tuiexport", "exports", "update", q(ref)]
    for key, value in changes.items():
        if key == "name":
            parts += ["--name", q(str(value))]
        elif key == "selection_id":
            parts += ["--no-selection"] if value is None else ["--selection", str(value)]
        elif key == "profile":
            parts += ["--profile", str(value)]
        elif key == "output":
            parts += ["--output", str(value)]
        elif key == "language":
            parts += ["--language", str(value)]
        elif key == "long_descriptions":
            parts.append("--long-descriptions" if value else "--no-long-descriptions")
        elif key == "product_limit":
            parts += ["--limit", str(value or 0)]
        elif key == "options" and isinstance(value, dict):
            parts += _option_flags(options_before or {}, value)
    return " ".join(parts)


def _option_flags(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The flags of the options that changed (stored options leave the defaults out)."""
    try:
        old, new = service.effective_options(before), service.effective_options(after)
    except ValueError:
        old, new = {}, service.effective_options(after)
    flags: list[str] = []
    if old.get("csv_variant") != new["csv_variant"]:
        flags.append("--excel" if new["csv_variant"] == "excel" else "--no-excel")
    for key, flag in (("gate_product_drop", "product"), ("gate_size_drop", "size")):
        if old.get(key) != new[key]:
            flags += [f"--gate-{flag}-drop", "off" if new[key] is None else f"{new[key]:g}"]
    if old.get("gate_hold_empty") != new["gate_hold_empty"]:
        flags.append("--gate-hold-empty" if new["gate_hold_empty"] else "--no-gate-hold-empty")
    if old.get("validate") != new["validate"]:
        flags.append("--validate" if new["validate"] else "--no-validate")
    return flags


def save_selection(view: SelectionView, *, created: bool) -> str:
    criteria = q(service.criteria_to_json(view.criteria))
    name = q(view.name) if view.name_custom else "''"
    if created:
        named = f" --name {name}" if view.name_custom else ""
        return f"tuiexport selections create --criteria {criteria}{named}"
    return f"tuiexport selections update {view.id} --criteria {criteria} --name {name}"


def download(view: DefinitionView, folder: str) -> str:
    return f"tuiexport --run {q(view.name)} -o {q(folder)}/"


def download_delta(view: DefinitionView, since: str, folder: str) -> str:
    return f"tuiexport --run {q(view.name)} --since {q(since)} -o {q(folder)}/"


def share(url: str) -> str:
    # -f: fail on HTTP errors; -R: the file's time; -OJ: save under the server's file name.
    return f"curl -fROJ {q(url)}"


def rotate(view: DefinitionView) -> str:
    return f"tuiexport exports rotate-token {q(view.name)}"


def delete(view: DefinitionView) -> str:
    return f"tuiexport exports delete {q(view.name)}"


def create_link(view: DefinitionView, name: str) -> str:
    return f"tuiexport links create {q(view.name)} {q(name)}"


def rename_link(view: DefinitionView, before: str, after: str) -> str:
    return f"tuiexport links rename {q(view.name)} {q(before)} {q(after)}"


def rotate_link(view: DefinitionView, name: str) -> str:
    return f"tuiexport links rotate {q(view.name)} {q(name)}"


def revoke_link(view: DefinitionView, name: str) -> str:
    return f"tuiexport links revoke {q(view.name)} {q(name)}"


class CommandLogScreen(ModalScreen[None]):
    """The session's commands, newest first; Enter copies the highlighted one (OSC 52)."""

    DEFAULT_CSS = """
    CommandLogScreen { align: center middle; }
    #log-box { width: 90%; height: 80%; border: round $accent; background: $panel; }
    #log-box OptionList { height: 1fr; border: none; }
    #log-hint { height: 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f11", "dismiss", "Close", id="log.close"),
        Binding("enter,c", "copy", "Copy", id="log.copy"),
    ]

    def __init__(self, entries: list[Entry]) -> None:
        super().__init__()
        self.entries = list(reversed(entries))

    def compose(self) -> ComposeResult:
        with Vertical(id="log-box") as box:
            box.border_title = "Commands behind your actions"
            yield Static("Enter copies the command (OSC 52) · Esc closes", id="log-hint")
            options = [
                Option(
                    Text.assemble(
                        (f"{e.when:%H:%M:%S} ", "dim"), (e.what, "bold"), "\n  ", e.command
                    )
                )
                for e in self.entries
            ]
            if not options:
                options = [
                    Option(Text("Nothing yet: what you change here is listed."), disabled=True)
                ]
            yield OptionList(*options, id="log-list")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        if self.entries:
            options.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_copy()

    def action_copy(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is None or index >= len(self.entries):
            return
        command = self.entries[index].command
        self.app.copy_to_clipboard(command)
        self.notify(command, title="Command copied", markup=False, timeout=6)
