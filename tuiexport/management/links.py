"""Named share links: the share_link table (the one module that writes it), the matching of a
share request's token, and how each link's consumer fetches.

An export has any number of links, one per consumer ("Shop A", "Marketplace B"), each with its
own token. The share URL is unchanged (``…/download?token=…``): the token names the link. A
revoked link stays in the table (history rows name it) but never matches again.

This module knows export IDs only; resolving an export's name and making tokens is
:mod:`tuiexport.management.sharing`'s (and :mod:`.definitions`' for the first link).
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from tuiexport.errors import NotFound, UserError
from tuiexport.management.views import LinkActivity, LinkView
from tuiexport.models import Run, ShareLink, utcnow
from tuiexport.units import span

#: A link's name: at most this many characters.
MAX_NAME = 80
#: The usual interval is the median gap between a link's last USUAL_OF + 1 downloads ...
USUAL_OF = 10
#: ... of which it needs at least this many (two gaps) before it calls anything usual.
USUAL_NEEDS = 3
#: Downloads closer together than this are one visit (a retry, a burst while someone wires the
#: consumer up, a person clicking twice): their gap is no schedule, and the usual interval
#: is the median of the longer gaps only.
BURST = timedelta(minutes=10)
#: A link is overdue once it has been silent for this many times its usual interval.
OVERDUE_FACTOR = 1.5
#: What "fetches in the last days" counts.
RECENT = timedelta(days=7)
#: History rows that are downloads a consumer got whole.
FETCHED = ("success", "warning")


def view(row: ShareLink) -> LinkView:
    return LinkView(
        link_id=row.id,
        export_id=row.export_id,
        name=row.name,
        token=row.token,
        created=row.created,
        rotated=row.rotated,
        revoked=row.revoked,
        last_seen=row.last_seen,
    )


# --- reads ------------------------------------------------------------------------------------


def active(export_ids: Iterable[str] | None = None) -> dict[str, list[LinkView]]:
    """The active links by export ID, oldest first (of every export, or of ``export_ids``)."""
    query = ShareLink.select().where(ShareLink.revoked.is_null())
    if export_ids is not None:
        query = query.where(ShareLink.export.in_(list(export_ids)))
    found: dict[str, list[LinkView]] = {}
    for row in query.order_by(ShareLink.id):
        found.setdefault(row.export_id, []).append(view(row))
    return found


def of_export(export_id: str, *, include_revoked: bool = False) -> list[LinkView]:
    query = ShareLink.select().where(ShareLink.export == export_id)
    if not include_revoked:
        query = query.where(ShareLink.revoked.is_null())
    return [view(r) for r in query.order_by(ShareLink.id)]


def find(export_id: str, ref: str | int, *, export_name: str = "") -> ShareLink:
    """Any of the export's links by ID (an int, or digits no active link is named), or an
    active one by its name (case-insensitive)."""
    text = " ".join(str(ref).split())
    if not isinstance(ref, int):
        for row in ShareLink.select().where(
            ShareLink.export == export_id, ShareLink.revoked.is_null()
        ):
            if row.name.casefold() == text.casefold():
                return row
    if text.isdigit():
        by_id: ShareLink | None = ShareLink.get_or_none(
            ShareLink.id == int(text), ShareLink.export == export_id
        )
        if by_id is not None:
            return by_id
    where = f" of '{export_name}'" if export_name else ""
    raise NotFound(f"There is no share link '{text}'{where} (see 'tuiexport links list EXPORT').")


def match(links: Sequence[LinkView], token: str) -> LinkView | None:
    """The link whose token ``token`` is, compared in constant time against every link (the
    time taken tells nothing about which token was close); None when none is."""
    given = token.encode("utf-8", "surrogateescape")
    found = None
    for link in links:
        if hmac.compare_digest(given, link.token.encode()) and link.revoked is None:
            found = link
    return found


# --- writes -----------------------------------------------------------------------------------


def clean_name(name: str | None) -> str:
    text = " ".join((name or "").split())
    if not text:
        raise UserError("Give the share link a name, e.g. the consumer's ('Shop A').")
    if len(text) > MAX_NAME:
        raise UserError(f"A share link's name may have at most {MAX_NAME} characters.")
    return text


def _check_free(export_id: str, name: str, *, except_id: int | None = None) -> None:
    for row in ShareLink.select().where(ShareLink.export == export_id, ShareLink.revoked.is_null()):
        if row.id != except_id and row.name.casefold() == name.casefold():
            raise UserError(f"The export has a share link named '{row.name}'; choose another name.")


# The callers hold the transaction (sharing, definitions): these never open one of their own.


def create(export_id: str, name: str, token: str) -> LinkView:
    name = clean_name(name)
    _check_free(export_id, name)
    return view(ShareLink.create(export=export_id, name=name, token=token))


def rename(row: ShareLink, name: str) -> LinkView:
    name = clean_name(name)
    if row.revoked is not None:
        raise UserError(f"The share link '{row.name}' was revoked; it cannot be renamed.")
    _check_free(row.export_id, name, except_id=row.id)
    row.name = name
    row.save()
    return view(row)


def rotate(row: ShareLink, token: str) -> LinkView:
    if row.revoked is not None:
        raise UserError(f"The share link '{row.name}' was revoked; create a new one instead.")
    row.token = token
    row.rotated = utcnow()
    row.save()
    return view(row)


def revoke(row: ShareLink) -> LinkView:
    if row.revoked is None:
        row.revoked = utcnow()
        row.save()
    return view(row)


def seen(link_ids: Iterable[int]) -> None:
    """Requests came through these links just now (the share server's recorder calls this)."""
    ShareLink.update(last_seen=utcnow()).where(ShareLink.id.in_(list(link_ids))).execute()


# --- how consumers fetch ------------------------------------------------------------------------


def activity(links: Sequence[LinkView], now: datetime | None = None) -> list[LinkActivity]:
    """For each link: its newest download, what that got, its downloads of the last 7 days, its
    usual interval and whether it is overdue.

    A *fetch* is a history row of the link that went out whole (success or warning), of the
    export's file or of a delta (what it got then: "delta", from ``got_since`` up to the full
    run ``got_run``); a download the client broke off, a 304 (the consumer already had the
    file) and a HEAD are not, nor is a byte range that ends before the file's last byte
    (``partial``: a piece of a resumed or ranged download, whose range with the last byte is
    its fetch). The *usual interval* is the median gap between the link's last
    :data:`USUAL_OF` + 1 fetches, known once it has :data:`USUAL_NEEDS`; the median, so that
    one retry or one missed night does not move it. A link is *overdue* when its last fetch,
    and its last request of any kind (``last_seen``: a consumer that revalidates gets 304s
    while nothing changed), are both more than :data:`OVERDUE_FACTOR` times that interval
    ago."""
    import statistics  # for link health only: not at every --run's start

    now = now or utcnow()
    result = []
    for link in links:
        recent = list(
            Run.select(
                Run.log_id,
                Run.started,
                Run.source_log_id,
                Run.delta_since,
                Run.delta_base,
                Run.added_count,
                Run.changed_count,
                Run.removed_count,
            )
            .where(Run.link_id == link.link_id, Run.status.in_(FETCHED), ~Run.partial)
            .order_by(Run.started.desc(), Run.id.desc())
            .limit(USUAL_OF + 1)
        )
        if not recent:
            result.append(LinkActivity(link=link, last_seen=link.last_seen))
            continue
        fetches_7d = (
            Run.select()
            .where(
                Run.link_id == link.link_id,
                Run.status.in_(FETCHED),
                ~Run.partial,
                Run.started >= now - RECENT,
            )
            .count()
        )
        last = recent[0]
        times = [r.started for r in recent]
        gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(times)]
        gaps = [g for g in gaps if g >= BURST.total_seconds()]
        usual = statistics.median(gaps) if len(gaps) >= USUAL_NEEDS - 1 else None
        seen = link.last_seen if link.last_seen and link.last_seen > last.started else None
        silent = (now - (seen or last.started)).total_seconds()
        overdue = bool(usual) and silent > OVERDUE_FACTOR * (usual or 0)
        result.append(
            LinkActivity(
                link=link,
                last_fetch=last.started,
                last_log_id=last.log_id,
                # What it got: the export's whole file (of the run it served, or its own), or a
                # delta from the cursor it sent up to the full run it brought the consumer to.
                got="delta" if last.delta_base else "full",
                got_run=last.delta_base or last.source_log_id or last.log_id,
                got_since=last.delta_since or None,
                got_added=last.added_count,
                got_changed=last.changed_count,
                got_removed=last.removed_count,
                fetches_7d=fetches_7d,
                last_seen=seen,
                usual_interval=usual,
                overdue=overdue,
                warning=(
                    f"{link.name} usually fetches every {span(usual or 0)}; "
                    f"last fetch {span((now - last.started).total_seconds())} ago"
                    + (f", last seen {span(silent)} ago." if seen else ".")
                    if overdue
                    else ""
                ),
            )
        )
    return result
