"""Opening, saving and closing the "Selection: <name>" tabs of the main screen."""

from __future__ import annotations

import contextlib
from itertools import count

from rich.text import Text
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import TabbedContent, TabPane, Tabs

from tuiexport import config, service
from tuiexport.errors import UserError
from tuiexport.management.views import SelectionView
from tuiexport.screens import command_log as commands
from tuiexport.screens.dialogs import UnsavedScreen
from tuiexport.screens.main_parts import MainScreenParts
from tuiexport.widgets.guard import guarded, refuse_read_only, writes
from tuiexport.widgets.selection_editor import SelectionEditor

_tab_ids = count(1)


class SelectionTabsMixin(MainScreenParts):
    """Mixed into :class:`MainScreen`; what it uses of it is declared in :mod:`.main_parts`."""

    def selection_editors(self) -> list[SelectionEditor]:
        return list(self.query(SelectionEditor))

    def active_selection_editor(self) -> SelectionEditor | None:
        tabs: TabbedContent = self.tabs
        if not tabs.active or tabs.active == "exports-tab":
            return None
        pane = tabs.get_pane(tabs.active)
        return pane.query_one(SelectionEditor)

    async def open_selection_tab(
        self, selection: SelectionView | None, *, for_export: str | None = None
    ) -> None:
        if selection is not None:
            for editor in self.selection_editors():
                if editor.selection is not None and editor.selection.id == selection.id:
                    if editor.parent is not None and editor.parent.id is not None:
                        self.show_tab(editor.parent.id)
                    return
        view = self.current()
        limit = view.effective_limit if view is not None else config.settings().contract_limit
        language = view.language if view is not None else config.settings().default_language
        editor = SelectionEditor(selection, limit=limit, for_export=for_export, language=language)
        pane_id = f"selection-{next(_tab_ids)}"
        title = Content(f"Selection: {selection.name if selection else 'new'}")
        pane = TabPane(title, editor, id=pane_id)

        await self.tabs.add_pane(pane)
        self.show_tab(pane_id)

    # --- actions ---------------------------------------------------------------------------

    @guarded
    async def action_edit_selection(self) -> None:
        editor = self.exports.editor
        view = self.current()
        if view is None:
            return
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
    def save_selection_tab(self) -> None:
        editor = self.active_selection_editor()
        if editor is not None:
            editor.save()

    def on_selection_editor_saved(self, message: SelectionEditor.Saved) -> None:
        view, editor = message.view, message.editor
        self.exports.forget_count(view.id)
        self.app.record(
            f"Saved selection '{view.name}'",
            commands.save_selection(view, created=message.created),
        )
        note = ""
        if message.created and editor.for_export:
            try:
                definition = service.update_definition(editor.for_export, selection_id=view.id)
                self.app.record(
                    f"Assigned '{view.name}' to '{definition.name}'",
                    commands.update_definition(definition.name, {"selection_id": view.id}),
                )
            except UserError as exc:  # the export was deleted meanwhile
                note = f" It could not be assigned: {exc}"
            else:
                note = f" Assigned to '{definition.name}'."
                editor.for_export = None
                self._refresh_after_change(definition)
        elif view.used_by:
            note = f" Used by {len(view.used_by)} export(s)."
        if self.exports.editor.view is not None:
            self.exports.editor.selections = service.list_selections()
            self.exports.editor.refresh_choices()
        self.exports.reload()
        if view.valid:
            self.notify(f"Saved selection '{view.name}'.{note}", markup=False)
        else:
            # Kept, like an invalid definition, but never as a plain success: say why it is
            # invalid and what that means for the exports that use it.
            self.notify(
                f"Saved selection '{view.name}', but it is invalid: {' '.join(view.reasons)} "
                f"Exports using it cannot run until it is fixed.{note}",
                title="Invalid selection",
                severity="warning",
                markup=False,
                timeout=10,
            )

    def on_selection_editor_title_changed(self, message: SelectionEditor.TitleChanged) -> None:
        pane = message.editor.parent
        if pane is not None and pane.id:
            with contextlib.suppress(NoMatches, Tabs.TabError):  # the tab is being removed
                self.tabs.get_tab(pane.id).label = Content(message.editor.title)

    def action_close_tab(self) -> None:
        editor = self.active_selection_editor()
        if editor is None or editor.parent is None or editor.parent.id is None:
            return
        pane_id = editor.parent.id

        @guarded
        def finish(self: SelectionTabsMixin, answer: str | None) -> None:
            if answer == "cancel":
                return
            if answer == "save":
                if refuse_read_only(self.app, "saving"):
                    return
                editor.save()
            self.show_tab("exports-tab")
            self.tabs.remove_pane(pane_id)

        if editor.dirty:
            self.app.push_screen(UnsavedScreen(Text(editor.title).plain), lambda a: finish(self, a))
        else:
            finish(self, "discard")

    def _switch_tab(self, step: int) -> None:
        panes = [pane.id for pane in self.tabs.query(TabPane) if pane.id is not None]
        if len(panes) > 1 and self.tabs.active in panes:
            self.show_tab(panes[(panes.index(self.tabs.active) + step) % len(panes)])

    def action_next_tab(self) -> None:
        self._switch_tab(1)

    def action_previous_tab(self) -> None:
        self._switch_tab(-1)
