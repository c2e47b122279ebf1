"""Actions on one export definition: new, download, share, rotate token, delete."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input

from tuiexport import config, service
from tuiexport.errors import UserError
from tuiexport.management.views import DefinitionView
from tuiexport.screens import command_log as commands
from tuiexport.screens.dialogs import ConfirmScreen
from tuiexport.screens.main_parts import MainScreenParts
from tuiexport.widgets.download_bar import DownloadBar
from tuiexport.widgets.guard import guarded, refuse_read_only, writes


class DefinitionActionsMixin(MainScreenParts):
    """Mixed into :class:`MainScreen`; what it uses of it is declared in :mod:`.main_parts`."""

    @writes("creating exports")
    @guarded
    def action_new_definition(self) -> None:
        def create() -> None:
            view = service.create_definition()
            self.app.record(f"New export '{view.name}'", commands.create_definition(view))
            self.query_one("#filter", Input).value = ""
            self.exports.reload(
                cursor_id=view.export_id, then=lambda: self._expand_new(view.export_id)
            )

        self.close_editor(then=create)

    def _expand_new(self, export_id: str) -> None:
        index = self.exports.definitions.index_of(export_id)
        if index is not None:
            self.open_editor(index)
            self.query_one("#ed-name", Input).action_select_all()

    @guarded
    def action_download(self) -> None:
        view = self.current()
        if view is None:
            return
        if not self.app.read_only_downloads and refuse_read_only(self.app, "downloading"):
            return
        if (
            self.exports.editor.view is not None
            and view.export_id == self.exports.editor.view.export_id
            and self.exports.editor.dirty
        ):
            raise UserError("Save or discard your changes first (ctrl+s / ctrl+r).")
        if not view.valid:
            raise UserError(f"'{view.name}' cannot run: " + " ".join(view.reasons))
        if not self.downloads.start(view.export_id, view.name):
            raise UserError("A download is already running; Esc cancels it.")
        self.app.record(
            f"Download '{view.name}'", commands.download(view, str(config.downloads_dir()))
        )

    def on_download_bar_started(self, message: DownloadBar.Started) -> None:
        self.exports.history.reload()

    def on_download_bar_finished(self, message: DownloadBar.Finished) -> None:
        run = message.run
        self.exports.history.update_run(run)
        self.exports.reload()
        if run.status in ("success", "warning"):
            self.notify(
                f"{run.product_count:,} products saved to {run.artifact_path}"
                + (f"\n{run.messages[-1]}" if run.status == "warning" and run.messages else ""),
                title=f"Download {run.status}",
                severity="warning" if run.status == "warning" else "information",
                markup=False,
                timeout=10,
            )
        elif run.status == "cancelled":
            self.notify(f"Download of '{run.export_name}' cancelled.", markup=False)
        else:
            self.notify(
                " ".join(run.messages) or "The download failed.",
                title="Download failed",
                severity="error",
                markup=False,
                timeout=10,
            )

    @guarded
    def action_share(self) -> None:
        view = self.current()
        if view is None:
            return
        url = self.share_url(view)
        self.app.copy_to_clipboard(url)
        self.app.record(f"Share URL of '{view.name}'", commands.share(url))
        note = "" if self.app.server_url else "\n(the share server is off in this TUI)"
        self.notify(url + note, title="Share URL copied", markup=False, timeout=10)

    @writes("giving exports new share tokens")
    def action_rotate(self) -> None:
        view = self.current()
        if view is None:
            return

        def rotate() -> None:
            fresh = service.rotate_share_token(view.export_id)
            self.app.record(f"New share token for '{view.name}'", commands.rotate(view))
            self._refresh_after_change(fresh)
            self.notify("New share token: the old URL no longer works.", markup=False)

        self._confirm(
            f"Give '{view.name}' a new share token? The current share URL stops working at once.",
            rotate,
            yes="New token",
        )

    @writes("deleting exports")
    def action_delete(self) -> None:
        view = self.current()
        if view is None:
            return

        def delete() -> None:
            name = service.delete_definition(view.export_id)
            self.app.record(f"Deleted '{name}'", commands.delete(view))
            expanded = self.exports.definitions.expanded_view
            if expanded and expanded.export_id == view.export_id:
                self.exports.definitions.collapse()
            self.exports.reload()
            self.exports.definitions.focus()
            self.notify(f"Deleted '{name}'. Its history stays.", markup=False)

        self._confirm(f"Delete the export '{view.name}'? Its history rows stay.", delete)

    def _confirm(self, question: str, then: Callable[[], None], **labels: str) -> None:
        """Ask in a modal; run ``then`` (errors become notifications) only on yes."""

        @guarded
        def done(self: DefinitionActionsMixin, yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmScreen(question, **labels), lambda yes: done(self, yes))

    def _refresh_after_change(self, view: DefinitionView) -> None:
        self.exports.definitions.replace_view(view)
        editor = self.exports.editor
        if editor.view is not None and editor.view.export_id == view.export_id:
            editor.rebase(view, self.share_url(view))
        self.exports.reload()
