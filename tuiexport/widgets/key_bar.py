"""A one-line footer of the active key bindings.

Textual's Footer recomposes a widget per binding on every focus change; with the editor's many
fields that cost more than the key press itself. This draws the same keys as one line of text.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { height: 1; width: 1fr; background: $footer-background; color: $footer-foreground; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        # The signal comes a refresh after a focus change; follow the focus at once as well.
        self.watch(
            self.screen, "focused", lambda _: self._bindings_changed(self.screen), init=False
        )
        self._bindings_changed(self.screen)

    def _bindings_changed(self, screen: object) -> None:
        if self.is_attached and screen is self.screen:
            self.update(self.line())

    def line(self) -> Text:
        """The keys of what has the focus, then Help and Commands, which always show: when the
        line is too long for the terminal, the keys in the middle are cut, never those two."""
        key_style = "bold " + str(self.app.theme_variables.get("footer-key-foreground", "") or "")
        keys = Text(no_wrap=True, overflow="ellipsis")
        tail = Text(no_wrap=True)
        seen: set[str] = set()
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            enabled = enabled and not self._read_only_blocked(binding.action)
            target = tail if binding.action == "app.help" else keys
            target.append(
                f" {self.app.get_key_display(binding)} ", style=key_style if enabled else "dim"
            )
            target.append(f"{binding.description} ", style="" if enabled else "dim")
        if self.app.ENABLE_COMMAND_PALETTE:
            tail.append(" ^p ", style=key_style)
            tail.append("Commands ")
        room = max(self.size.width - tail.cell_len, 0)
        keys.truncate(room, pad=True)  # overflow="ellipsis": a cut line ends with "…"
        return keys + tail

    def _read_only_blocked(self, action: str) -> bool:
        """Actions that write are dimmed in read-only mode (pressing them says why)."""
        if not getattr(self.app, "read_only", False) or "." in action:
            return False
        method = getattr(self.screen, f"action_{action.split('(', 1)[0]}", None)
        return getattr(method, "writes", None) is not None

    def on_resize(self) -> None:
        self.update(self.line())
