"""Export definitions: create, update, delete, validate, share tokens."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tuiexport import config
from tuiexport import selection as sel
from tuiexport.db import database
from tuiexport.errors import NotFound, UserError
from tuiexport.exporters import registry
from tuiexport.exporters.base import check_options
from tuiexport.management import links, runs
from tuiexport.management.views import DefinitionView, LinkView, RunView
from tuiexport.models import LANGUAGES, ExportDefinition, Selection, tuples, utcnow
from tuiexport.schema import FIRST_LINK, catalog_version


class _Unset:
    """No value given (``None`` is a value: no run yet)."""


_UNSET = _Unset()

SORTS = {
    "name": lambda d: (d.name.casefold(), d.export_id),
    "last_run": lambda d: (d.last_run.started.timestamp() if d.last_run else 0.0) * -1,
    "created": lambda d: d.created,
    "format": lambda d: (d.profile, d.output, d.name.casefold()),
}


def new_share_token() -> str:
    """128+ random bits, URL-safe."""
    import secrets  # a new token only: not at every --run's start

    return secrets.token_urlsafe(24)


def _producer() -> str:
    configured = config.settings().producer
    if configured:
        return configured
    import getpass  # a new definition only: not at every --run's start

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (containers): OSError, before 3.13 KeyError
        return "unknown"


def effective_limit(own: int | None) -> int:
    contract = config.settings().contract_limit
    return min(own, contract) if own else contract


def reasons_for(row: ExportDefinition, criteria_reasons: list[str] | None = None) -> list[str]:
    """Why this definition cannot run (PRODUCT.md §2); empty when it is valid."""
    reasons: list[str] = []
    if not row.name or not row.name.strip():
        reasons.append("The name is empty.")
    if row.selection_id is None:
        reasons.append("No product selection is assigned.")
    else:
        if criteria_reasons is None:
            selection = Selection.get_or_none(Selection.id == row.selection_id)
            criteria_reasons = (
                sel.validate_criteria(sel.criteria_from_json(selection.criteria))
                if selection
                else ["The assigned product selection no longer exists."]
            )
        reasons.extend(f"Selection: {r}" for r in criteria_reasons)
    if not registry.is_valid_pair(row.profile, row.output):
        reasons.append(
            f"The data format {row.profile} as {row.output.upper()} does not exist "
            f"(choose one of: {', '.join(f'{p}/{o}' for p, o in registry.valid_pairs())})."
        )
    return reasons


def edited_reasons(name: str, selection_id: int | None, profile: str, output: str) -> list[str]:
    """Why a definition with these values (an unsaved edit) could not run; empty: it could."""
    edited = ExportDefinition(name=name, selection=selection_id, profile=profile, output=output)
    return reasons_for(edited)


def _view(
    row: ExportDefinition,
    *,
    selection_name: str | None = None,
    criteria_reasons: list[str] | None = None,
    last_run: RunView | _Unset | None = _UNSET,
    active_links: list[LinkView] | None = None,
) -> DefinitionView:
    if row.selection_id is not None and selection_name is None:
        selection = row.selection
        assert selection is not None  # selection_id is set
        selection_name = selection.name
    if isinstance(last_run, _Unset):
        last = runs.last_run(row.export_id)
        last_run = runs.view(last) if last else None
    reasons = reasons_for(row, criteria_reasons)
    if active_links is None:
        active_links = links.of_export(row.export_id)
    return DefinitionView(
        export_id=row.export_id,
        name=row.name,
        selection_id=row.selection_id,
        selection_name=selection_name,
        profile=row.profile,
        output=row.output,
        file_format=registry.file_format(row.profile, row.output),
        language=row.language,
        long_descriptions=row.long_descriptions,
        product_limit=row.product_limit,
        effective_limit=effective_limit(row.product_limit),
        options=dict(row.options),
        producer=row.producer,
        share_token=active_links[0].token if active_links else "",
        created=row.created,
        updated=row.updated,
        valid=not reasons,
        reasons=reasons,
        last_run=last_run,
        links=active_links,
    )


def get_row(ref: str) -> ExportDefinition:
    """A definition by export ID, or by its name when that is unique."""
    ref = (ref or "").strip()
    row = ExportDefinition.get_or_none(ExportDefinition.export_id == ref.lower())
    if row is None:
        rows = list(ExportDefinition.select().where(ExportDefinition.name == ref).limit(2))
        if len(rows) > 1:
            raise UserError(f"Several exports are named '{ref}'; use the export ID instead.")
        row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"There is no export '{ref}' (see 'tuiexport exports list').")
    return row


def get_definition(ref: str) -> DefinitionView:
    return _view(get_row(ref))


def list_definitions(sort: str = "name", filter_text: str = "") -> list[DefinitionView]:
    """Every definition with validity, last run and links, in four queries whatever their
    number."""
    known = sel.known_ids()
    selections: dict[int | None, tuple[str | None, list[str] | None]] = {
        s.id: (s.name, sel.validate_criteria(sel.criteria_from_json(s.criteria), known))
        for s in Selection.select()
    }
    last_runs = {export_id: runs.view(r) for export_id, r in runs.last_runs().items()}
    active_links = links.active()
    needle = filter_text.casefold().strip()
    views = []
    for row in ExportDefinition.select():
        name, reasons = selections.get(row.selection_id, (None, None))
        view = _view(
            row,
            selection_name=name,
            criteria_reasons=reasons,
            last_run=last_runs.get(row.export_id),
            active_links=active_links.get(row.export_id, []),
        )
        if (
            needle
            and needle
            not in f"{view.name} {view.file_format} {view.export_id} {name or ''}".casefold()
        ):
            continue
        views.append(view)
    views.sort(key=SORTS.get(sort, SORTS["name"]))
    return views


def _check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Refuse values that cannot even be stored; everything else may be invalid but is kept."""
    if "name" in fields:
        fields["name"] = " ".join((fields["name"] or "").split())
        if len(fields["name"]) > 120:
            raise UserError("An export name may have at most 120 characters.")
    if "profile" in fields and fields["profile"] not in registry.PROFILES:
        raise UserError(
            f"Unknown profile '{fields['profile']}'; use one of {', '.join(registry.PROFILES)}."
        )
    if "output" in fields and fields["output"] not in registry.OUTPUTS:
        raise UserError(
            f"Unknown output '{fields['output']}'; use one of {', '.join(registry.OUTPUTS)}."
        )
    if "language" in fields and fields["language"] not in LANGUAGES:
        raise UserError(
            f"Unknown language '{fields['language']}'; use one of {', '.join(LANGUAGES)}."
        )
    if fields.get("product_limit") is not None:
        limit = fields["product_limit"]
        contract = config.settings().contract_limit
        if not isinstance(limit, int) or limit < 1:
            raise UserError("The product limit must be a whole number of at least 1.")
        if limit > contract:
            raise UserError(
                f"The product limit {limit:,} is above the contract limit of {contract:,}."
            )
    if fields.get("selection_id") is not None:
        if Selection.get_or_none(Selection.id == fields["selection_id"]) is None:
            raise NotFound(f"There is no product selection {fields['selection_id']}.")
        fields["selection"] = fields.pop("selection_id")
    elif "selection_id" in fields:
        fields["selection"] = fields.pop("selection_id")
    if "options" in fields:
        try:
            options = check_options(fields["options"])
        except ValueError as exc:
            raise UserError(str(exc)) from None
        fields["options"] = options
    return fields


#: The name of a definition created without one; "New export 2", "… 3" while it is taken.
DEFAULT_NAME = "New export"


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _check_name_free(name: str, *, except_id: int | None = None) -> None:
    """Names are unique (trimmed, case-insensitive): a cron line runs an export by its name."""
    key = _name_key(name)
    if not key:
        return  # an empty name is stored and marked invalid, not refused
    for other_id, other in tuples(
        ExportDefinition.select(ExportDefinition.id, ExportDefinition.name)
    ):
        if other_id != except_id and _name_key(other) == key:
            raise UserError(f"An export named '{other}' exists already; choose another name.")


def _free_name(base: str) -> str:
    taken = {_name_key(n) for (n,) in tuples(ExportDefinition.select(ExportDefinition.name))}
    if _name_key(base) not in taken:
        return base
    return next(
        f"{base} {i}" for i in range(2, len(taken) + 3) if _name_key(f"{base} {i}") not in taken
    )


def create_definition(
    name: str | None = None,
    *,
    selection_id: int | None = None,
    profile: str = "standard",
    output: str = "csv",
    language: str | None = None,
    long_descriptions: bool = True,
    product_limit: int | None = None,
    options: dict[str, Any] | None = None,
    producer: str | None = None,
) -> DefinitionView:
    """Create a definition. It may be invalid (e.g. no selection yet); it is marked, not refused.

    Without a name it is called :data:`DEFAULT_NAME` (numbered while that is taken); a name
    another export has (trimmed, case-insensitive) is refused.
    """
    fields = _check_fields(
        dict(
            name=name if name is not None else DEFAULT_NAME,
            selection_id=selection_id,
            profile=profile,
            output=output,
            language=language or config.settings().default_language,
            long_descriptions=long_descriptions,
            product_limit=product_limit,
            options=options or {},
        )
    )
    with database.atomic():
        if name is None:
            fields["name"] = _free_name(fields["name"])
        else:
            _check_name_free(fields["name"])
        row = ExportDefinition.create(
            export_id=str(uuid.uuid4()), producer=producer or _producer(), **fields
        )
        links.create(row.export_id, FIRST_LINK, new_share_token())
    return _view(row)


EDITABLE = (
    "name",
    "selection_id",
    "profile",
    "output",
    "language",
    "long_descriptions",
    "product_limit",
    "options",
)


def update_definition(ref: str, **changes: Any) -> DefinitionView:
    """Change fields of a definition: any of :data:`EDITABLE`."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise UserError(f"Cannot change {', '.join(sorted(unknown))} of an export.")
    fields = _check_fields(dict(changes))
    with database.atomic():
        row = get_row(ref)
        if "name" in fields:
            _check_name_free(fields["name"], except_id=row.id)
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated = utcnow()
        row.save()
    return _view(row)


def delete_definition(ref: str) -> str:
    """Delete a definition; its history rows and artifacts stay. Returns its name."""
    with database.atomic():
        row = get_row(ref)
        name = row.name
        row.delete_instance()
    return name


def rotate_share_token(ref: str) -> DefinitionView:
    """Give the export's first share link a new token; its old URL stops working at once (the
    export's other links keep theirs)."""
    with database.atomic():
        row = get_row(ref)
        first = links.of_export(row.export_id)[:1]
        if not first:
            raise UserError(_no_link(row.name))
        links.rotate(links.find(row.export_id, first[0].link_id), new_share_token())
    return _view(row)


def _no_link(name: str) -> str:
    return (
        f"The export '{name}' has no share link (all were revoked); create one with "
        f"'tuiexport links create \"{name}\" NAME'."
    )


def share_path(view: DefinitionView, link: LinkView | None = None) -> str:
    """The path of the export's share URL: of ``link``, or of its first active link."""
    if link is None:
        if not view.links:
            raise UserError(_no_link(view.name))
        link = view.links[0]
    return link_path(link)


def link_path(link: LinkView) -> str:
    """The path of a share link's URL: the token names the link."""
    return f"/api/v1/exports/{link.export_id}/download?token={link.token}"


def share_url(ref: str, base_url: str | None = None) -> str:
    """The URL other hosts fetch: ``base_url`` (or the configured one) + the share path of the
    export's first active link."""
    return _base(base_url) + share_path(get_definition(ref))


def link_url(link: LinkView, base_url: str | None = None) -> str:
    """A share link's URL: ``base_url`` (or the configured one) + its path."""
    return _base(base_url) + link_path(link)


def _base(base_url: str | None) -> str:
    settings = config.settings()
    base = base_url or settings.base_url or f"http://{settings.server_host}:{settings.server_port}"
    return base.rstrip("/")


def validate(ref: str) -> list[str]:
    return reasons_for(get_row(ref))


def fingerprint(row: ExportDefinition) -> str:
    """Changes whenever the definition, its selection or the catalog changes."""
    selection = row.selection.criteria if row.selection is not None else ""
    parts = [
        row.export_id,
        row.profile,
        row.output,
        row.language,
        str(row.long_descriptions),
        str(effective_limit(row.product_limit)),
        ExportDefinition.options.db_value(row.options) or "",
        selection,
        str(catalog_version()),
        row.updated.isoformat() if row.updated else "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
