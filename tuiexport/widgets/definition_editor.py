"""The detail editor that opens under an expanded definition row.

It holds the edits until they are saved: :meth:`changes` says what differs from the stored
definition, in the keyword arguments ``service.update_definition`` takes.
"""

from __future__ import annotations

from typing import Any, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from tuiexport import config, service
from tuiexport.errors import UserError
from tuiexport.management.views import DefinitionView, SelectionView
from tuiexport.widgets import fmt
from tuiexport.widgets.run_trends import CountSparkline


def format_pairs() -> list[tuple[str, str]]:
    """The (profile, output) pairs that exist; every combination while the writers are missing."""
    try:
        return service.valid_pairs()
    except ImportError:
        return [(p, o) for p in service.PROFILES for o in service.OUTPUTS]


#: The publish gate's percentage fields and the options they edit.
GATE_INPUTS = (("#ed-gate-products", "gate_product_drop"), ("#ed-gate-size", "gate_size_drop"))


class DefinitionEditor(Vertical):
    """Name, selection, format, language, options, limit, IDs, share URL, reasons, actions."""

    class CountWanted(Message):
        def __init__(self, selection_id: int) -> None:
            super().__init__()
            self.selection_id = selection_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view: DefinitionView | None = None
        self.selection_id: int | None = None
        self.selection_name: str | None = None
        self.selections: list[SelectionView] = []
        self.share_url = ""
        #: Product count per selection id, shared with the list (filled by a worker).
        self.counts: dict[int, int] = {}
        self._loading = False
        self._pairs = format_pairs()

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("Name", classes="label")
            # Opening an export puts the cursor after its name: the next key edits, not replaces.
            yield Input(
                id="ed-name",
                compact=True,
                placeholder="Export name",
                max_length=120,
                select_on_focus=False,
            )
        yield Static("", id="ed-name-error", classes="error")
        with Horizontal(classes="field", id="ed-sel-row"):
            yield Label("Selection", classes="label")
            yield Select([], id="ed-sel-choose", compact=True, prompt="choose…")
            yield Static("", id="ed-sel-name")
            yield Button("New", id="ed-sel-new", compact=True, action="screen.new_selection")
            yield Button("Edit", id="ed-sel-edit", compact=True, action="screen.edit_selection")
            yield Button("✕", id="ed-sel-remove", compact=True, action="screen.remove_selection")
        with Horizontal(classes="field"):
            yield Label("Format", classes="label")
            # One list of the pairs that exist: a profile/output that does not cannot be chosen.
            yield Select(
                self._format_options(None), id="ed-format", compact=True, allow_blank=False
            )
            # Only for CSV: BOM, semicolons and decimal commas, as Excel opens them.
            yield Checkbox("Excel", id="ed-excel", compact=True)
        with Horizontal(classes="field"):
            yield Label("Language", classes="label")
            yield Select(
                [(lang, lang) for lang in service.LANGUAGES],
                id="ed-language",
                compact=True,
                allow_blank=False,
            )
            yield Checkbox("Long texts", id="ed-long", compact=True)
            # Read the file back before it is published (the BMEcat schema, a re-read).
            yield Checkbox("Validate", id="ed-validate", compact=True)
        with Horizontal(classes="field", id="ed-gate"):
            # The publish gate's limits against the last published run; empty: no limit.
            # "Hold if −30 % count −off % size, empty": 36 columns, the editor's width at 80.
            yield Label("Hold if", classes="label")
            yield Static("−", classes="gate-text")
            yield Input(id="ed-gate-products", compact=True, placeholder="off", type="number")
            yield Static("% count −", classes="gate-text")
            yield Input(id="ed-gate-size", compact=True, placeholder="off", type="number")
            yield Static("% size", classes="gate-text")
            yield Checkbox("empty", id="ed-gate-empty", compact=True)
        with Horizontal(classes="field"):
            yield Label("Limit", classes="label")
            yield Input(id="ed-limit", compact=True, placeholder="contract", type="integer")
            yield Static("", id="ed-count")
            # The product counts of the last runs, in the same row: fewer widgets to expand.
            yield CountSparkline(id="ed-trend")
        # What saving the unsaved edits would do to this export (hidden without such edits).
        yield Static("", id="ed-saving")
        yield Static("", id="ed-info")
        with Horizontal(classes="buttons"):
            yield Button(
                "Save", id="ed-save", compact=True, variant="primary", action="screen.save"
            )
            yield Button("Discard", id="ed-discard", compact=True, action="screen.discard")
            yield Button(
                "Delete", id="ed-delete", compact=True, variant="error", action="screen.delete"
            )
        with Horizontal(classes="buttons"):
            yield Button("Download", id="ed-download", compact=True, action="screen.download")
            yield Button("Share", id="ed-share", compact=True, action="screen.share")
            yield Button("New token", id="ed-rotate", compact=True, action="screen.rotate")

    # --- loading ---------------------------------------------------------------------------

    def load(self, view: DefinitionView, selections: list[SelectionView], share_url: str) -> None:
        """Show a stored definition; any unsaved edits are dropped."""
        self._loading = True
        self.view = view
        self.selections = selections
        self.share_url = share_url
        self.selection_id = view.selection_id
        self.selection_name = view.selection_name
        self.query_one("#ed-name", Input).value = view.name
        self.query_one("#ed-sel-choose", Select).set_options(
            [(Text(s.name), s.id) for s in selections]
        )
        self._set_format(view.profile, view.output)
        self.query_one("#ed-language", Select).value = view.language
        self.query_one("#ed-long", Checkbox).value = view.long_descriptions
        self.query_one("#ed-excel", Checkbox).value = view.options.get("csv_variant") == "excel"
        self._show_excel(view.output)
        self._show_checks(view.options)
        self.query_one("#ed-limit", Input).value = (
            str(view.product_limit) if view.product_limit else ""
        )
        self.query_one("#ed-name-error").display = False
        self._show_selection()
        self._show_meta()
        self.query_one(CountSparkline).show(view.export_id)
        self.call_after_refresh(self._done_loading)

    def rebase(self, view: DefinitionView, share_url: str) -> None:
        """The stored definition changed underneath (token, assignment): keep the edits."""
        self.view = view
        self.share_url = share_url
        self.selection_id = view.selection_id
        self.selection_name = view.selection_name
        self._show_selection()
        self._show_meta()

    def stored(
        self,
        view: DefinitionView,
        selections: list[SelectionView],
        share_url: str,
        saved: dict[str, Any],
    ) -> None:
        """``saved`` (what :meth:`changes` gave) is now stored as ``view``. The save ran in the
        background: fields edited meanwhile keep their newer values, unsaved against ``view``."""
        try:
            edited_since = self.changes() != saved
        except UserError:  # a field holds what cannot be saved: an edit made since
            edited_since = True
        if not edited_since:
            self.load(view, selections, share_url)
            return
        self.view, self.selections, self.share_url = view, selections, share_url
        self._show_meta()
        self.show_saving()

    def refresh_choices(self) -> None:
        self._loading = True
        self.query_one("#ed-sel-choose", Select).set_options(
            [(Text(s.name), s.id) for s in self.selections]
        )
        self.call_after_refresh(self._done_loading)

    def _done_loading(self) -> None:
        self._loading = False

    def _format_options(self, stored: tuple[str, str] | None) -> list[tuple[str, tuple[str, str]]]:
        pairs = list(self._pairs)
        options = [(service.file_format(p, o), (p, o)) for p, o in pairs]
        if stored is not None and stored not in pairs:  # stored by another front end: show it
            options.append((f"{stored[0]} · {stored[1]} (does not exist)", stored))
        return options

    def _set_format(self, profile: str, output: str) -> None:
        select = self.query_one("#ed-format", Select)
        select.set_options(self._format_options((profile, output)))
        select.value = (profile, output)

    def _show_selection(self) -> None:
        assigned = self.selection_id is not None
        for widget_id, show in (
            ("#ed-sel-choose", not assigned),
            ("#ed-sel-new", not assigned),
            ("#ed-sel-name", assigned),
            ("#ed-sel-edit", assigned),
            ("#ed-sel-remove", assigned),
        ):
            self.query_one(widget_id).display = show
        self.query_one("#ed-sel-name", Static).update(
            Text(self.selection_name or "", no_wrap=True, overflow="ellipsis")
        )
        if self.selection_id is not None:
            self.post_message(self.CountWanted(self.selection_id))
        self.update_count(None)

    def update_count(self, counts: dict[int, int] | None) -> None:
        view = self.view
        if view is None:
            return
        own = self._limit_value(quiet=True)
        contract = config.settings().contract_limit
        limit = min(own, contract) if own else contract
        if self.selection_id is None:
            text = Text(f"no selection / {limit:,}", style="dim")
        elif counts is None or self.selection_id not in counts:
            text = Text(f"counting… / {limit:,}", style="dim")
        else:
            count = counts[self.selection_id]
            text = Text(f"{count:,} / {limit:,}")
            if count > limit:
                text.stylize("bold yellow")
                text.append(" over", style="yellow")
        self.query_one("#ed-count", Static).update(text)
        self.show_saving(counts)

    def show_saving(self, counts: dict[int, int] | None = None) -> None:
        """What saving would do to this export, while a change of its selection, format,
        limit or name is unsaved: its count against the new limit (before → after), and whether
        it turns (or stays) invalid, with the reasons, or becomes valid."""
        widget = self.query_one("#ed-saving", Static)
        view = self.view
        counts = self.counts if counts is None else counts
        try:
            changes = self.changes() if view is not None and not self._loading else {}
        except UserError as exc:
            widget.update(Text(f"✗ {exc}", style="red"))
            widget.display = True
            return
        if view is None or not changes.keys() & {
            "selection_id",
            "profile",
            "output",
            "product_limit",
        }:
            widget.display = False
            return
        contract = config.settings().contract_limit

        def limit_of(own: int | None) -> int:
            return min(own, contract) if own else contract

        def count_of(selection_id: int | None) -> int | None:
            return 0 if selection_id is None else counts.get(selection_id)

        name = changes.get("name", view.name)
        profile, output = changes.get("profile", view.profile), changes.get("output", view.output)
        reasons = service.edited_reasons(name, self.selection_id, profile, output)
        before, after = count_of(view.selection_id), count_of(self.selection_id)
        limit = limit_of(self._limit_value(quiet=True))
        text = Text("Saving: ", style="bold")
        shown = "counting…" if after is None else f"{after:,}"
        if "selection_id" in changes:
            text.append(f"{'…' if before is None else f'{before:,}'} → {shown} products")
        else:
            text.append(f"{shown} products")
        if "product_limit" in changes:
            text.append(f", limit {limit_of(view.product_limit):,} → {limit:,}")
        else:
            text.append(f" / limit {limit:,}")
        if after is not None and after > limit:
            text.append(f"; over: the first {limit:,} by puid go out", style="yellow")
        if reasons:
            text.append(
                "\n✗ " + ("stays" if not view.valid else "turns") + " invalid: ", "bold red"
            )
            text.append(" ".join(reasons), style="red")
        elif not view.valid:
            text.append("\n✓ becomes valid", style="bold green")
        widget.update(text)
        widget.display = True

    def _show_meta(self) -> None:
        self.query_one("#ed-info", Static).update(self.info_table())

    def info_table(self) -> Table:
        """Export ID, producer, share URL and, when invalid, the reasons."""
        view = self.view
        assert view is not None
        info = Table.grid(padding=(0, 1))
        info.add_column(width=9, style="dim", no_wrap=True)
        info.add_column(overflow="fold")
        info.add_row("Export ID", Text(view.export_id))
        info.add_row(
            "Producer",
            Text.assemble(view.producer, (f" · created {fmt.when(view.created)}", "dim")),
        )
        more = len(view.links) - 1
        info.add_row(
            "Share URL",
            Text.assemble(
                self.share_url or ("none: every share link was revoked (ctrl+k)", "bold"),
                (
                    f"  +{more} more link{'s' if more > 1 else ''} (ctrl+k)" if more > 0 else "",
                    "dim",
                ),
            ),
        )
        if view.reasons:
            info.add_row(
                Text("Invalid", style="bold red"),
                Text("\n".join(f"✗ {r}" for r in view.reasons), style="red"),
            )
        return info

    # --- editing ---------------------------------------------------------------------------

    def assign(self, selection: SelectionView | None) -> None:
        self.selection_id = selection.id if selection else None
        self.selection_name = selection.name if selection else None
        self._show_selection()

    def _show_checks(self, stored: dict[str, Any]) -> None:
        """Validation and the publish gate's limits as stored (the defaults where none is)."""
        try:
            options = service.effective_options(stored)
        except ValueError:  # stored by another version: show the defaults
            options = service.effective_options({})
        self.query_one("#ed-validate", Checkbox).value = bool(options["validate"])
        for widget_id, key in GATE_INPUTS:
            value = options[key]
            self.query_one(widget_id, Input).value = "" if value is None else f"{value:g}"
        self.query_one("#ed-gate-empty", Checkbox).value = bool(options["gate_hold_empty"])

    def _show_excel(self, output: str) -> None:
        self.query_one("#ed-excel", Checkbox).display = output == "csv"

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "ed-format" and isinstance(event.value, tuple):
            self._show_excel(event.value[1])
        if self._loading:
            return
        if event.select.id == "ed-format":
            self.show_saving()
        if event.select.id == "ed-sel-choose" and isinstance(event.value, int):
            chosen = next((s for s in self.selections if s.id == event.value), None)
            self.assign(chosen)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "ed-name":
            empty = not event.value.strip()
            error = self.query_one("#ed-name-error", Static)
            error.update("The name must not be empty." if empty else "")
            error.display = empty

        elif event.input.id == "ed-limit" and self.view is not None:
            self.update_count(self.counts)

    def _limit_value(self, quiet: bool = False) -> int | None:
        raw = self.query_one("#ed-limit", Input).value.strip()
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            if quiet:
                return None
            raise UserError(
                "The product limit must be a whole number (or empty for the contract limit)."
            ) from None

    def changes(self) -> dict[str, Any]:
        """What differs from the stored definition (raises UserError for values that cannot be)."""
        view = self.view
        if view is None:
            return {}
        name = " ".join(self.query_one("#ed-name", Input).value.split())
        # The format list has no blank entry: its value is always a (profile, output) pair.
        profile, output = cast("tuple[str, str]", self.query_one("#ed-format", Select).value)
        values = {
            "name": name,
            "selection_id": self.selection_id,
            "profile": profile,
            "output": output,
            "language": self.query_one("#ed-language", Select).value,
            "long_descriptions": self.query_one("#ed-long", Checkbox).value,
            "product_limit": self._limit_value(),
            "options": self._options(view),
        }
        return {key: value for key, value in values.items() if getattr(view, key) != value}

    def _options(self, view: DefinitionView) -> dict[str, Any]:
        """The stored options with the Excel choice (kept as is for other outputs), validation
        and the gate's limits applied, in their stored form (defaults left out)."""
        options = dict(view.options)
        _profile, output = cast("tuple[str, str]", self.query_one("#ed-format", Select).value)
        if output == "csv":
            if self.query_one("#ed-excel", Checkbox).value:
                options["csv_variant"] = "excel"
            else:
                options.pop("csv_variant", None)
        options["validate"] = self.query_one("#ed-validate", Checkbox).value
        options["gate_hold_empty"] = self.query_one("#ed-gate-empty", Checkbox).value
        for widget_id, key in GATE_INPUTS:
            raw = self.query_one(widget_id, Input).value.strip().rstrip("%").strip()
            try:
                options[key] = float(raw) if raw else None
            except ValueError:
                raise UserError(
                    f"'{raw}' is not a percentage: give a number from 0 to 100 for the publish "
                    "gate, or leave it empty for no limit."
                ) from None
        try:
            return service.check_options(options)
        except ValueError:
            raise UserError(
                "The publish gate's limits are percentages from 0 to 100 (empty: no limit)."
            ) from None

    @property
    def dirty(self) -> bool:
        if self.view is None:
            return False
        try:
            return bool(self.changes())
        except UserError:
            return True

    def focus_name(self) -> None:
        name = self.query_one("#ed-name", Input)
        name.focus()
        name.action_end()

    def select_name(self) -> None:
        """Select the whole name (a new export's generated one), so that typing replaces it."""
        self.query_one("#ed-name", Input).action_select_all()
