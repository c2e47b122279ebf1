"""An export's last runs as small plots: product count, file size and duration, so that a drop is
seen before a shop complains. Loaded in a worker; drawn by plotext (textual-plotext)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Sparkline

from tuiexport import service
from tuiexport.management.views import RunView
from tuiexport.widgets.guard import background

#: How many of an export's newest runs the plots show.
RUNS = 30
#: Runs that produced a file (a cancelled or failed run has no figures to compare).
FINISHED = ("success", "warning")


def finished_runs(export_id: str, most: int = RUNS) -> list[RunView]:
    """The export's newest finished runs, oldest first (the order a plot reads)."""
    runs = service.list_history(limit=most * 3, export_id=export_id)
    return list(reversed([r for r in runs if r.status in FINISHED][:most]))


class RunTrends(Horizontal):
    """Three plots side by side; each marks the run shown in the details (``log_id``)."""

    DEFAULT_CSS = """
    RunTrends { height: 11; border-top: solid $primary 50%; border-title-color: $text-muted; }
    RunTrends > PlotextPlot { width: 1fr; height: 10; }
    """

    class Loaded(Message):
        def __init__(self, runs: list[RunView]) -> None:
            super().__init__()
            self.runs = runs

    def __init__(self, export_id: str, log_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export_id, self.log_id = export_id, log_id
        self.runs: list[RunView] = []

    def compose(self) -> ComposeResult:
        # plotext is imported when run details first open, not at the TUI's start.
        from textual_plotext import PlotextPlot

        yield PlotextPlot(id="trend-products")
        yield PlotextPlot(id="trend-size")
        yield PlotextPlot(id="trend-duration")

    def on_mount(self) -> None:
        self._load(self.export_id)

    @background("run-trends")
    def _load(self, export_id: str) -> None:
        self.post_message(self.Loaded(finished_runs(export_id)))

    def on_run_trends_loaded(self, message: Loaded) -> None:
        from textual_plotext import PlotextPlot

        message.stop()
        self.runs = message.runs
        self.border_title = f"Last {len(self.runs)} finished runs (● this one)"
        series = [
            ("trend-products", "Products", [float(r.product_count) for r in self.runs]),
            ("trend-size", "Size (MB)", [(r.size or 0) / 1e6 for r in self.runs]),
            ("trend-duration", "Duration (s)", [r.duration or 0.0 for r in self.runs]),
        ]
        for widget_id, title, values in series:
            plot = self.query_one(f"#{widget_id}", PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            plt.title(title if values else f"{title}: no runs yet")
            if values:
                xs = list(range(1, len(values) + 1))
                plt.plot(xs, values, marker="braille")
                marked = [i for i, r in enumerate(self.runs, 1) if r.log_id == self.log_id]
                if marked:
                    plt.scatter(marked, [values[marked[0] - 1]], marker="●")
                plt.xticks([])
            plot.refresh()


class CountSparkline(Sparkline):
    """One line in an export's detail area: the product counts of its last runs."""

    DEFAULT_CSS = """
    CountSparkline { height: 1; width: 1fr; max-width: 40; }
    """

    class Loaded(Message):
        def __init__(self, export_id: str, counts: list[float]) -> None:
            super().__init__()
            self.export_id, self.counts = export_id, counts

    def __init__(self, **kwargs: Any) -> None:
        super().__init__([], **kwargs)
        self.export_id: str | None = None

    def show(self, export_id: str) -> None:
        self.export_id = export_id
        self.data = []
        self._load(export_id)

    @background("count-sparkline")
    def _load(self, export_id: str) -> None:
        counts = [float(r.product_count) for r in finished_runs(export_id)]
        self.post_message(self.Loaded(export_id, counts))

    def on_count_sparkline_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.export_id == self.export_id:
            self.data = message.counts
