"""The Exports tab: definitions (sort, filter, expandable rows) on the left, history on the right."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Select
from textual.worker import get_current_worker

from tuiexport import service
from tuiexport.errors import UserError
from tuiexport.management.views import DefinitionView, SelectionView
from tuiexport.widgets.definition_editor import DefinitionEditor
from tuiexport.widgets.definition_list import DefinitionList
from tuiexport.widgets.fmt import settle_heap
from tuiexport.widgets.guard import background
from tuiexport.widgets.history_table import HistoryTable

if TYPE_CHECKING:
    from tuiexport.app import ExportApp

#: From this width on both panes show in full: the history gets what its six main columns need
#: (status, date, name, products, file format, API) and the definitions the rest.
WIDE = 120
HISTORY_WIDTH = 102
DEFINITIONS_MIN = 56
SORT_LABELS = {
    "name": "by name",
    "last_run": "by last run",
    "created": "by created",
    "format": "by format",
}


#: The main screen's command keys that Textual's Input also binds (ctrl+d delete right, ctrl+e end,
#: ctrl+k delete to the end, ctrl+u delete to the start, ctrl+w delete a word, ctrl+x cut). In the
#: filter the command wins: a name typed, then ctrl+k, opens the links of the highlighted match.
SCREEN_KEYS = frozenset({"ctrl+d", "ctrl+e", "ctrl+k", "ctrl+u", "ctrl+w", "ctrl+x"})


def _without_screen_keys(bindings: list[BindingType]) -> list[BindingType]:
    kept: list[BindingType] = []
    for binding in bindings:
        assert isinstance(binding, Binding)
        keys = [k for k in binding.key.split(",") if k.strip() not in SCREEN_KEYS]
        if keys:
            kept.append(
                Binding(",".join(keys), binding.action, binding.description, show=binding.show)
            )
    return kept


class FilterInput(Input, inherit_bindings=False):
    """The filter field: Input's editing keys, less those the screen uses for its commands."""

    BINDINGS: ClassVar[list[BindingType]] = _without_screen_keys(Input.BINDINGS)


class ExportsPane(Horizontal):
    """The definition list with its editor, and the history: loads definitions and selection counts
    in workers and owns which row is open. It changes nothing stored: the screen's actions
    (``screens/definition_actions.py``) do, and tell it what changed (:meth:`apply`, :meth:`reload`).
    """

    if TYPE_CHECKING:
        app: ExportApp

    class DefinitionsLoaded(Message):
        def __init__(self, views: list[DefinitionView], cursor_id: str | None) -> None:
            super().__init__()
            self.views, self.cursor_id = views, cursor_id

    class CountsReady(Message):
        def __init__(self, counts: dict[int, int]) -> None:
            super().__init__()
            self.counts = counts

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.editor = DefinitionEditor(id="editor")
        self.definitions = DefinitionList(self.editor, id="definitions")
        self.history = HistoryTable(id="history")
        self.counts: dict[int, int] = {}
        self.editor.counts = self.counts
        self.sort = "name"
        self._filter_timer: Timer | None = None
        self._then: Callable[[], None] | None = None
        self.loaded = False
        self._layout: tuple[bool, int | str, str] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="definitions-pane"):
            with Horizontal(id="definitions-head"):
                yield Select(
                    [(label, key) for key, label in SORT_LABELS.items()],
                    value="name",
                    allow_blank=False,
                    compact=True,
                    id="sort",
                )
                # Typed into, never replaced: the key that started the filter stays in it.
                yield FilterInput(
                    placeholder="type to filter…", compact=True, id="filter", select_on_focus=False
                )
            yield self.definitions
        yield self.history

    def on_resize(self) -> None:
        self._lay_out()

    def on_descendant_focus(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        """Pane widths follow the terminal width and, when narrow, the focus.

        Wide: the history gets what its main columns need, the definitions the rest. Narrow
        (80x24): the focused half is the readable one; the history, once focused (Tab), takes the
        whole width so status, date, name and product count show. Widths change only here (on a
        resize or a focus move between the halves), never on Enter, which would re-lay out the
        history at every expansion.
        """
        width = self.size.width
        layout: tuple[bool, int | str, str]
        if width >= WIDE:
            layout = (True, max(DEFINITIONS_MIN, width - HISTORY_WIDTH), "1fr")
        elif self.history.has_focus:
            layout = (False, "13fr", "1fr")
        else:
            layout = (True, "13fr", "7fr")
        if layout == self._layout:
            return
        self._layout = layout
        show_definitions, definitions_width, history_width = layout
        defs = self.query_one("#definitions-pane")
        defs.display = show_definitions
        defs.styles.width = definitions_width
        self.history.styles.width = history_width

    def on_mount(self) -> None:
        self.query_one("#definitions-pane").border_title = "Exports"
        self.history.border_title = "History"
        self.reload()
        self.history.reload()

    # --- the open row ----------------------------------------------------------------------

    def current(self) -> DefinitionView | None:
        """The definition actions apply to: the expanded one while editing, else the cursor row."""
        lst = self.definitions
        if lst.expanded is not None and (lst.cursor == lst.expanded or self.editor_has_focus()):
            return lst.expanded_view
        return lst.cursor_view

    def editor_has_focus(self) -> bool:
        focused = self.screen.focused
        return focused is not None and self.editor in focused.ancestors_with_self

    def share_url(self, view: DefinitionView) -> str:
        """The URL of the export's first share link ("" when every link was revoked)."""
        if not view.links:
            return ""
        return service.link_url(view.links[0], base_url=self.app.server_url or None)

    def open_row(self, index: int, *, focus_name: bool = True) -> None:
        """Expand row ``index`` with the editor on its definition (as stored: edits are dropped)."""
        view = self.definitions.views[index]
        self.definitions.expand_row(index)
        self.editor.load(view, service.list_selections(), self.share_url(view))
        if focus_name:
            self.editor.focus_name()

    def close_row(self) -> None:
        """Collapse the open row (its edits are dropped: ask before) and focus the list."""
        self.definitions.collapse()
        self.definitions.focus()

    def unsaved(self) -> str | None:
        """The name of the open definition when it has unsaved edits."""
        if self.definitions.expanded is not None and self.editor.dirty:
            assert self.editor.view is not None  # an expanded row has its definition loaded
            return self.editor.view.name
        return None

    def has_unsaved_edits(self, view: DefinitionView) -> bool:
        editor = self.editor
        return editor.view is not None and view.export_id == editor.view.export_id and editor.dirty

    def apply(self, view: DefinitionView) -> None:
        """Show ``view``, changed underneath the editor (token, assignment), everywhere: its row,
        the editor when open on it (keeping its unsaved edits), and the list again."""
        self.definitions.replace_view(view)
        editor = self.editor
        if editor.view is not None and editor.view.export_id == view.export_id:
            editor.rebase(view, self.share_url(view))
        self.reload()

    def saved(
        self, view: DefinitionView, selections: list[SelectionView], changes: dict[str, Any]
    ) -> None:
        """The editor's ``changes`` are stored as ``view``: show it, and the list again (its
        order may have changed), the cursor staying on it."""
        editor = self.editor
        if editor.view is not None and editor.view.export_id == view.export_id:
            editor.stored(view, selections, self.share_url(view), changes)
        self.definitions.replace_view(view)
        self.reload(cursor_id=view.export_id)

    # --- definitions -----------------------------------------------------------------------

    def reload(self, cursor_id: str | None = None, then: Callable[[], None] | None = None) -> None:
        """Load the definitions again (in a worker); ``then`` runs once they are shown."""
        self._then = then
        self._load(self.sort, self.query_one("#filter", Input).value, cursor_id)

    @background("definitions-load")
    def _load(self, sort: str, filter_text: str, cursor_id: str | None) -> None:
        views = service.list_definitions(sort=sort, filter_text=filter_text)
        if not get_current_worker().is_cancelled:
            self.post_message(self.DefinitionsLoaded(views, cursor_id))

    def on_exports_pane_definitions_loaded(self, message: DefinitionsLoaded) -> None:
        message.stop()
        self.definitions.set_views(message.views, cursor_id=message.cursor_id)
        total = len(message.views)
        invalid = sum(1 for v in message.views if not v.valid)
        title = f"Exports ({total:,})" + (f" · {invalid} invalid" if invalid else "")
        self.query_one("#definitions-pane").border_title = title
        self.loaded = True
        settle_heap()
        then, self._then = self._then, None
        if then is not None:
            then()
        wanted = {v.selection_id for v in message.views if v.selection_id is not None} - set(
            self.counts
        )
        if wanted:
            self.count(wanted)

    def clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""

    def focus_filter(self) -> None:
        filter_input = self.query_one("#filter", Input)
        filter_input.focus()
        filter_input.action_end()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "sort" and isinstance(event.value, str) and event.value != self.sort:
            event.stop()
            self.sort = event.value
            self.reload()

    def cycle_sort(self) -> None:
        keys = list(SORT_LABELS)
        self.query_one("#sort", Select).value = keys[(keys.index(self.sort) + 1) % len(keys)]

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            event.stop()
            if self._filter_timer is not None:
                self._filter_timer.stop()
            self._filter_timer = self.set_timer(0.15, self.reload)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            self.definitions.focus()

    # --- counts ----------------------------------------------------------------------------

    def count(self, selection_ids: set[int]) -> None:
        self._count(sorted(selection_ids))

    @background("definitions-count", exclusive=False)
    def _count(self, selection_ids: list[int]) -> None:
        worker = get_current_worker()
        for sid in selection_ids:
            if worker.is_cancelled:
                return
            try:
                criteria = service.get_selection(sid).criteria
            except UserError:  # deleted meanwhile
                continue
            self.post_message(self.CountsReady({sid: service.count_products(criteria)}))

    def on_exports_pane_counts_ready(self, message: CountsReady) -> None:
        message.stop()
        self.counts.update(message.counts)
        self.definitions.set_counts(message.counts)
        self.editor.update_count(self.counts)

    def on_definition_editor_count_wanted(self, message: DefinitionEditor.CountWanted) -> None:
        message.stop()
        if message.selection_id in self.counts:
            self.editor.update_count(self.counts)
        else:
            self.count({message.selection_id})

    def forget_count(self, selection_id: int) -> None:
        self.counts.pop(selection_id, None)
        self.count({selection_id})
