"""A checklist with a filter line: pick manufacturers, product types or suppliers by typing."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, SelectionList
from textual.widgets.selection_list import Selection


class FilterableChecklist(Vertical):
    DEFAULT_CSS = """
    FilterableChecklist { height: auto; }
    FilterableChecklist > Input { height: 1; }
    FilterableChecklist > SelectionList { height: 6; border: none; padding: 0; }
    """

    class Changed(Message):
        def __init__(self, checklist: FilterableChecklist) -> None:
            super().__init__()
            self.checklist = checklist

        @property
        def control(self) -> FilterableChecklist:
            return self.checklist

    def __init__(
        self, noun: str, items: list[tuple[int, str]], selected: list[int], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.noun = noun
        self.items = items
        self.selected: set[int] = set(selected)
        self._visible: list[int] = []
        self._rebuilding = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder=f"filter {self.noun}…", compact=True, classes="checklist-filter")
        yield SelectionList[int](compact=True)

    def on_mount(self) -> None:
        self._rebuild("")

    @property
    def values(self) -> list[int]:
        """The checked ids, ascending (empty: all)."""
        return sorted(i for i, _ in self.items if i in self.selected)

    def _rebuild(self, needle: str) -> None:
        needle = needle.casefold().strip()
        shown = [(i, label) for i, label in self.items if not needle or needle in label.casefold()]
        # Checked ones first so that a short list shows what is chosen.
        shown.sort(key=lambda item: item[0] not in self.selected)
        self._visible = [i for i, _ in shown]
        options = self.query_one(SelectionList)
        self._rebuilding = True
        options.clear_options()
        options.add_options([Selection(Text(label), i, i in self.selected) for i, label in shown])
        # Highlight the first match, so Space toggles it at once (without a Down first).
        options.highlighted = 0 if shown else None
        self.call_after_refresh(self._done)
        self._update_title()

    def _done(self) -> None:
        self._rebuilding = False

    def _update_title(self) -> None:
        n = len(self.selected)
        self.query_one(SelectionList).border_title = f"{n} chosen" if n else f"all {self.noun}"

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._rebuild(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in the filter line goes to the matches, the first one highlighted.
        event.stop()
        self.query_one(SelectionList).focus()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[int]) -> None:
        event.stop()
        if self._rebuilding:
            return
        checked = set(event.selection_list.selected)
        self.selected = (self.selected - set(self._visible)) | checked
        self._update_title()
        self.post_message(self.Changed(self))
