"""The export definitions as a list of line-API rows; one row at a time expands into its editor.

Rows above and including the expanded one are drawn by one :class:`DefinitionRows`, the editor
sits under it, and the rows below are drawn by a second :class:`DefinitionRows`. Both only render
the lines on screen, so 500 definitions cost what 20 cost.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from tuiexport.management.views import DefinitionView
from tuiexport.widgets import fmt


def _cell(text: str, width: int, *, right: bool = False) -> str:
    if width <= 0:
        return ""
    text = fmt.cut(text, width)
    return text.rjust(width) if right else text.ljust(width)


#: Printable keys that stay commands on the list (a name hardly starts with them); every other
#: printable key typed on the list goes into the filter, so typing a name filters by it.
BOUND_CHARACTERS = set("/?[] ")


class DefinitionRows(Widget, can_focus=True):
    """Draws ``views[start:end]`` of its :class:`DefinitionList`, one line each.

    The rows, not the list, take focus: a focus change restyles the focused widget and all its
    descendants, and the list contains the editor with its dozens of fields.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,space", "screen.toggle_row", "Open/close", id="toggle"),
        Binding("tab", "screen.tab_from_list", "Editor / history", show=False, id="list.tab"),
        Binding("up", "cursor(-1)", "Up", show=False, id="list.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="list.down"),
        Binding("pageup", "cursor(-10)", "Page up", show=False, id="list.page_up"),
        Binding("pagedown", "cursor(10)", "Page down", show=False, id="list.page_down"),
        Binding("home", "cursor_to(0)", "First", show=False, id="list.first"),
        Binding("end", "cursor_to(-1)", "Last", show=False, id="list.last"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "definition-rows--cursor",
        "definition-rows--invalid",
        "definition-rows--dim",
        "definition-rows--expanded",
        "definition-rows--over",
    }
    DEFAULT_CSS = """
    DefinitionRows { height: auto; width: 1fr; }
    DefinitionRows > .definition-rows--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    DefinitionRows > .definition-rows--invalid { color: $error; text-style: bold; }
    DefinitionRows > .definition-rows--dim { color: $text-muted; }
    DefinitionRows > .definition-rows--over { color: $warning; }
    DefinitionRows > .definition-rows--expanded { background: $boost; text-style: bold; }
    """

    def __init__(self, owner: DefinitionList, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner
        self.start = 0
        self.end = 0

    def set_slice(self, start: int, end: int) -> None:
        self.start, self.end = start, max(start, end)
        self.styles.height = self.end - self.start
        self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.end - self.start

    def refresh_index(self, index: int) -> None:
        if self.start <= index < self.end:
            self.refresh(Region(0, index - self.start, self.size.width, 1))

    def action_cursor(self, delta: int) -> None:
        self.owner.move_cursor(self.owner.cursor + delta)

    def action_cursor_to(self, index: int) -> None:
        self.owner.move_cursor(index if index >= 0 else len(self.owner.views) - 1)

    class Typed(Message):
        """A printable key typed on the list that is no command: it goes into the filter."""

        def __init__(self, character: str) -> None:
            super().__init__()
            self.character = character

    def on_key(self, event: events.Key) -> None:
        # Here, not on the screen: a key goes to the widget focused when it arrives, and the
        # letters typed right after the first one can arrive before the filter has the focus.
        # Handled once focus has moved, they would be lost ("shop" became "sop" in a browser).
        if event.is_printable and event.character and event.character not in BOUND_CHARACTERS:
            self.post_message(self.Typed(event.character))
            event.stop()

    def on_focus(self) -> None:
        self.owner.refresh_cursor()

    def on_blur(self) -> None:
        self.owner.refresh_cursor()

    def render_line(self, y: int) -> Strip:
        index = self.start + y
        width = self.size.width
        owner = self.owner
        if index >= self.end or index >= len(owner.views):
            return Strip.blank(width)
        view = owner.views[index]
        count = owner.counts.get(view.selection_id) if view.selection_id is not None else None
        # A row is redrawn only when what it shows changed: expanding re-lays out the pane, and
        # every visible row is asked for again.
        key = (
            id(view),
            index == owner.cursor,
            index == owner.expanded,
            owner.rows_focused,
            count,
            width,
            self.app.theme,
        )
        cached = owner.line_cache.get(key)
        if cached is None:
            if len(owner.line_cache) > 4000:
                owner.line_cache.clear()
            cached = owner.line_cache[key] = self._render_row(index, view, count, width)
        return cached

    def _render_row(self, index: int, view: DefinitionView, count: int | None, width: int) -> Strip:
        owner = self.owner
        base = self.rich_style
        cursor = index == owner.cursor and owner.rows_focused
        if cursor:
            base = base + self.get_component_rich_style("definition-rows--cursor")
        elif index == owner.expanded:
            base = base + self.get_component_rich_style("definition-rows--expanded")
        elif index == owner.cursor:
            base = base + Style(reverse=False, bold=True)
        invalid = base + self.get_component_rich_style("definition-rows--invalid", partial=True)
        dim = base + self.get_component_rich_style("definition-rows--dim", partial=True)
        over = base + self.get_component_rich_style("definition-rows--over", partial=True)
        mark = "▾" if index == owner.expanded else "▸"
        counted = fmt.compact(count) if count is not None else "…" if view.selection_id else "—"
        count_text = f"{counted}/{fmt.compact(view.effective_limit)}"
        fmt_w, count_w = 10, 11
        last_w = 15 if width >= 60 else 0
        name_w = max(width - 3 - fmt_w - count_w - last_w - 3, 6)
        segments = [
            Segment(f"{mark}", base),
            Segment("!" if not view.valid else " ", invalid if not view.valid else base),
            Segment(" " + _cell(view.name or "(no name)", name_w), base),
            Segment(
                " " + _cell(fmt.short_format(view.profile, view.output), fmt_w),
                dim if view.valid else invalid,
            ),
            Segment(
                " " + _cell(count_text, count_w, right=True),
                over if count is not None and count > view.effective_limit else base,
            ),
        ]
        if last_w:
            run = view.last_run
            if run is None:
                segments.append(Segment(" " + _cell("never", last_w - 1, right=True), dim))
            else:
                style = base + Style.parse(fmt.STATUS_STYLES.get(run.status, ""))
                segments.append(Segment(" " + fmt.STATUS_MARKS.get(run.status, "?"), style))
                segments.append(
                    Segment(_cell(fmt.when(run.started, short=True), last_w - 2, right=True), dim)
                )
        return Strip(segments).adjust_cell_length(width, base)


class DefinitionList(VerticalScroll, can_focus=False):
    """Cursor, expansion and scrolling over the definitions; the screen decides what keys mean."""

    class Highlighted(Message):
        def __init__(self, view: DefinitionView | None) -> None:
            super().__init__()
            self.view = view

    def __init__(self, editor: Widget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.views: list[DefinitionView] = []
        self.counts: dict[int, int] = {}
        #: Rendered rows (see DefinitionRows.render_line); views are replaced, never mutated.
        self.line_cache: dict[tuple[Any, ...], Strip] = {}
        self.cursor = 0
        self.expanded: int | None = None
        self.editor = editor
        self.top = DefinitionRows(self, id="rows-top")
        self.bottom = DefinitionRows(self, id="rows-bottom")

    def compose(self) -> ComposeResult:
        yield self.top
        yield self.editor
        yield self.bottom

    def on_mount(self) -> None:
        self.editor.display = False

    # --- data ------------------------------------------------------------------------------

    @property
    def cursor_view(self) -> DefinitionView | None:
        return self.views[self.cursor] if 0 <= self.cursor < len(self.views) else None

    @property
    def expanded_view(self) -> DefinitionView | None:
        return self.views[self.expanded] if self.expanded is not None else None

    def index_of(self, export_id: str) -> int | None:
        for i, view in enumerate(self.views):
            if view.export_id == export_id:
                return i
        return None

    def set_views(self, views: list[DefinitionView], *, cursor_id: str | None = None) -> None:
        """Replace the rows; the cursor and the expanded row follow their definitions."""
        old_cursor = cursor_id or (self.cursor_view.export_id if self.cursor_view else None)
        old_expanded = self.expanded_view.export_id if self.expanded_view else None
        self.views = views
        self.line_cache.clear()
        index = self.index_of(old_cursor) if old_cursor else None
        self.cursor = index if index is not None else min(self.cursor, max(len(views) - 1, 0))
        self.expanded = self.index_of(old_expanded) if old_expanded else None
        if old_expanded and self.expanded is None:
            self.editor.display = False
        self._layout_rows()
        self.post_message(self.Highlighted(self.cursor_view))

    def replace_view(self, view: DefinitionView) -> None:
        index = self.index_of(view.export_id)
        if index is not None:
            self.line_cache.clear()  # keys hold id(view); a freed view's id may be reused
            self.views[index] = view
            self.top.refresh_index(index)
            self.bottom.refresh_index(index)

    def set_counts(self, counts: dict[int, int]) -> None:
        self.counts.update(counts)
        self.top.refresh()
        self.bottom.refresh()

    # --- expansion -------------------------------------------------------------------------

    def expand_row(self, index: int) -> None:
        self.expanded = index
        self.cursor = index
        self.editor.display = True
        self._layout_rows()
        self.call_after_refresh(self.scroll_to_cursor, True)

    def collapse(self) -> None:
        self.expanded = None
        self.editor.display = False
        self._layout_rows()
        self.call_after_refresh(self.scroll_to_cursor)

    def _layout_rows(self) -> None:
        n = len(self.views)
        if self.expanded is None:
            self.top.set_slice(0, n)
            self.bottom.set_slice(n, n)
        else:
            self.top.set_slice(0, self.expanded + 1)
            self.bottom.set_slice(self.expanded + 1, n)

    # --- cursor ----------------------------------------------------------------------------

    def _row_y(self, index: int) -> int:
        if self.expanded is not None and index > self.expanded:
            return index + self.editor.outer_size.height
        return index

    def scroll_to_cursor(self, with_editor: bool = False) -> None:
        y = self._row_y(self.cursor)
        height = 1 + (self.editor.outer_size.height if with_editor else 0)
        self.scroll_to_region(
            Region(0, y, 1, min(height, self.scrollable_content_region.height)),
            animate=False,
            immediate=True,
        )

    def move_cursor(self, index: int) -> None:
        if not self.views:
            return
        index = max(0, min(index, len(self.views) - 1))
        if index == self.cursor:
            return
        old, self.cursor = self.cursor, index
        for i in (old, index):
            self.top.refresh_index(i)
            self.bottom.refresh_index(i)
        if self.rows_focused and not self._rows_for_cursor().has_focus:
            self._rows_for_cursor().focus(scroll_visible=False)
        self.scroll_to_cursor()
        self.post_message(self.Highlighted(self.cursor_view))

    @property
    def rows_focused(self) -> bool:
        return self.top.has_focus or self.bottom.has_focus

    def _rows_for_cursor(self) -> DefinitionRows:
        return (
            self.bottom if self.expanded is not None and self.cursor > self.expanded else self.top
        )

    def focus(self, scroll_visible: bool = True) -> DefinitionList:
        """Focus the rows that hold the cursor (the list itself never takes focus)."""
        self._rows_for_cursor().focus(scroll_visible=False)
        return self

    def refresh_cursor(self) -> None:
        self.top.refresh_index(self.cursor)
        self.bottom.refresh_index(self.cursor)

    def on_click(self, event: events.Click) -> None:
        widget = event.widget
        if isinstance(widget, DefinitionRows):
            offset = event.get_content_offset(widget)
            if offset is not None:
                self.move_cursor(widget.start + offset.y)
