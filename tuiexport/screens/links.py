"""The share links of one export (issue 12): one per consumer, each with its own URL, and how each
consumer fetches: last fetch, what it got, fetches in the last 7 days, its usual interval, and a
mark on a link silent for longer than usual. New, rename, new token and revoke, each on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tuiexport import service
from tuiexport.management.views import DefinitionView, LinkActivity, LinkView
from tuiexport.screens import command_log as commands
from tuiexport.screens.dialogs import ConfirmScreen, NameScreen
from tuiexport.units import span
from tuiexport.widgets import fmt
from tuiexport.widgets.guard import background, write_in_background, writes
from tuiexport.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from tuiexport.app import ExportApp

#: The mark of a link that is silent for longer than usual.
OVERDUE = "⚠"


def row_cells(a: LinkActivity) -> tuple[Text, ...]:
    """A link's row: name (marked when overdue), last fetch, what it got, 7 days, usual."""
    name = Text(fmt.cut(a.link.name, 16))
    if a.overdue:
        name = Text(f"{OVERDUE} ") + name
        name.stylize("bold #ff8700")
    # What it got: "full" and the run whose file it was, or "delta →" the run it brought the
    # consumer to (since which cursor is in the detail below: both log IDs do not fit 80 columns).
    got = (
        Text(f"{a.got} {'→ ' if a.got_since else ''}{a.got_run}")
        if a.got
        else Text("—", style="dim")
    )
    return (
        name,
        Text(fmt.when(a.last_fetch, short=True) or "never", style="" if a.last_fetch else "dim"),
        got,
        Text(str(a.fetches_7d), justify="right"),
        Text(span(a.usual_interval) if a.usual_interval is not None else "—"),
    )


def got_text(a: LinkActivity) -> str:
    """What the link's last fetch got, in a sentence ("" when it never fetched)."""
    if a.got_since:
        return (
            f"Last fetch: delta since {a.got_since} → run {a.got_run} ({a.got_added:,} added, "
            f"{a.got_changed:,} changed, {a.got_removed:,} removed); next cursor {a.last_log_id}."
        )
    if a.got:
        return f"Last fetch: the full file of run {a.got_run}."
    return ""


class LinksScreen(ModalScreen[None]):
    CSS_PATH = "links.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="links.close"),
        Binding("n", "new", "New link", id="links.new"),
        Binding("r", "rename", "Rename", id="links.rename"),
        Binding("t", "rotate", "New token", id="links.rotate"),
        Binding("d,delete", "revoke", "Revoke", id="links.revoke"),
        Binding("c,enter", "copy", "Copy URL", id="links.copy"),
    ]

    if TYPE_CHECKING:
        app: ExportApp

    def __init__(self, export: DefinitionView) -> None:
        super().__init__()
        self.export = export
        self.activity: list[LinkActivity] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="links-box") as box:
            box.border_title = f"Share links of '{fmt.cut(self.export.name, 40)}'"
            table: DataTable[Text] = DataTable(
                id="links-table", cursor_type="row", zebra_stripes=True
            )
            table.add_columns("Link", "Last fetch", "Got", "7 days", "Usual")
            yield table
            yield Static("", id="links-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()

    # --- what is shown ------------------------------------------------------------------------

    @background("links")
    def load(self, cursor_id: int | None = None) -> None:
        activity = service.link_activity(self.export.export_id)
        self.app.call_from_thread(self.show, activity, cursor_id)

    def show(self, activity: list[LinkActivity], cursor_id: int | None = None) -> None:
        table = self.query_one("#links-table", DataTable)
        keep = cursor_id if cursor_id is not None else self.current_id()
        self.activity = activity
        table.clear()
        for a in activity:
            table.add_row(*row_cells(a), key=str(a.link.link_id))
        ids = [a.link.link_id for a in activity]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        table.focus()
        self.show_detail()

    def current(self) -> LinkActivity | None:
        table = self.query_one("#links-table", DataTable)
        if not self.activity or not 0 <= table.cursor_row < len(self.activity):
            return None
        return self.activity[table.cursor_row]

    def current_id(self) -> int | None:
        current = self.current()
        return current.link.link_id if current is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        detail = self.query_one("#links-detail", Static)
        a = self.current()
        if a is None:
            detail.update(
                Text(
                    "This export has no share link: nobody can fetch it. n creates one.",
                    style="bold",
                )
            )
            return
        text = Text()
        if a.warning:
            text.append(f"{OVERDUE} {a.warning}\n", style="bold #ff8700")
        got = got_text(a)
        if got:
            text.append(got + "\n")
        text.append(self.url(a))
        since = f"Created {fmt.when(a.link.created)}"
        if a.last_seen:
            since = f"Last seen {fmt.when(a.last_seen)} (a 304 or a HEAD: no file). {since}"
        if a.link.rotated:
            since += f", new token {fmt.when(a.link.rotated)}"
        text.append(f"\n{since}", style="dim")
        detail.update(text)

    def url(self, a: LinkActivity) -> str:
        return service.link_url(a.link, self.app.server_url or None)

    # --- the commands -------------------------------------------------------------------------

    def action_copy(self) -> None:
        a = self.current()
        if a is None:
            self.notify("There is no link to copy; n creates one.", severity="warning")
            return
        url = self.url(a)
        self.app.copy_to_clipboard(url)
        self.app.record(f"Share URL of '{a.link.name}'", commands.share(url))
        self.notify(url, title=f"URL of '{a.link.name}' copied", markup=False, timeout=10)

    @writes("creating share links")
    def action_new(self) -> None:
        export = self.export

        def created(link: LinkView) -> None:
            self.app.record(
                f"Share link '{link.name}' of '{export.name}'",
                commands.create_link(export, link.name),
            )
            self.notify(f"Share link '{link.name}' created; c copies its URL.", markup=False)
            self.load(link.link_id)

        def named(name: str | None) -> None:
            if name is not None:
                write_in_background(
                    self,
                    f"Creating the share link '{name}'",
                    lambda: service.create_link(export.export_id, name),
                    created,
                )

        self.app.push_screen(NameScreen("Name the new share link (e.g. the consumer):"), named)

    @writes("renaming share links")
    def action_rename(self) -> None:
        a, export = self.current(), self.export
        if a is None:
            return
        before, link_id = a.link.name, a.link.link_id

        def renamed(link: LinkView) -> None:
            self.app.record(
                f"Renamed share link '{before}'", commands.rename_link(export, before, link.name)
            )
            self.notify(f"Renamed to '{link.name}'; its URL is unchanged.", markup=False)
            self.load(link.link_id)

        def named(name: str | None) -> None:
            if name is not None and name != before:
                write_in_background(
                    self,
                    f"Renaming the share link '{before}'",
                    lambda: service.rename_link(export.export_id, link_id, name),
                    renamed,
                )

        self.app.push_screen(NameScreen(f"Rename the share link '{before}':", before), named)

    @writes("giving share links new tokens")
    def action_rotate(self) -> None:
        a, export = self.current(), self.export
        if a is None:
            return
        name, link_id = a.link.name, a.link.link_id

        def rotated(link: LinkView) -> None:
            self.app.record(
                f"New token for share link '{name}'", commands.rotate_link(export, name)
            )
            self.notify(f"New URL for '{name}': the old one no longer works.", markup=False)
            self.load(link_id)

        self._confirm(
            f"Give '{name}' a new token? Its current URL stops working at once; the export's "
            "other links keep theirs.",
            "New token",
            lambda: write_in_background(
                self,
                f"Giving '{name}' a new token",
                lambda: service.rotate_link(export.export_id, link_id),
                rotated,
            ),
        )

    @writes("revoking share links")
    def action_revoke(self) -> None:
        a, export = self.current(), self.export
        if a is None:
            return
        name, link_id = a.link.name, a.link.link_id

        def revoked(link: LinkView) -> None:
            self.app.record(f"Revoked share link '{name}'", commands.revoke_link(export, name))
            self.notify(f"Revoked '{name}': its URL no longer works.", markup=False)
            self.load()

        self._confirm(
            f"Revoke '{name}'? Its URL stops working at once; the export's other links keep "
            "working.",
            "Revoke",
            lambda: write_in_background(
                self,
                f"Revoking '{name}'",
                lambda: service.revoke_link(export.export_id, link_id),
                revoked,
            ),
        )

    def _confirm(self, question: str, yes: str, then: Callable[[], object]) -> None:
        """Ask in a modal; run ``then`` only on yes."""

        def answered(sure: bool | None) -> None:
            if sure:
                then()

        self.app.push_screen(ConfirmScreen(question, yes=yes), answered)
