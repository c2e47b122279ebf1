"""The export commands of the main screen: new, open/close, save, discard, download, share, rotate
the share token, delete, and assigning a selection saved from its tab.

:class:`DefinitionActions` is a component, not a mixin: the screen builds it with the widgets it
acts on (the exports pane and the download bar) and calls its methods from its actions and message
handlers. Everything that writes goes through :func:`~tuiexport.widgets.guard.write_in_background`:
the service call runs in a thread worker, what it changes is shown once it returns, and an error
becomes a notification; the UI thread never waits for the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from textual.dom import DOMNode

from tuiexport import config, service
from tuiexport.errors import UserError
from tuiexport.management.views import DefinitionView, RunView, SelectionView
from tuiexport.screens import command_log as commands
from tuiexport.screens.dialogs import ConfirmScreen, UnsavedScreen
from tuiexport.widgets.download_bar import DownloadBar
from tuiexport.widgets.exports_pane import ExportsPane
from tuiexport.widgets.guard import guarded, refuse_read_only, write_in_background
from tuiexport.widgets.selection_editor import SelectionEditor

if TYPE_CHECKING:
    from tuiexport.app import ExportApp


class DefinitionActions:
    """Acts on the definitions shown in ``exports``; downloads through ``downloads``; its workers,
    dialogs and notifications belong to ``host`` (the main screen)."""

    def __init__(self, host: DOMNode, exports: ExportsPane, downloads: DownloadBar) -> None:
        self.host, self.exports, self.downloads = host, exports, downloads

    @property
    def app(self) -> ExportApp:
        return cast("ExportApp", self.host.app)

    def _notify(self, message: str, **kwargs: Any) -> None:
        self.app.notify(message, markup=False, **kwargs)

    # --- open and close --------------------------------------------------------------------

    def toggle_row(self) -> None:
        lst = self.exports.definitions
        if lst.cursor_view is None:
            return
        if lst.expanded == lst.cursor:
            self.close_editor()
        else:
            self.close_editor(then=lambda: self.exports.open_row(lst.cursor))

    def close_editor(self, then: Callable[[], None] | None = None) -> None:
        """Collapse the expanded row, asking first about unsaved changes; then run ``then``."""
        if self.exports.definitions.expanded is None:
            if then:
                then()
            return

        def close() -> None:
            self.exports.close_row()
            if then:
                then()

        @guarded
        def finish(self: DefinitionActions, answer: str | None) -> None:
            if answer == "cancel":
                return
            if answer == "save":
                if not refuse_read_only(self.app, "saving"):
                    self.save(then=close)  # closed once stored; a failed save keeps it open
                return
            close()

        name = self.exports.unsaved()
        if name is not None:
            self.app.push_screen(UnsavedScreen(f"The export '{name}'"), lambda a: finish(self, a))
        else:
            finish(self, "discard")

    def discard(self) -> None:
        lst = self.exports.definitions
        if lst.expanded is not None and lst.expanded_view is not None:
            self.exports.open_row(lst.expanded, focus_name=False)
            self._notify("Changes discarded.", timeout=2)

    # --- writes ----------------------------------------------------------------------------

    def new(self) -> None:
        def create() -> None:
            write_in_background(self.host, "Creating an export", service.create_definition, created)

        def created(view: DefinitionView) -> None:
            self.app.record(f"New export '{view.name}'", commands.create_definition(view))
            self.exports.clear_filter()
            self.exports.reload(cursor_id=view.export_id, then=lambda: expand(view.export_id))

        def expand(export_id: str) -> None:
            index = self.exports.definitions.index_of(export_id)
            if index is not None:
                self.exports.open_row(index)
                self.exports.editor.select_name()

        self.close_editor(then=create)

    def save(self, then: Callable[[], None] | None = None) -> None:
        """Store the open editor's changes (in a worker); then run ``then``."""
        editor = self.exports.editor
        changes = editor.changes()  # a UserError here is the caller's notification
        if "name" in changes and not changes["name"]:
            raise UserError("Give the export a name before saving.")
        if not changes:
            self._notify("Nothing to save.", timeout=2)
            if then:
                then()
            return
        assert editor.view is not None  # changes() is empty without a definition
        export_id, before = editor.view.export_id, editor.view.name
        options_before = editor.view.options

        def write() -> tuple[DefinitionView, list[SelectionView]]:
            return service.update_definition(export_id, **changes), service.list_selections()

        def saved(result: tuple[DefinitionView, list[SelectionView]]) -> None:
            view, selections = result
            self.app.record(
                f"Saved '{view.name}'", commands.update_definition(before, changes, options_before)
            )
            self.exports.saved(view, selections, changes)
            self._notify(f"Saved '{view.name}'." + ("" if view.valid else " It is still invalid."))
            if then:
                then()

        write_in_background(self.host, f"Saving '{before}'", write, saved)

    def rotate(self) -> None:
        view = self.exports.current()
        if view is None:
            return

        def rotated(fresh: DefinitionView) -> None:
            self.app.record(f"New share token for '{view.name}'", commands.rotate(view))
            self.exports.apply(fresh)
            self._notify("New share token: the old URL no longer works.")

        self._confirm(
            f"Give '{view.name}' a new share token? The current share URL stops working at once.",
            lambda: write_in_background(
                self.host,
                f"Giving '{view.name}' a new share token",
                lambda: service.rotate_share_token(view.export_id),
                rotated,
            ),
            yes="New token",
        )

    def delete(self) -> None:
        view = self.exports.current()
        if view is None:
            return

        def deleted(name: str) -> None:
            self.app.record(f"Deleted '{name}'", commands.delete(view))
            expanded = self.exports.definitions.expanded_view
            if expanded and expanded.export_id == view.export_id:
                self.exports.definitions.collapse()
            self.exports.reload()
            self.exports.definitions.focus()
            self._notify(f"Deleted '{name}'. Its history stays.")

        self._confirm(
            f"Delete the export '{view.name}'? Its history rows stay.",
            lambda: write_in_background(
                self.host,
                f"Deleting '{view.name}'",
                lambda: service.delete_definition(view.export_id),
                deleted,
            ),
        )

    def _confirm(self, question: str, then: Callable[[], object], **labels: str) -> None:
        """Ask in a modal; run ``then`` (errors become notifications) only on yes."""

        @guarded
        def done(self: DefinitionActions, yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmScreen(question, **labels), lambda yes: done(self, yes))

    def selection_saved(self, message: SelectionEditor.Saved) -> None:
        """A selection tab stored its rules: counts, pick lists and lists follow; a selection
        created from an export's F4 is assigned to it (that write in a worker too)."""
        view, editor = message.view, message.editor
        self.exports.forget_count(view.id)
        self.app.record(
            f"Saved selection '{view.name}'",
            commands.save_selection(view, created=message.created),
        )
        for_export = editor.for_export if message.created else None
        if for_export is None:
            note = f" Used by {len(view.used_by)} export(s)." if view.used_by else ""
            self._selection_stored(view, note)
            return

        def assign() -> tuple[DefinitionView | None, str]:
            try:
                return service.update_definition(for_export, selection_id=view.id), ""
            except UserError as exc:  # the export was deleted meanwhile
                return None, f" It could not be assigned: {exc}"

        def assigned(result: tuple[DefinitionView | None, str]) -> None:
            definition, note = result
            if definition is not None:
                self.app.record(
                    f"Assigned '{view.name}' to '{definition.name}'",
                    commands.update_definition(definition.name, {"selection_id": view.id}),
                )
                note = f" Assigned to '{definition.name}'."
                editor.for_export = None
                self.exports.apply(definition)
            self._selection_stored(view, note)

        write_in_background(self.host, f"Assigning '{view.name}' to its export", assign, assigned)

    def _selection_stored(self, view: SelectionView, note: str) -> None:
        if self.exports.editor.view is not None:
            self.exports.editor.selections = service.list_selections()
            self.exports.editor.refresh_choices()
        self.exports.reload()
        if view.valid:
            self._notify(f"Saved selection '{view.name}'.{note}")
        else:
            # Kept, like an invalid definition, but never as a plain success: say why it is
            # invalid and what that means for the exports that use it.
            self._notify(
                f"Saved selection '{view.name}', but it is invalid: {' '.join(view.reasons)} "
                f"Exports using it cannot run until it is fixed.{note}",
                title="Invalid selection",
                severity="warning",
                timeout=10,
            )

    # --- downloads and sharing -------------------------------------------------------------

    def download(self) -> None:
        view = self.exports.current()
        if view is None:
            return
        if not self.app.read_only_downloads and refuse_read_only(self.app, "downloading"):
            return
        if self.exports.has_unsaved_edits(view):
            raise UserError("Save or discard your changes first (ctrl+s / ctrl+r).")
        if not view.valid:
            raise UserError(f"'{view.name}' cannot run: " + " ".join(view.reasons))
        if not self.downloads.start(view.export_id, view.name):
            raise UserError("A download is already running; Esc cancels it.")
        self.app.record(
            f"Download '{view.name}'", commands.download(view, str(config.downloads_dir()))
        )

    def download_delta(self, run: RunView) -> None:
        """Download what changed since ``run`` (a delta, as ``tuiexport --run EXPORT --since
        LOGID``) into the downloads folder; the same read-only rule as a download."""
        if not self.app.read_only_downloads and refuse_read_only(self.app, "downloading"):
            return
        view = service.get_definition(run.export_id)
        reason = service.delta_refusal(view.profile, view.output)
        if reason:
            raise UserError(reason)
        if not view.valid:
            raise UserError(f"'{view.name}' cannot run: " + " ".join(view.reasons))
        if not self.downloads.start(view.export_id, view.name, since=run.log_id):
            raise UserError("A download is already running; Esc cancels it.")
        self.app.record(
            f"Changes of '{view.name}' since {run.log_id}",
            commands.download_delta(view, run.log_id, str(config.downloads_dir())),
        )

    def download_started(self) -> None:
        self.exports.history.reload()

    def download_finished(self, run: RunView) -> None:
        self.exports.history.update_run(run)
        self.exports.reload()
        if run.is_delta and run.status in ("success", "warning"):
            self._notify(
                f"{run.added_count:,} added, {run.changed_count:,} changed, "
                f"{run.removed_count:,} removed since {run.delta_since}: saved to "
                f"{run.artifact_path}\nNext cursor: {run.log_id}",
                title="Changes downloaded",
                timeout=10,
            )
        elif run.status in ("success", "warning"):
            self._notify(
                f"{run.product_count:,} products saved to {run.artifact_path}"
                + (f"\n{run.messages[-1]}" if run.status == "warning" and run.messages else ""),
                title=f"Download {run.status}",
                severity="warning" if run.status == "warning" else "information",
                timeout=10,
            )
        elif run.status == "held":
            self._notify(
                " ".join(run.messages[1:2])
                + f"\nKept as {run.artifact_path}: open the run in the history (enter) to "
                "approve (a) or discard (d) it.",
                title="Download held by the publish gate",
                severity="warning",
                timeout=15,
            )
        elif run.status == "cancelled":
            self._notify(f"Download of '{run.export_name}' cancelled.")
        else:
            self._notify(
                " ".join(run.messages) or "The download failed.",
                title="Download failed",
                severity="error",
                timeout=10,
            )

    def share(self) -> None:
        view = self.exports.current()
        if view is None:
            return
        url = self.exports.share_url(view)
        if not url:
            self._notify(
                f"'{view.name}' has no share link (every one was revoked); ctrl+k creates one.",
                severity="warning",
            )
            return
        self.app.copy_to_clipboard(url)
        self.app.record(f"Share URL of '{view.name}'", commands.share(url))
        note = "" if self.app.server_url else "\n(the share server is off in this TUI)"
        self._notify(url + note, title="Share URL copied", timeout=10)
