"""What the service API hands the front ends: plain msgspec Structs, never Peewee models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from tuiexport.selection import Criteria


class SelectionView(msgspec.Struct, kw_only=True):
    id: int
    name: str
    name_custom: bool
    criteria: Criteria
    created: datetime
    updated: datetime
    #: Names of the export definitions that use this selection.
    used_by: list[str] = []
    valid: bool = True
    reasons: list[str] = []


class RunView(msgspec.Struct, kw_only=True):
    log_id: str
    export_id: str
    export_name: str
    trigger: str
    status: str
    started: datetime
    finished: datetime | None
    api_version: str
    profile: str
    output: str
    file_format: str
    product_count: int
    omitted_count: int
    size: int | None
    sha256: str | None
    artifact_path: str | None
    artifact_kept: bool
    messages: list[str]
    supplier_shares: dict[str, int]
    #: The share link whose request this is (see models.Run.link_id); None / "" otherwise.
    link_id: int | None = None
    link_name: str = ""
    #: A served download: the run whose file it sent ("" for a run).
    source_log_id: str = ""
    #: A delta (issue 12): the cursor it answered, the full run it brings the consumer to,
    #: and what it holds. Empty / 0 for any other run.
    delta_since: str = ""
    delta_base: str = ""
    added_count: int = 0
    changed_count: int = 0
    removed_count: int = 0

    @property
    def is_delta(self) -> bool:
        return bool(self.delta_base)

    @property
    def duration(self) -> float | None:
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    @property
    def done(self) -> bool:
        return self.status not in ("running",)


class RunDiff(msgspec.Struct, kw_only=True):
    """What changed from one run of an export to another (issue 12), from their manifests."""

    old: str
    new: str
    old_count: int
    new_count: int
    added: int
    removed: int
    changed: int
    #: Of the changed products, those whose offers' prices or stock changed.
    changed_figures: int
    #: Products per supplier in each run.
    shares_before: dict[str, int]
    shares_after: dict[str, int]
    #: A few puids of each kind, for a look.
    examples: dict[str, list[int]] = {}

    def lines(self) -> list[str]:
        """The diff as text (the CLI's ``history diff``, the TUI's run details)."""

        def some(kind: str) -> str:
            puids = self.examples.get(kind) or []
            return f"  (e.g. {', '.join(map(str, puids))})" if puids else ""

        out = [
            f"Run {self.old} ({self.old_count:,} products) → run {self.new} "
            f"({self.new_count:,} products)",
            f"  added    {self.added:>9,}{some('added')}",
            f"  removed  {self.removed:>9,}{some('removed')}",
            f"  changed  {self.changed:>9,}{some('changed')}",
            f"    of them with a changed price or stock: {self.changed_figures:,}",
            "  products per supplier (before → after):",
        ]
        for name in sorted({*self.shares_before, *self.shares_after}):
            before, after = self.shares_before.get(name, 0), self.shares_after.get(name, 0)
            out.append(f"    {name}: {before:,} → {after:,} ({after - before:+,})")
        return out


class DefinitionView(msgspec.Struct, kw_only=True):
    export_id: str
    name: str
    selection_id: int | None
    selection_name: str | None
    profile: str
    output: str
    file_format: str
    language: str
    long_descriptions: bool
    #: The definition's own limit (None: the contract limit applies).
    product_limit: int | None
    #: The limit that applies: min(own limit, contract limit).
    effective_limit: int
    options: dict[str, Any]
    producer: str
    #: The token of the first active share link ("" when every link was revoked): the one
    #: share URL of the export before it had named links.
    share_token: str
    created: datetime
    updated: datetime
    valid: bool
    reasons: list[str]
    last_run: RunView | None = None
    #: The active share links, oldest first.
    links: list[LinkView] = []


class LinkView(msgspec.Struct, kw_only=True):
    """One share link of an export (models.ShareLink)."""

    link_id: int
    export_id: str
    name: str
    token: str
    created: datetime
    rotated: datetime | None = None
    revoked: datetime | None = None
    last_seen: datetime | None = None


class LinkActivity(msgspec.Struct, kw_only=True):
    """How a link's consumer fetches (see management.links.activity for the rules)."""

    link: LinkView
    #: The newest download through this link, when it began, its history row and what it got:
    #: "full" (the export's whole file) or "delta" (what changed since the cursor
    #: ``got_since``), and the run whose state that brought the consumer to; a delta's counts.
    last_fetch: datetime | None = None
    last_log_id: str | None = None
    got: str | None = None
    got_run: str | None = None
    got_since: str | None = None
    got_added: int = 0
    got_changed: int = 0
    got_removed: int = 0
    fetches_7d: int = 0
    #: Its last request of any kind (a 304 or a HEAD too), if newer than ``last_fetch``.
    last_seen: datetime | None = None
    #: The median gap between its recent downloads, in seconds (None: too few to tell).
    usual_interval: float | None = None
    #: Silent for longer than OVERDUE_FACTOR times its usual interval.
    overdue: bool = False
    #: The one sentence a front end shows for an overdue link ("" otherwise).
    warning: str = ""


class PreviewRow(msgspec.Struct, array_like=True):
    puid: int
    ean: str | None
    manufacturer_sku: str | None
    name: str
    manufacturer: str | None
    product_type: str | None
    #: Lowest net price among the offers that match the selection (None: no price).
    price: float | None
    #: Total stock over the offers that match the selection.
    stock: int | None
    offers: int


class ExportImpact(msgspec.Struct, kw_only=True):
    """What saving a selection would do to one export that uses it."""

    name: str
    limit: int
    before: int
    after: int
    #: The edited rules are invalid: the export could not run any more.
    turns_invalid: bool = False


class SelectionImpact(msgspec.Struct, kw_only=True):
    """Saved rules against edited ones: the products gained and lost, and every export's count."""

    before: int
    after: int
    gained: int
    lost: int
    #: (puid, name) of the first few gained and lost products.
    gained_examples: list[tuple[int, str]] = []
    lost_examples: list[tuple[int, str]] = []
    exports: list[ExportImpact] = []
    #: Why the edited rules are invalid (then nothing is counted).
    reasons: list[str] = []
