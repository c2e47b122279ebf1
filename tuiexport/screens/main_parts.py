"""The main screen as its mixins see it, declared once for the type checker.

:class:`~tuiexport.screens.main.MainScreen` is assembled from mixins (definition actions,
selection tabs) that use its widgets and helpers. At run time ``MainScreenParts`` is plain
``object``; for the type checker it is a ``Screen`` of the :class:`~tuiexport.app.ExportApp` with
the parts listed here, which ``MainScreen`` (or one of its mixins) implements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abc import abstractmethod
    from collections.abc import Callable

    from textual.screen import Screen
    from textual.widgets import TabbedContent

    from tuiexport.app import ExportApp
    from tuiexport.management.views import DefinitionView
    from tuiexport.widgets.download_bar import DownloadBar
    from tuiexport.widgets.exports_pane import ExportsPane

    class MainScreenParts(Screen[None]):
        app: ExportApp
        exports: ExportsPane

        @property
        @abstractmethod
        def tabs(self) -> TabbedContent: ...

        @property
        @abstractmethod
        def downloads(self) -> DownloadBar: ...

        @abstractmethod
        def current(self) -> DefinitionView | None: ...

        @abstractmethod
        def show_tab(self, pane_id: str) -> None: ...

        @abstractmethod
        def share_url(self, view: DefinitionView) -> str: ...

        @abstractmethod
        def open_editor(self, index: int, *, focus_name: bool = True) -> None: ...

        @abstractmethod
        def close_editor(self, then: Callable[[], None] | None = None) -> None: ...

        @abstractmethod
        def _refresh_after_change(self, view: DefinitionView) -> None: ...

else:
    MainScreenParts = object
