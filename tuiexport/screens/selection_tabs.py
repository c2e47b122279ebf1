"""The main screen's tabs: "Exports", then one "Selection: <name>" tab per open selection editor."""

from __future__ import annotations

import contextlib
from itertools import count
from typing import TYPE_CHECKING

from rich.text import Text
from textual.content import Content
from textual.css.query import NoMatches
from textual.events import DescendantFocus
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane, Tabs

from tuiexport.management.views import SelectionView
from tuiexport.screens.dialogs import UnsavedScreen
from tuiexport.widgets.definition_list import DefinitionList
from tuiexport.widgets.guard import guarded, refuse_read_only
from tuiexport.widgets.selection_editor import SelectionEditor

if TYPE_CHECKING:
    from tuiexport.app import ExportApp

EXPORTS_TAB = "exports-tab"

_tab_ids = count(1)


class SelectionTabs(TabbedContent):
    """Owns which tab is active, where the focus was in each tab (to give it back on return) and
    the selection tabs' life: open (once per selection), title, save, close (asking about unsaved
    rules), next/previous. The first pane, "Exports", is composed into it by the screen.

    It changes nothing stored itself: a selection editor saves (in a worker) and its
    :class:`SelectionEditor.Saved` bubbles through here to the screen, which updates the exports.
    """

    if TYPE_CHECKING:
        app: ExportApp

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: The widget that last had the focus in each tab pane.
        self._pane_focus: dict[str, Widget] = {}

    @property
    def on_exports(self) -> bool:
        return self.active == EXPORTS_TAB

    def editors(self) -> list[SelectionEditor]:
        return list(self.query(SelectionEditor))

    def active_editor(self) -> SelectionEditor | None:
        if not self.active or self.on_exports:
            return None
        return self.get_pane(self.active).query_one(SelectionEditor)

    def unsaved(self) -> list[str]:
        """The titles of the tabs with unsaved rules."""
        return [f"'{e.title.rstrip(' *')}'" for e in self.editors() if e.dirty]

    # --- focus -----------------------------------------------------------------------------

    def show(self, pane_id: str) -> None:
        """Make ``pane_id`` the active tab and move the focus into it in the same step.

        The focus moves first and synchronously: had the tab switched first, Textual would move
        the focus off the hidden pane to a sibling still in it (the other half of the definition
        list), whose pane would then take the tab straight back.
        """
        target = self._focus_target(pane_id)
        if target is not None:
            self.screen.set_focus(target, scroll_visible=False)
        self.active = pane_id

    def _focus_target(self, pane_id: str) -> Widget | None:
        try:
            pane = self.get_pane(pane_id)
        except NoMatches:
            return None
        last = self._pane_focus.get(pane_id)
        if last is not None and last.is_attached and last.focusable and pane in last.ancestors:
            return last
        if pane_id == EXPORTS_TAB:
            return pane.query_one(DefinitionList)
        return next((w for w in pane.query("Input") if w.focusable), None) or next(
            (w for w in pane.query("*") if w.focusable), None
        )

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        pane = next((a for a in event.widget.ancestors if isinstance(a, TabPane)), None)
        if pane is not None and pane.id:
            self._pane_focus[pane.id] = event.widget

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # A tab chosen with the mouse (or by Textual itself): the focus follows it there too.
        pane = event.tabbed_content.active_pane
        focused = self.screen.focused
        if pane is not None and pane.id and (focused is None or pane not in focused.ancestors):
            target = self._focus_target(pane.id)
            if target is not None:
                self.screen.set_focus(target, scroll_visible=False)
        self.screen.refresh_bindings()

    # --- selection tabs --------------------------------------------------------------------

    async def open(
        self,
        selection: SelectionView | None,
        *,
        limit: int,
        language: str,
        for_export: str | None = None,
    ) -> None:
        """Show the tab of ``selection`` (opening it once), or a new selection's tab."""
        if selection is not None:
            for editor in self.editors():
                if editor.selection is not None and editor.selection.id == selection.id:
                    if editor.parent is not None and editor.parent.id is not None:
                        self.show(editor.parent.id)
                    return
        editor = SelectionEditor(selection, limit=limit, for_export=for_export, language=language)
        pane_id = f"selection-{next(_tab_ids)}"
        title = Content(f"Selection: {selection.name if selection else 'new'}")
        await self.add_pane(TabPane(title, editor, id=pane_id))
        self.show(pane_id)

    def save_active(self) -> None:
        editor = self.active_editor()
        if editor is not None:
            editor.save()

    def close_active(self) -> None:
        """Close the active selection tab; with unsaved rules ask first (save, discard, cancel)."""
        editor = self.active_editor()
        if editor is None or editor.parent is None or editor.parent.id is None:
            return
        pane_id = editor.parent.id

        def close() -> None:
            self.show(EXPORTS_TAB)
            self.remove_pane(pane_id)

        @guarded
        def finish(self: SelectionTabs, answer: str | None) -> None:
            if answer == "cancel":
                return
            if answer == "save":
                if refuse_read_only(self.app, "saving"):
                    return
                # Closed once stored: a failed save leaves the tab open with its rules.
                editor.save(then=close)
                return
            close()

        if editor.dirty:
            self.app.push_screen(UnsavedScreen(Text(editor.title).plain), lambda a: finish(self, a))
        else:
            finish(self, "discard")

    def step(self, step: int) -> None:
        """Go ``step`` tabs right (negative: left), round the end."""
        panes = [pane.id for pane in self.query(TabPane) if pane.id is not None]
        if len(panes) > 1 and self.active in panes:
            self.show(panes[(panes.index(self.active) + step) % len(panes)])

    def on_selection_editor_title_changed(self, message: SelectionEditor.TitleChanged) -> None:
        message.stop()
        pane = message.editor.parent
        if pane is not None and pane.id:
            with contextlib.suppress(NoMatches, Tabs.TabError):  # the tab is being removed
                self.get_tab(pane.id).label = Content(message.editor.title)
