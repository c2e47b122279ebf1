"""The share links of an export, as the front ends ask for them: by the export's ID or unique
name and the link's name or ID (the table itself is :mod:`tuiexport.management.links`')."""

from __future__ import annotations

from tuiexport.db import database
from tuiexport.management import definitions, links
from tuiexport.management.views import LinkActivity, LinkView


def list_links(export: str, *, include_revoked: bool = False) -> list[LinkView]:
    """The export's links, oldest first (active ones only unless ``include_revoked``)."""
    row = definitions.get_row(export)
    return links.of_export(row.export_id, include_revoked=include_revoked)


def link_activity(export: str) -> list[LinkActivity]:
    """How each active link of the export fetches (see :func:`links.activity`)."""
    return links.activity(list_links(export))


def create_link(export: str, name: str) -> LinkView:
    """A new link with a token of its own; the export's other links are untouched."""
    with database.atomic():
        row = definitions.get_row(export)
        return links.create(row.export_id, name, definitions.new_share_token())


def rename_link(export: str, link: str | int, name: str) -> LinkView:
    """Rename a link; its URL stays the same."""
    with database.atomic():
        row = definitions.get_row(export)
        return links.rename(links.find(row.export_id, link, export_name=row.name), name)


def rotate_link(export: str, link: str | int) -> LinkView:
    """Give a link a new token: its old URL stops working at once, the other links keep theirs."""
    with database.atomic():
        row = definitions.get_row(export)
        found = links.find(row.export_id, link, export_name=row.name)
        return links.rotate(found, definitions.new_share_token())


def revoke_link(export: str, link: str | int) -> LinkView:
    """Revoke a link: its URL stops working at once, the other links keep working."""
    with database.atomic():
        row = definitions.get_row(export)
        return links.revoke(links.find(row.export_id, link, export_name=row.name))
