"""The run history, newest first, loaded a page at a time as the cursor nears the end."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tuiexport import service
from tuiexport.management.views import RunView
from tuiexport.widgets import fmt
from tuiexport.widgets.guard import background

PAGE = 200
POLL_SECONDS = 5.0
#: What an operator reads first comes first: at 80 columns status, date, name and product count
#: fit; at 160 every column of the original (status, date, name, API, file format, products).
COLUMNS = (
    ("status", "Status"),
    ("date", "Date"),
    ("name", "Name"),
    ("products", "Products"),
    ("format", "File format"),
    ("api", "API"),
    ("duration", "Time"),
    ("size", "Size"),
    ("trigger", "By"),
    ("log", "Log ID"),
)


#: Longer export names are cut, with "…", so the columns after the name stay on screen.
NAME_WIDTH = 24


def cells(run: RunView) -> list[Text | str]:
    return [
        fmt.status(run.status),
        fmt.when(run.started),
        Text(fmt.cut(run.export_name, NAME_WIDTH)),
        Text(f"{run.product_count:,}", justify="right"),
        Text(run.file_format),
        run.api_version or "—",
        Text(fmt.duration(run.duration), justify="right"),
        Text(fmt.size(run.size), justify="right"),
        run.trigger,
        run.log_id,
    ]


class HistoryTable(DataTable[Text | str]):
    """Every run; Enter opens its details (the screen decides how)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Details", id="history.details"),
        Binding(
            "tab,shift+tab",
            "screen.focus_definitions",
            "Exports pane",
            show=False,
            id="history.tab",
        ),
    ]

    class Loaded(Message):
        def __init__(self, runs: list[RunView], total: int, offset: int) -> None:
            super().__init__()
            self.runs, self.total, self.offset = runs, total, offset

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.total = 0
        self.runs: dict[str, RunView] = {}
        self._loading = False

    class Polled(Message):
        def __init__(self, newest: str | None, changed: list[RunView]) -> None:
            super().__init__()
            self.newest, self.changed = newest, changed

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        # Runs started elsewhere (cron, the API, another TUI) appear without a key press.
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        # Running runs end; held ones are approved or discarded (here, from the CLI or the API).
        watched = {
            log_id: run.status
            for log_id, run in self.runs.items()
            if run.status in ("running", "held")
        }
        self._poll(watched)

    @background("history-poll")
    def _poll(self, watched: dict[str, str]) -> None:
        newest = service.list_history(limit=1)
        changed = [
            run for run in map(service.get_run, watched) if run.status != watched[run.log_id]
        ]
        self.post_message(self.Polled(newest[0].log_id if newest else None, changed))

    def on_history_table_polled(self, message: Polled) -> None:
        message.stop()
        top = (
            self.coordinate_to_cell_key(Coordinate(0, 0)).row_key.value if self.row_count else None
        )
        if message.newest != top:
            self.reload()
        for run in message.changed:
            self.update_run(run)

    @property
    def current(self) -> RunView | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return self.runs.get(key) if key is not None else None

    # --- loading ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Load the newest page again (a new run appears at the top)."""
        self._load(0, max(PAGE, min(len(self.runs), 2000)))

    @background("history-load")
    def _load(self, offset: int, limit: int) -> None:
        runs = service.list_history(limit=limit, offset=offset)
        total = service.count_history()
        self.post_message(self.Loaded(runs, total, offset))

    def on_history_table_loaded(self, message: Loaded) -> None:
        message.stop()
        self._loading = False
        self.total = message.total
        if message.offset == 0:
            key = self.current.log_id if self.current else None
            self.clear()
            self.runs = {}
            self._add(message.runs)
            if key and key in self.runs:
                self.move_cursor(row=self.get_row_index(key), animate=False)
        else:
            self._add([r for r in message.runs if r.log_id not in self.runs])
        self.border_title = f"History ({self.total:,})"
        fmt.settle_heap()

    def _add(self, runs: list[RunView]) -> None:
        for run in runs:
            self.runs[run.log_id] = run
            self.add_row(*cells(run), key=run.log_id)

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if not self._loading and len(self.runs) < self.total and new.row >= self.row_count - 20:
            self._loading = True
            self._load(len(self.runs), PAGE)

    def update_run(self, run: RunView) -> None:
        """Refresh one row in place (a running export finished, failed or was cancelled)."""
        if run.log_id not in self.runs:
            self.reload()
            return
        self.runs[run.log_id] = run
        try:
            for (key, _), value in zip(COLUMNS, cells(run), strict=True):
                self.update_cell(run.log_id, key, value)
        except RowDoesNotExist:
            self.reload()
