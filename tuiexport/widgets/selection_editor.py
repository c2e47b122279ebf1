"""The product selection editor shown in a "Selection: <name>" tab.

Rules on the left, the live count against the limit and a preview of the first 50 products on the
right, recomputed in a debounced worker whenever a rule changes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import msgspec
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Checkbox, DataTable, Input, Label, RadioButton, RadioSet, Static
from textual.worker import get_current_worker

from tuiexport import service
from tuiexport.errors import UserError
from tuiexport.management.views import PreviewRow, SelectionImpact, SelectionView
from tuiexport.widgets import fmt
from tuiexport.widgets.checklist import FilterableChecklist
from tuiexport.widgets.guard import background, write_in_background

SupplierMode = Literal["partners", "all", "list"]
SUPPLIER_MODES: tuple[SupplierMode, ...] = ("partners", "all", "list")
SWITCHES = (
    ("only_with_catalog_id", "only with catalogue id"),
    ("only_in_stock", "only in stock"),
    ("only_new", "only new goods"),
    ("only_exportable_images", "only with exportable images"),
    ("only_with_price", "only with a price"),
)
DEBOUNCE = 0.3


def _idents(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,;]+", text) if item]


def _normal(c: service.Criteria) -> service.Criteria:
    """The same rules whatever order the ids were chosen in."""
    return msgspec.structs.replace(
        c,
        supplier_ids=sorted(c.supplier_ids),
        manufacturer_ids=sorted(c.manufacturer_ids),
        product_type_ids=sorted(c.product_type_ids),
    )


def _price(text: str, label: str) -> float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"The {label} price '{text}' is not a number.") from None


def impact_text(impact: SelectionImpact) -> Text:
    """What saving would do, in a few lines: products gained and lost (with examples) and each
    export that uses the selection, its count against its limit before → after."""
    text = Text("Saving: ", style="bold")

    def examples(rows: list[tuple[int, str]], more: int) -> str:
        shown = ", ".join(f"{puid} {name[:24]}".strip() for puid, name in rows)
        return f" ({shown}{', …' if more > len(rows) else ''})" if rows else ""

    if impact.reasons:
        text.append("the rules are invalid, so ", style="red")
    else:
        text.append(f"+{impact.gained:,}", style="green")
        text.append(" gained" + examples(impact.gained_examples, impact.gained) + ", ")
        text.append(f"−{impact.lost:,}", style="red")
        text.append(" lost" + examples(impact.lost_examples, impact.lost))
    for export in impact.exports:
        text.append("\n  ")
        text.append(fmt.cut(export.name, 28), style="bold")
        if export.turns_invalid:
            text.append(" turns invalid: it cannot run until the rules are fixed", style="red")
            continue
        text.append(f" {export.before:,} → {export.after:,} / {export.limit:,}")
        if export.after > export.limit >= export.before:
            text.append("  now over its limit", style="yellow")
        elif export.after > export.limit:
            text.append("  over its limit", style="yellow")
    if not impact.exports:
        text.append("  (no export uses it)", style="dim")
    return text


class SelectionEditor(Vertical):
    """Edits one selection (``selection`` None: a new one, created on save)."""

    class Computed(Message):
        def __init__(
            self,
            count: int,
            rows: list[PreviewRow],
            auto_name: str,
            reasons: list[str],
            impact: SelectionImpact | None = None,
            impact_follows: bool = False,
        ) -> None:
            super().__init__()
            self.count, self.rows, self.auto_name, self.reasons = count, rows, auto_name, reasons
            #: What saving would change (a second message); ``impact_follows``: it is on its way.
            self.impact, self.impact_follows = impact, impact_follows

    class Saved(Message):
        def __init__(self, editor: SelectionEditor, view: SelectionView, created: bool) -> None:
            super().__init__()
            self.editor, self.view, self.created = editor, view, created

    class TitleChanged(Message):
        def __init__(self, editor: SelectionEditor) -> None:
            super().__init__()
            self.editor = editor

    def __init__(
        self,
        selection: SelectionView | None,
        *,
        limit: int,
        for_export: str | None = None,
        language: str = "de",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.original = selection.criteria if selection else service.Criteria()
        self.original_name = selection.name if selection and selection.name_custom else ""
        self.limit = limit
        self.for_export = for_export
        self.language = language
        self.count: int | None = None
        self.auto_name = selection.name if selection else ""
        self._timer: Timer | None = None
        self._ready = False
        self._impact_timer: Timer | None = None
        #: A save is on its way to the database (a second one would create the selection twice).
        self._saving = False

    @property
    def title(self) -> str:
        name = self.name_value if self._ready else ""
        name = name or self.auto_name or "new"
        return f"Selection: {name}{' *' if self.dirty else ''}"

    def compose(self) -> ComposeResult:
        c = self.original
        suppliers = service.list_suppliers()
        with Horizontal(id="sel-head"):
            yield Label("Name", classes="label")
            yield Input(
                self.original_name,
                id="sel-name",
                compact=True,
                max_length=120,
                placeholder="(generated from the rules)",
            )
        yield Static("", id="sel-count")
        yield Static("", id="sel-impact")
        yield Static("", id="sel-reasons", classes="error")
        with Horizontal(id="sel-body"):
            with VerticalScroll(id="sel-rules"):
                yield Label("Suppliers", classes="section")
                with RadioSet(id="sel-suppliers", compact=True):
                    for mode, label in zip(
                        SUPPLIER_MODES,
                        ("my partners", "all suppliers", "chosen suppliers"),
                        strict=True,
                    ):
                        yield RadioButton(label, value=c.suppliers == mode, compact=True)
                yield FilterableChecklist(
                    "suppliers",
                    [(i, f"{n}{' ★' if p else ''}") for i, n, p in suppliers],
                    c.supplier_ids,
                    id="sel-supplier-ids",
                )
                yield Label("Manufacturers", classes="section")
                yield FilterableChecklist(
                    "manufacturers",
                    service.list_manufacturers(),
                    c.manufacturer_ids,
                    id="sel-manufacturers",
                )
                yield Label("Product types", classes="section")
                yield FilterableChecklist(
                    "types",
                    [(i, f"{n} ({code})") for i, n, code in service.list_product_types()],
                    c.product_type_ids,
                    id="sel-types",
                )
                yield Label("Quality", classes="section")
                for key, label in SWITCHES:
                    yield Checkbox(label, getattr(c, key), id=f"sel-{key}", compact=True)
                for key, label, value, hint in (
                    ("search", "Search", c.search, "name, SKU or EAN words"),
                    ("include", "Include", " ".join(c.include), "only these puid/EAN/SKU"),
                    ("exclude", "Exclude", " ".join(c.exclude), "never these puid/EAN/SKU"),
                    (
                        "price_min",
                        "Price from",
                        "" if c.price_min is None else f"{c.price_min:g}",
                        "net, e.g. 10",
                    ),
                    (
                        "price_max",
                        "Price to",
                        "" if c.price_max is None else f"{c.price_max:g}",
                        "net, e.g. 999.99",
                    ),
                    (
                        "changed_since",
                        "Changed since",
                        f"{c.changed_since:%Y-%m-%d}" if c.changed_since else "",
                        "YYYY-MM-DD",
                    ),
                ):
                    with Horizontal(classes="field"):
                        yield Label(label, classes="label")
                        yield Input(value, id=f"sel-{key}", compact=True, placeholder=hint)
            yield DataTable(id="sel-preview", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one("#sel-preview", DataTable)
        table.border_title = "Preview (first 50)"
        for label in ("puid", "Name", "Manufacturer", "Price", "Stock", "EAN"):
            table.add_column(label, key=label)
        self.query_one("#sel-supplier-ids").display = self.original.suppliers == "list"
        self._ready = True
        self.recompute(now=True)

    # --- reading the rules -----------------------------------------------------------------

    def criteria(self) -> service.Criteria:
        """The rules as shown (raises UserError for a value that is not a number or a date)."""
        mode = SUPPLIER_MODES[max(self.query_one("#sel-suppliers", RadioSet).pressed_index, 0)]
        text = {
            key: self.query_one(f"#sel-{key}", Input).value
            for key in ("search", "include", "exclude", "price_min", "price_max", "changed_since")
        }
        since = None
        if text["changed_since"].strip():
            try:
                since = datetime.strptime(text["changed_since"].strip(), "%Y-%m-%d")
            except ValueError:
                raise UserError("'Changed since' must be a date like 2026-01-31.") from None
        return service.Criteria(
            suppliers=mode,
            supplier_ids=self.query_one("#sel-supplier-ids", FilterableChecklist).values
            if mode == "list"
            else [],
            manufacturer_ids=self.query_one("#sel-manufacturers", FilterableChecklist).values,
            product_type_ids=self.query_one("#sel-types", FilterableChecklist).values,
            search=text["search"].strip(),
            include=_idents(text["include"]),
            exclude=_idents(text["exclude"]),
            price_min=_price(text["price_min"], "minimum"),
            price_max=_price(text["price_max"], "maximum"),
            changed_since=since,
            **{key: self.query_one(f"#sel-{key}", Checkbox).value for key, _ in SWITCHES},
        )

    @property
    def name_value(self) -> str:
        return " ".join(self.query_one("#sel-name", Input).value.split())

    @property
    def dirty(self) -> bool:
        if not self._ready:
            return False
        if self.selection is None:
            return True
        try:
            criteria = self.criteria()
        except UserError:
            return True
        return _normal(criteria) != _normal(self.original) or self.name_value != self.original_name

    # --- live count and preview ------------------------------------------------------------

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self.query_one("#sel-supplier-ids").display = event.index == 2
        self.recompute()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.recompute()

    def on_filterable_checklist_changed(self, event: FilterableChecklist.Changed) -> None:
        event.stop()
        self.recompute()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("sel-"):
            event.stop()
            if event.input.id == "sel-name":
                self.post_message(self.TitleChanged(self))
            else:
                self.recompute()

    def recompute(self, now: bool = False) -> None:
        if not self._ready:
            return
        self.post_message(self.TitleChanged(self))
        if self._timer is not None:
            self._timer.stop()
        if now:
            self._start_compute()
        else:
            self._timer = self.set_timer(DEBOUNCE, self._start_compute)

    def _start_compute(self) -> None:
        try:
            criteria = self.criteria()
        except UserError as exc:
            self._show_reasons([str(exc)])
            return
        self.query_one("#sel-count", Static).update(Text("counting…", style="dim"))
        # The impact shown was for the rules before this edit: never leave it standing.
        self._show_impact(None)
        self._compute(criteria)

    @background("selection-preview")
    def _compute(self, criteria: service.Criteria) -> None:
        worker = get_current_worker()
        reasons = service.validate_criteria(criteria)
        name = service.auto_name(criteria)
        count, rows = 0, []
        if not reasons:
            count = service.count_products(criteria)
            if not worker.is_cancelled:
                rows = service.preview(criteria, n=50, language=self.language)
        if worker.is_cancelled:
            return

        # Show the count at once; what saving would change takes two more queries.
        def cancelled() -> bool:
            return worker.is_cancelled

        impact_follows = self.selection is not None and criteria != self.original
        self.post_message(self.Computed(count, rows, name, reasons, impact_follows=impact_follows))
        if self.selection is not None and impact_follows:
            try:
                impact = service.selection_impact(
                    self.selection.id,
                    criteria,
                    language=self.language,
                    after=None if reasons else count,
                    cancelled=cancelled,
                )
            except service.ImpactCancelled:
                return  # the rules changed again: a newer worker computes their impact
            if cancelled():  # changed during the last query: this impact is stale
                return
            self.post_message(self.Computed(count, rows, name, reasons, impact))

    def on_selection_editor_computed(self, message: Computed) -> None:
        message.stop()
        if message.impact_follows:
            self._impact_computing()
        else:
            self._show_impact(message.impact)
        if message.impact is not None:
            return  # the count and preview came with the message before
        self.count, self.auto_name = message.count, message.auto_name
        self.query_one("#sel-name", Input).placeholder = message.auto_name
        self._show_reasons(message.reasons)
        text = Text()
        if message.reasons:
            text.append("no count: the rules are invalid", style="dim")
        else:
            text.append(f"{message.count:,}", style="bold")
            text.append(f" products / limit {self.limit:,}")
            if message.count > self.limit:
                text.append(f"  (first {self.limit:,} by puid exported)", style="yellow")
        self.query_one("#sel-count", Static).update(text)
        table = self.query_one("#sel-preview", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(
                str(row.puid),
                Text(row.name),
                Text(row.manufacturer or ""),
                Text("" if row.price is None else f"{row.price:,.2f}", justify="right"),
                Text("" if row.stock is None else f"{row.stock:,}", justify="right"),
                Text(row.ean or ""),
            )
        self.post_message(self.TitleChanged(self))

    def _impact_computing(self) -> None:
        """Say that what saving would change is being worked out, with the seconds it has taken
        (on a large catalog that is many seconds; each edit starts it again)."""
        self._stop_impact_timer()
        started = time.monotonic()
        widget = self.query_one("#sel-impact", Static)

        def tick() -> None:
            seconds = int(time.monotonic() - started)
            widget.update(
                Text(
                    "Saving: working out what it changes…"
                    + (f" {seconds} s" if seconds else "")
                    + " (you can save now)",
                    style="dim",
                )
            )

        widget.display = True
        tick()
        self._impact_timer = self.set_interval(1, tick)

    def _stop_impact_timer(self) -> None:
        if self._impact_timer is not None:
            self._impact_timer.stop()
            self._impact_timer = None

    def _show_impact(self, impact: SelectionImpact | None) -> None:
        self._stop_impact_timer()
        widget = self.query_one("#sel-impact", Static)
        widget.display = impact is not None and not (
            impact.gained == impact.lost == 0 and not impact.reasons
        )
        if impact is not None and widget.display:
            widget.update(impact_text(impact))

    def _show_reasons(self, reasons: list[str]) -> None:
        widget = self.query_one("#sel-reasons", Static)
        widget.update(Text("\n".join(f"✗ {r}" for r in reasons)))
        widget.display = bool(reasons)

    # --- saving ----------------------------------------------------------------------------

    def save(self, then: Callable[[], None] | None = None) -> None:
        """Store the rules (and name; empty = generated) in a worker; every definition using it
        follows. Once stored: :class:`Saved` is posted, then ``then`` runs (on the UI thread)."""
        if self._saving:
            self.notify("Still saving this selection…", timeout=2)
            return
        criteria, name, selection = self.criteria(), self.name_value, self.selection

        def write() -> SelectionView:
            if selection is None:
                return service.create_selection(criteria, name or None)
            return service.update_selection(selection.id, criteria=criteria, name=name)

        def stored(view: SelectionView) -> None:
            self._saving = False
            self.selection, self.original = view, view.criteria
            self.original_name = view.name if view.name_custom else ""
            self.auto_name = view.name
            self.post_message(self.Saved(self, view, selection is None))
            self.post_message(self.TitleChanged(self))
            if then is not None:
                then()

        self._saving = True
        write_in_background(
            self,
            f"Saving '{self.title.removeprefix('Selection: ').rstrip(' *')}'",
            write,
            stored,
            failed=lambda: setattr(self, "_saving", False),
        )
