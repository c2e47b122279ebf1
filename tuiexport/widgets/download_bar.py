"""Runs one download at a time in a worker and shows its progress bar with ETA; Esc cancels."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ProgressBar, Static
from textual.worker import get_current_worker

from tuiexport import config, service
from tuiexport.errors import UserError
from tuiexport.management.views import RunView
from tuiexport.tui_runs import ChildRun
from tuiexport.widgets.guard import background

if TYPE_CHECKING:
    from tuiexport.app import ExportApp


class DownloadBar(Horizontal):
    if TYPE_CHECKING:
        app: ExportApp

    DEFAULT_CSS = """
    DownloadBar { height: 1; display: none; background: $boost; }
    DownloadBar.-running { display: block; }
    DownloadBar #download-label { width: 1fr; height: 1; }
    DownloadBar ProgressBar { width: auto; height: 1; }
    DownloadBar Bar { width: 20; }
    """

    class Started(Message):
        """The history row exists (status running)."""

        def __init__(self, log_id: str, export_name: str) -> None:
            super().__init__()
            self.log_id, self.export_name = log_id, export_name

    class Progress(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    class Finished(Message):
        def __init__(self, run: RunView) -> None:
            super().__init__()
            self.run = run

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cancel_event: threading.Event | None = None
        self.export_name = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="download-label")
        yield ProgressBar(total=None, show_eta=True, id="download-progress")

    @property
    def running(self) -> bool:
        return self.cancel_event is not None

    def start(self, export_id: str, export_name: str, since: str | None = None) -> bool:
        """Start a download (``since``: of what changed since that run, a delta); False when
        one is already running."""
        if self.running:
            return False
        self.cancel_event = threading.Event()
        self.export_name = export_name
        self.query_one(ProgressBar).update(total=None, progress=0)
        doing = f"changes since {since}" if since else "selecting products"
        self._label(
            Text(f" ↓ {export_name}: {doing}… (esc cancels)", no_wrap=True, overflow="ellipsis")
        )
        self.add_class("-running")
        self.screen.refresh_bindings()  # "esc Cancel download" appears
        self.worker = self._download(export_id, self.cancel_event, since)
        return True

    def cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
            self._label(Text(f"Cancelling '{self.export_name}'…"))

    def _label(self, text: Text) -> None:
        self.query_one("#download-label", Static).update(text)

    @background("download")
    def _download(self, export_id: str, cancel: threading.Event, since: str | None) -> None:
        """Start the child process and relay what it reports (see tuiexport.tui_runs)."""
        worker = get_current_worker()
        try:
            folder = config.downloads_dir()
            folder.mkdir(parents=True, exist_ok=True)
            child = ChildRun(self.app.db_target, export_id, str(folder), since)
        except BaseException:
            self.app.call_from_thread(self._reset)
            raise
        log_id = None
        for message in child.messages(lambda: cancel.is_set() or worker.is_cancelled):
            kind = message[0]
            if kind == "started":
                log_id = message[1]
                self.post_message(self.Started(message[1], message[2]))
            elif kind == "progress":
                self.post_message(self.Progress(message[1], message[2]))
            elif kind == "error":
                self.app.call_from_thread(self._reset)
                raise UserError(message[1])
        if log_id is None:
            self.app.call_from_thread(self._reset)
            raise UserError(f"The download stopped before it started (exit code {child.exitcode}).")
        # A child that died mid-run left its row "running": mark it as the next start would.
        if child.exitcode not in (0, None):
            service.mark_interrupted()
        self.post_message(self.Finished(service.get_run(log_id)))

    def on_download_bar_progress(self, message: Progress) -> None:
        message.stop()
        if self.cancel_event is None or self.cancel_event.is_set():
            return
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)
        self._label(
            Text(
                f" ↓ {self.export_name} {message.done:,}/{message.total:,} (esc cancels)",
                no_wrap=True,
                overflow="ellipsis",
            )
        )

    def on_download_bar_finished(self, message: Finished) -> None:
        # Not stopped: the screen refreshes history and definitions and notifies.
        self._reset()

    def _reset(self) -> None:
        self.cancel_event = None
        self.remove_class("-running")
        self.screen.refresh_bindings()
