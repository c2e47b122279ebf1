"""One run's details: log ID, status, times, counts, file, messages, products per supplier."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tuiexport import service
from tuiexport.errors import UserError
from tuiexport.management.views import RunView
from tuiexport.screens.dialogs import ConfirmScreen
from tuiexport.widgets import fmt
from tuiexport.widgets.guard import background, guarded
from tuiexport.widgets.history_table import HistoryTable
from tuiexport.widgets.key_bar import KeyBar
from tuiexport.widgets.run_trends import RunTrends


def details(run: RunView, notifications: list[service.NotificationView] | None = None) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("Log ID", Text(run.log_id, style="bold")),
        ("Status", fmt.status(run.status)),
        ("Export", Text(f"{run.export_name}  ({run.export_id})")),
        ("Trigger", Text(run.trigger)),
        *(
            [("Share link", Text(f"{run.link_name}  (link {run.link_id})"))]
            if run.link_id is not None
            else []
        ),
        *([("Served", Text(f"the file of run {run.source_log_id}"))] if run.source_log_id else []),
        ("Started", Text(fmt.when(run.started))),
        ("Finished", Text(fmt.when(run.finished) or "—")),
        ("Duration", Text(fmt.duration(run.duration) or "—")),
        ("API", Text(run.api_version or "—")),
        ("Format", Text(f"{run.file_format}  ({run.profile}/{run.output})")),
        (
            "Products",
            Text(
                f"{run.product_count:,}"
                + (f"  ({run.omitted_count:,} left out)" if run.omitted_count else "")
            ),
        ),
        ("Size", Text(fmt.size(run.size) or "—")),
        ("SHA-256", Text(run.sha256 or "—")),
        (
            "File",
            Text(
                (run.artifact_path or "—")
                + ("" if run.artifact_kept or not run.artifact_path else "  (removed)")
            ),
        ),
    ]
    for label, value in rows:
        table.add_row(label, value)
    gate = gate_text(run)
    if gate is not None:
        table.add_row("Publish gate", gate)
    if run.is_delta:
        table.add_row(
            "Delta",
            Text(
                f"since {run.delta_since} up to run {run.delta_base}: {run.added_count:,} "
                f"added, {run.changed_count:,} changed, {run.removed_count:,} removed"
            ),
        )
    table.add_row("Messages", Text("\n".join(run.messages) or "—"))
    if run.supplier_shares:
        total = sum(run.supplier_shares.values()) or 1
        shares = Text()
        for name, count in sorted(run.supplier_shares.items(), key=lambda kv: -kv[1]):
            shares.append(f"{count / total:6.1%}  {count:>9,}  {name}\n")
        table.add_row("Suppliers", shares)
    if notifications:
        table.add_row("Notifications", notification_text(notifications))
    return table


def gate_text(run: RunView) -> Text | None:
    """Why the publish gate held the run (its comparison with the last published run), and
    what the operator may do; or what they decided. None for a run the gate let through."""
    reasons = [m for m in run.messages if "(option gate_" in m]
    decided = [m for m in run.messages if m.startswith(("Approved (", "Discarded ("))]
    if not reasons and not decided:
        return None
    text = Text()
    for reason in reasons:
        text.append(reason + "\n", style="bold #ff8700" if run.status == "held" else "")
    if run.status == "held":
        text.append("Not published: ")
        text.append("a", style="bold")
        text.append(" approves it (it becomes the current file), ")
        text.append("d", style="bold")
        text.append(" discards it (its file is deleted).")
    for message in decided:
        text.append(message)
    text.rstrip()
    return text


def notification_text(notifications: list[service.NotificationView]) -> Text:
    """Each notification (webhook, email) with its state and every delivery attempt."""
    text = Text()
    for n in notifications:
        style = {"delivered": "green", "failed": "red"}.get(n.state, "yellow")
        text.append(f"{n.channel} {n.target}  ")
        text.append(n.state, style=style)
        if n.state == "pending" and n.next_attempt:
            text.append(f", next attempt {fmt.when(n.next_attempt)}")
        text.append("\n")
        for t in n.tries:
            text.append(f"  #{t.attempt} {fmt.local(t.at):%H:%M:%S}  {t.outcome}\n")
    text.rstrip()
    return text


class RunDetailsScreen(ModalScreen[None]):
    CSS_PATH = "run_details.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="run.close"),
        Binding("l", "copy('log')", "Copy log ID", id="run.copy_log"),
        Binding("p", "copy('path')", "Copy file path", id="run.copy_path"),
        Binding("m", "copy('messages')", "Copy messages", id="run.copy_messages"),
        Binding("a", "decide('approve')", "Approve held run", id="run.approve"),
        Binding("d", "decide('discard')", "Discard held run", id="run.discard"),
        Binding("s", "changes_since", "Download changes since", id="run.delta"),
    ]

    def __init__(
        self, run: RunView, changes_since: Callable[[RunView], bool] | None = None
    ) -> None:
        """``changes_since(run)`` starts the download of what changed since ``run`` (the main
        screen's download bar shows it) and says whether it started."""
        super().__init__()
        self.run = run
        self.changes_since = changes_since

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="run-box") as box:
            box.border_title = f"Run {self.run.log_id}"
            # The export's last runs first: a drop in count or size shows at a glance.
            yield RunTrends(self.run.export_id, self.run.log_id, id="run-trends")
            notes = service.run_notifications(self.run.log_id)
            yield Static(details(self.run, notes), id="run-details")
            # What changed since the run published before it (filled in by a worker: two
            # manifests of a million products take a moment to compare).
            changes = Static(id="run-changes")
            changes.display = False
            yield changes
        yield KeyBar()

    def on_mount(self) -> None:
        if not self.run.is_delta and self.run.status in ("success", "warning", "held"):
            self.load_changes(self.run.log_id)

    @background("run-diff")
    def load_changes(self, log_id: str) -> None:
        diff = service.run_diff_with_previous(log_id)
        if diff is not None:
            self.app.call_from_thread(self._show_changes, diff)

    def _show_changes(self, diff: service.RunDiff) -> None:
        widget = self.query_one("#run-changes", Static)
        held = self.run.status == "held"
        title = "Changes against the published run" + (
            " (approving publishes these)" if held else ""
        )
        widget.update(Text(title + "\n" + "\n".join(diff.lines())))
        widget.display = True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "decide":
            return self.run.status == "held"  # the keys show only for a held run
        if action == "changes_since":
            return self.changes_since is not None
        return True

    def action_decide(self, decision: str) -> None:
        """Approve (publish) or discard the held run; discarding asks first."""
        if self.run.status != "held":
            self.notify(f"The run is {self.run.status}, not held.", severity="warning")
            return
        if decision == "approve":
            self._decide(decision)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(decision)

        self.app.push_screen(
            ConfirmScreen(
                f"Discard run {self.run.log_id}? Its file is deleted; the previous file "
                "stays the export's current one.",
                yes="Discard",
            ),
            answered,
        )

    def _decide(self, decision: str) -> None:
        decide = service.approve_run if decision == "approve" else service.discard_run
        try:
            run = decide(self.run.log_id, by="tui")
        except UserError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.run = run
        self.query_one("#run-details", Static).update(
            details(run, service.run_notifications(run.log_id))
        )
        self.refresh_bindings()
        for table in self.app.query(HistoryTable):
            table.update_run(run)
        self.notify(run.messages[-1], title=f"Run {run.log_id} {run.status}", markup=False)

    @guarded
    def action_changes_since(self) -> None:
        """Download what changed since this run (a delta, with this run's log ID as the
        cursor); once it runs, close so that its bar (where esc cancels) shows."""
        if self.changes_since is None:
            return
        if self.run.status not in ("success", "warning"):
            raise UserError(
                f"The run {self.run.log_id} {self.run.status}: only a finished run (or a "
                "download or delta of one) is a cursor to download changes since."
            )
        if self.changes_since(self.run):
            self.dismiss()

    def action_copy(self, what: str) -> None:
        run = self.run
        value = {
            "log": run.log_id,
            "path": run.artifact_path or "",
            "messages": "\n".join(run.messages),
        }[what]
        if not value:
            self.notify("There is nothing to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(value)
        shown = value if len(value) < 80 else value[:77] + "…"
        self.notify(f"Copied: {shown}", title="Clipboard", markup=False)
