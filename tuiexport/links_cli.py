"""CLI for named share links: ``tuiexport links list|create|rename|rotate|revoke``."""

from __future__ import annotations

import argparse
from typing import Any

from tuiexport import service
from tuiexport.management.views import LinkActivity, LinkView
from tuiexport.units import span


def _link_json(link: LinkView, base_url: str | None) -> dict[str, Any]:
    return {
        "linkId": link.link_id,
        "exportId": link.export_id,
        "name": link.name,
        "url": service.link_url(link, base_url) if link.revoked is None else None,
        "created": link.created,
        "rotated": link.rotated,
        "revoked": link.revoked,
    }


def _activity_json(a: LinkActivity, base_url: str | None) -> dict[str, Any]:
    return _link_json(a.link, base_url) | {
        "lastFetch": a.last_fetch,
        "lastLogId": a.last_log_id,
        "got": a.got,
        "gotRun": a.got_run,
        "fetches7d": a.fetches_7d,
        "lastSeen": a.last_seen,
        "usualInterval": a.usual_interval,
        "overdue": a.overdue,
        "warning": a.warning or None,
    }


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    from tuiexport.output import print_json

    if args.json:
        print_json(data)
    else:
        print(text)


def links_list(args: argparse.Namespace) -> int:
    activity = service.link_activity(args.export)
    revoked = (
        [k for k in service.list_links(args.export, include_revoked=True) if k.revoked]
        if args.all
        else []
    )
    if args.json:
        _emit(
            args,
            [_activity_json(a, args.base_url) for a in activity]
            + [_link_json(k, args.base_url) for k in revoked],
            "",
        )
        return 0
    if not activity and not revoked:
        print(
            "This export has no share link; create one with 'tuiexport links create EXPORT NAME'."
        )
        return 0
    width = max(len(k.name) for k in [*(a.link for a in activity), *revoked])
    print(
        f"{'ID':>5}  {'NAME':<{width}}  {'LAST FETCH':<16}  {'GOT':<16}  7 DAYS  {'USUAL':<8}  URL"
    )
    for a in activity:
        last = f"{a.last_fetch:%Y-%m-%d %H:%M}" if a.last_fetch else "never"
        got = f"{a.got} {a.got_run}" if a.got else "—"
        usual = span(a.usual_interval) if a.usual_interval is not None else "—"
        print(
            f"{a.link.link_id:>5}  {a.link.name:<{width}}  {last:<16}  {got:<16}  "
            f"{a.fetches_7d:>6}  {usual:<8}  {service.link_url(a.link, args.base_url)}"
        )
    for k in revoked:
        assert k.revoked is not None
        print(f"{k.link_id:>5}  {k.name:<{width}}  revoked {k.revoked:%Y-%m-%d %H:%M}")
    for a in activity:
        if a.warning:
            print(f"Overdue: {a.warning}")
    return 0


def links_create(args: argparse.Namespace) -> int:
    link = service.create_link(args.export, args.name)
    url = service.link_url(link, args.base_url)
    _emit(
        args, _link_json(link, args.base_url), f"Share link '{link.name}' ({link.link_id}):\n{url}"
    )
    return 0


def links_rename(args: argparse.Namespace) -> int:
    link = service.rename_link(args.export, args.link, args.name)
    _emit(
        args,
        _link_json(link, args.base_url),
        f"Renamed the share link {link.link_id} to '{link.name}'; its URL is unchanged.",
    )
    return 0


def links_rotate(args: argparse.Namespace) -> int:
    link = service.rotate_link(args.export, args.link)
    url = service.link_url(link, args.base_url)
    _emit(
        args,
        _link_json(link, args.base_url),
        f"New URL of the share link '{link.name}' (its old one no longer works):\n{url}",
    )
    return 0


def links_revoke(args: argparse.Namespace) -> int:
    link = service.revoke_link(args.export, args.link)
    left = service.list_links(link.export_id)
    more = (
        f" {len(left)} other link{'s keep' if len(left) != 1 else ' keeps'} working."
        if left
        else " The export has no share link now; 'tuiexport links create EXPORT NAME' makes one."
    )
    _emit(
        args,
        _link_json(link, args.base_url),
        f"Revoked the share link '{link.name}': its URL no longer works.{more}",
    )
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    links = sub.add_parser(
        "links", help="named share links of an export (one per consumer)"
    ).add_subparsers(dest="action", metavar="ACTION", required=True)
    commands = (
        ("list", links_list, "the links with their last fetch, 7-day count and usual interval", ()),
        ("create", links_create, "a new link with its own token", ("name",)),
        ("rename", links_rename, "rename a link (its URL stays)", ("link", "name")),
        ("rotate", links_rotate, "new token for one link (its old URL stops working)", ("link",)),
        ("revoke", links_revoke, "revoke one link (the others keep working)", ("link",)),
    )
    for name, handler, helptext, positionals in commands:
        p = links.add_parser(name, help=helptext)
        p.add_argument("export", metavar="EXPORT", help="export ID or unique name")
        for positional in positionals:
            p.add_argument(
                positional,
                metavar=positional.upper(),
                help="the link's name or ID" if positional == "link" else "the link's name",
            )
        if name == "list":
            p.add_argument("--all", action="store_true", help="also the revoked links")
        p.add_argument("--base-url", metavar="URL", help="e.g. https://feeds.example.com")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
